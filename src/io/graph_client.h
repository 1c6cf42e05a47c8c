/*
 * ewsgw - Exchange calendar presence gateway
 * SPDX-License-Identifier: ISC
 *
 * The Microsoft Graph request runner: app-only tokens (client secret or
 * certificate assertion) through the shared OAuth2 cache (auth.h) on a
 * token engine with TLS settings of its own, requests on a Graph engine,
 * each request held until the budget scheduler shared with EWS
 * (throttle.h, THROTTLE_GRAPH) grants it a slot of its mailbox's budget
 * and a token of the mailbox's and the app's rates, and 429/503
 * answered by pausing that mailbox's budget for Retry-After and trying
 * again a bounded number of times.  What to ask (calendarView, delta,
 * automatic replies, subscriptions, $batch) is built by src/graph/;
 * what the answers mean is the caller's.
 */
#ifndef EWSGW_GRAPH_CLIENT_H
#define EWSGW_GRAPH_CLIENT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "graph/graph_error.h"
#include "io/auth.h"
#include "io/http.h"
#include "io/throttle.h"
#include "io/throttle_drive.h"

struct event_base;
struct graph_client;
struct graph_call;
struct json_writer;

#define GRAPH_SCOPE		"https://graph.microsoft.com/.default"
#define GRAPH_MAX_ATTEMPTS	4	/* per call, throttled answers */
#define GRAPH_BATCH_WAIT_MS	20	/* batchable calls gathered this long */

struct graph_client_opts {
	const char	*graph_url;	/* NULL = GRAPH_DEFAULT_URL */
	const char	*token_url;	/* .../{tenant}/oauth2/v2.0/token */
	const char	*client_id;
	const char	*client_secret;	/* or cert_file and key_file */
	const char	*cert_file;	/* PEM certificate registered with
					   the app */
	const char	*key_file;	/* its RSA key (PEM) */
	/* Graph endpoint TLS. */
	const char	*ca_file;	/* NULL = system store */
	bool		 tls_verify;
	/* Token endpoint TLS: separate, verify on unless said otherwise. */
	const char	*token_ca_file;
	bool		 token_tls_verify;
	/*
	 * The scheduler, shared with the EWS call path (ews_ctx_drive);
	 * borrowed, outlives the client.  Graph's limits are its
	 * throttle_limits (throttle_limits_from_conf reads [graph]).
	 */
	struct throttle_drive *drive;
	int64_t		 timeout_ms;	/* per request; 0 = 60 s */
	unsigned	 max_attempts;	/* 0 = GRAPH_MAX_ATTEMPTS */
	long		 max_connections;	/* 0 = 64 */
};

struct config;
/* The options of conf's [graph] section (borrowed from conf). */
void	 graph_client_opts_from_config(struct graph_client_opts *,
	    const struct config *);

/* New client, or NULL with *cause (allocated). */
struct graph_client *graph_client_new(struct event_base *,
	    const struct graph_client_opts *, char **cause);
/* Cancel every call (no callbacks), wipe secrets.  NULL is fine. */
void	 graph_client_free(struct graph_client *);

struct graph_req {
	enum http_method method;
	const char	*url;		/* absolute, or under graph_url */
	const char	*body;		/* JSON text for POST/PATCH, or NULL */
	const char	*mailbox;	/* whose budget; NULL = the app's */
	bool		 prefer_utc;	/* Prefer: outlook.timezone="UTC" */
	unsigned	 page_size;	/* Prefer: odata.maxpagesize; 0 none */
	const char	*tag;		/* for logs */
	/*
	 * A GET that may travel in a JSON $batch with others started in
	 * the same few milliseconds (start-up reads of many mailboxes):
	 * each still holds a slot of its mailbox while the batch runs,
	 * and is answered as if it had gone alone.
	 */
	bool		 batchable;
};

/* Borrowed for the callback only. */
struct graph_result {
	enum graph_action action;
	long		 status;	/* HTTP status, 0 if none */
	const char	*body;
	size_t		 body_len;
	const char	*code;		/* Graph error code or "" */
	const char	*error;		/* readable, or NULL */
	unsigned	 attempts;
};
typedef void	 (*graph_done_cb)(const struct graph_result *, void *arg);

/*
 * Start a call; done runs exactly once from the loop unless the call is
 * cancelled first.  The handle is owned by the client, valid until done
 * returns or graph_call_cancel.
 */
struct graph_call *graph_call_start(struct graph_client *,
	    const struct graph_req *, graph_done_cb, void *arg);
void	 graph_call_cancel(struct graph_call *);

/*
 * An app-only token from the shared cache (fetched if there is none),
 * as every call gets it: for a check that the token endpoint accepts
 * the credentials.  cb as auth_get's; the handle is valid until then.
 */
struct auth_wait *graph_client_token(struct graph_client *, auth_token_cb,
	    void *arg);
void	 graph_client_token_cancel(struct graph_client *, struct auth_wait *);

struct graph_client_stats {
	uint64_t	 calls;
	uint64_t	 throttled;	/* 429/503 answers */
	uint64_t	 retries;	/* of those, tried again */
	uint64_t	 batches;	/* $batch requests sent */
	uint64_t	 batched;	/* calls that went in one */
	uint64_t	 results[GRAPH_ACT_MAX];
	unsigned	 waiting;	/* calls waiting in the scheduler */
	struct throttle_graph_stats sched;
	struct auth_stats auth;
};
void	 graph_client_stats(struct graph_client *,
	    struct graph_client_stats *);
/* The stats as one JSON object value. */
void	 graph_client_stats_json(struct graph_client *, struct json_writer *);

#endif
