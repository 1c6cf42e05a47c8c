/*
 * ewsgw - Exchange calendar presence gateway
 * SPDX-License-Identifier: ISC
 *
 * etcd v3 messages as its JSON/HTTP gateway (grpc-gateway, etcd 3.4:
 * POST /v3/kv/range, /v3/kv/txn, /v3/lease/grant, /v3/lease/keepalive,
 * /v3/lease/revoke, /v3/watch) writes and reads them: keys and values
 * base64, 64-bit integers as decimal strings, streaming answers one
 * {"result":...} or {"error":...} object per line.  Pure: buffers in,
 * structs out; a hostile answer gives an error, never a crash.
 */
#ifndef EWSGW_ETCD_MSG_H
#define EWSGW_ETCD_MSG_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "base/buf.h"

/* Largest answer the client accepts (one line of a stream, too). */
#define ETCD_MSG_MAX		(4 * 1024 * 1024)

/* Standard base64 with padding. */
void	 etcd_b64_encode(struct buf *, const void *, size_t);
/* Decode len bytes into out (appended); 0, or -1 on bad input. */
int	 etcd_b64_decode(const char *, size_t, struct buf *);
/*
 * The range end that selects every key starting with prefix: the prefix
 * with its last byte below 0xff incremented and what follows dropped.
 * Returns allocated, caller frees; NULL for a prefix of 0xff bytes only.
 */
char	*etcd_prefix_end(const char *prefix);

enum etcd_cmp_target {
	ETCD_CMP_VERSION, ETCD_CMP_CREATE, ETCD_CMP_MOD, ETCD_CMP_LEASE
};
enum etcd_cmp_result {
	ETCD_CMP_EQUAL, ETCD_CMP_GREATER, ETCD_CMP_LESS, ETCD_CMP_NOT_EQUAL
};

/* One transaction condition: target(key[..range_end)) result value. */
struct etcd_cmp {
	enum etcd_cmp_target	 target;
	enum etcd_cmp_result	 result;
	const char		*key;
	const char		*range_end;	/* NULL: the key alone */
	int64_t			 value;
};

/* Request bodies, appended to out.  Strings are borrowed. */
void	 etcd_msg_range(struct buf *, const char *key, const char *range_end,
	    int64_t revision);
/*
 * One page of a range at revision (0: the current one): at most limit
 * keys (0: all) modified at min_mod_revision or later (0: any), in key
 * order; the answer's "more" says whether keys follow the last one.
 */
void	 etcd_msg_range_page(struct buf *, const char *key,
	    const char *range_end, int64_t revision, int64_t limit,
	    int64_t min_mod_revision);
void	 etcd_msg_put(struct buf *, const char *key, const char *value,
	    int64_t lease);
/* Put n keys (no lease) in one transaction without a condition. */
void	 etcd_msg_txn_puts(struct buf *, const char *const *keys,
	    const char *const *values, size_t n);
/*
 * if (cmp) put key = value (with lease, 0 = none) else range
 * fail_key..fail_end (fail_key NULL: nothing).
 */
void	 etcd_msg_txn_put(struct buf *, const struct etcd_cmp *,
	    const char *key, const char *value, int64_t lease,
	    const char *fail_key, const char *fail_end);
void	 etcd_msg_lease_grant(struct buf *, int64_t ttl_s);
/* {"ID": id}: keepalive, revoke, timetolive. */
void	 etcd_msg_lease_id(struct buf *, int64_t id);
void	 etcd_msg_watch(struct buf *, const char *key, const char *range_end,
	    int64_t start_revision);

/* A key-value pair; key and value are NUL-terminated copies. */
struct etcd_kv {
	char		*key;
	size_t		 keylen;
	char		*value;
	size_t		 valuelen;
	int64_t		 create_revision;
	int64_t		 mod_revision;
	int64_t		 version;
	int64_t		 lease;
};

struct etcd_event {
	bool		 deleted;	/* DELETE, else PUT */
	struct etcd_kv	 kv;
};

/* Every field an answer may carry; absent ones are zero. */
struct etcd_resp {
	int64_t		 revision;	/* header.revision */
	bool		 error;		/* an error answer */
	int		 code;		/* its gRPC status code */
	char		*message;	/* its text, or NULL */

	struct etcd_kv	*kvs;		/* range, or a txn's ranges */
	size_t		 nkvs;
	bool		 succeeded;	/* txn */
	bool		 more;		/* range: keys follow (limit) */

	int64_t		 id;		/* lease grant, keepalive */
	int64_t		 ttl;		/* seconds; <= 0: lease gone */

	bool		 created;	/* watch */
	bool		 canceled;
	int64_t		 compact_revision;
	struct etcd_event *events;
	size_t		 nevents;
};

/* gRPC status codes the client acts on. */
#define ETCD_CODE_NOT_FOUND		5
#define ETCD_CODE_FAILED_PRECONDITION	9
#define ETCD_CODE_OUT_OF_RANGE		11
#define ETCD_CODE_UNAVAILABLE		14

/*
 * Parse one answer (a unary body, or one line of a stream) into r
 * (zeroed first; free with etcd_resp_free even on failure).  Returns 0,
 * or -1 with *cause set (allocated, caller frees) when it is not an
 * etcd answer.
 */
int	 etcd_resp_parse(const char *, size_t, struct etcd_resp *,
	    char **cause);
void	 etcd_resp_free(struct etcd_resp *);

#endif
