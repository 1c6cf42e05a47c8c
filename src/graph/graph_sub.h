/*
 * ewsgw - Exchange calendar presence gateway
 * SPDX-License-Identifier: ISC
 *
 * Microsoft Graph change notifications, pure: subscription create and
 * renew bodies and answers, the notification URL's validation handshake,
 * change and lifecycle notifications with their clientState checked.
 */
#ifndef EWSGW_GRAPH_SUB_H
#define EWSGW_GRAPH_SUB_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

struct buf;

/*
 * Outlook event subscriptions live at most 4230 minutes (under three
 * days, the figure the subscription reference gave for Outlook
 * resources); we ask for that less a margin and renew well before.
 */
#define GRAPH_SUB_MAX_MINUTES	4230
#define GRAPH_SUB_MARGIN_S	600
#define GRAPH_CLIENT_STATE_MAX	128	/* Graph's limit on clientState */
#define GRAPH_VALIDATION_MAX	1024	/* decoded validationToken bytes */
#define GRAPH_NOTIFY_MAX_DOC	(1024 * 1024)

struct graph_sub_req {
	const char	*user;		/* id or UPN: /users/{user}/events */
	const char	*change_type;	/* NULL = "created,updated,deleted" */
	const char	*notification_url;
	const char	*lifecycle_url;	/* NULL = none */
	const char	*client_state;	/* secret, <= GRAPH_CLIENT_STATE_MAX */
	int64_t		 expires;	/* epoch seconds */
};

/* The latest expirationDateTime to ask for at now (epoch seconds). */
int64_t	 graph_sub_max_expiry(int64_t now);
/* POST /subscriptions body (may hold the secret: wipe b after use). */
void	 graph_sub_create_body(struct buf *, const struct graph_sub_req *);
/* PATCH /subscriptions/{id} body. */
void	 graph_sub_renew_body(struct buf *, int64_t expires);
/* base + "/subscriptions" or base + "/subscriptions/{id}" (id != NULL). */
void	 graph_sub_url(struct buf *, const char *base, const char *id);

/* A subscription as Graph answers create, renew or GET. */
struct graph_subscription {
	char		*id;		/* owned */
	char		*resource;	/* owned, NULL if absent */
	char		*change_type;	/* owned, NULL if absent */
	int64_t		 expires;	/* epoch seconds */
};
int	 graph_parse_subscription(const char *, size_t,
	    struct graph_subscription *, char **cause);
void	 graph_subscription_free(struct graph_subscription *);

/*
 * The validation handshake: Graph POSTs to the notification URL with
 * ?validationToken=... and wants it back, decoded, as text/plain with 200
 * within 10 s.  query is the request target's query (after '?', len
 * bytes).  Returns 1 and *token (allocated) when a validationToken is
 * present and sane (not empty, at most GRAPH_VALIDATION_MAX bytes, no
 * control bytes after decoding), 0 when absent, -1 when present but
 * malformed.
 */
int	 graph_validation_token(const char *query, size_t len, char **token);

enum graph_notif_kind {
	GRAPH_NOTIF_CHANGE,
	GRAPH_NOTIF_REAUTHORIZE,	/* reauthorizationRequired */
	GRAPH_NOTIF_REMOVED,		/* subscriptionRemoved */
	GRAPH_NOTIF_MISSED,		/* missed */
	GRAPH_NOTIF_UNKNOWN		/* another lifecycleEvent */
};
enum graph_change {
	GRAPH_CHANGE_CREATED, GRAPH_CHANGE_UPDATED, GRAPH_CHANGE_DELETED,
	GRAPH_CHANGE_OTHER
};
const char *graph_notif_kind_name(enum graph_notif_kind);

struct graph_notif {
	enum graph_notif_kind kind;
	enum graph_change change;	/* GRAPH_NOTIF_CHANGE only */
	char		*subscription_id;	/* owned */
	char		*resource;	/* owned, NULL if absent */
	char		*item_id;	/* resourceData.id, owned, or NULL */
	char		*tenant_id;	/* owned, NULL if absent */
	int64_t		 sub_expires;	/* subscriptionExpirationDateTime */
};

struct graph_notifs {
	struct graph_notif *v;		/* owned; only those that passed */
	size_t		 n;
	size_t		 bad_state;	/* dropped: clientState wrong/absent */
	size_t		 bad_shape;	/* dropped: no subscriptionId etc. */
};

/*
 * Parse a changeNotificationCollection ({"value": [...]}) POSTed to the
 * notification or lifecycle URL.  client_state (the secret given at
 * create) is compared in constant time with every entry's clientState;
 * entries that do not match are dropped and counted.  0, or -1 with
 * *cause when the body is not such a collection.
 */
int	 graph_parse_notifications(const char *, size_t,
	    const char *client_state, struct graph_notifs *, char **cause);
void	 graph_notifs_free(struct graph_notifs *);

/* Constant-time comparison of two NUL-terminated secrets. */
bool	 graph_secret_eq(const char *, const char *);

#endif
