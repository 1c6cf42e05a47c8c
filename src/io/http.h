/*
 * ewsgw - Exchange calendar presence gateway
 * SPDX-License-Identifier: ISC
 *
 * HTTP client engine: libcurl's multi socket interface driven by the
 * libevent loop.  Unary requests (body accumulated, capped) and streaming
 * requests (bytes handed to a data callback as they arrive), one result
 * class per completion.  The only module that talks to curl_multi.
 */
#ifndef EWSGW_HTTP_H
#define EWSGW_HTTP_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

struct buf;
struct config;
struct event_base;
struct http_engine;
struct http_request;
struct json_writer;

/*
 * How a request ended.  Keep http_result_name() in sync.  (Not HTTP_OK
 * and friends: <event2/http.h> defines those as status macros.)
 */
enum http_result {
	HTTP_RESULT_OK,		/* 2xx */
	HTTP_RESULT_AUTH,	/* 401 (after curl's own handshake), or no
				 * bearer token could be had */
	HTTP_RESULT_THROTTLED,	/* 503 or 429; or 500: a SOAP fault, parse
				 * the body (ErrorServerBusy is throttling,
				 * impersonation errors are not) */
	HTTP_RESULT_TRANSIENT,	/* connect/resolve failure, timeout,
				 * reset, partial or empty reply, 502/504:
				 * retry with backoff */
	HTTP_RESULT_FATAL,	/* anything else (404, TLS verification) */
	HTTP_RESULT_TOOBIG,	/* response larger than max_response */
	HTTP_RESULT_ABORTED,	/* the data callback said HTTP_DATA_ABORT */
	HTTP_RESULT_MAX
};

/* Credential kinds for the EWS endpoint. */
enum http_cred {
	HTTP_CRED_NONE,
	HTTP_CRED_NTLM,
	HTTP_CRED_BASIC,
	HTTP_CRED_NEGOTIATE,	/* GSS-API: Kerberos ticket, ccache */
	HTTP_CRED_BEARER	/* OAuth2 token from a token source (auth.c) */
};

/*
 * Where bearer tokens come from (auth.c implements it); lets the engine
 * wait for a token and retry once after a 401 without knowing OAuth2.
 */
typedef void (*http_token_cb)(const char *token, const char *error,
	    void *arg);
struct http_token_source {
	/* A valid cached token (borrowed) or NULL. */
	const char	*(*current)(void *src);
	/*
	 * Fetch a token; cb is called exactly once, always later from the
	 * loop (never from inside get), with token or error (both borrowed)
	 * unless the returned wait handle is cancelled first.
	 */
	void		*(*get)(void *src, http_token_cb cb, void *arg);
	void		 (*cancel)(void *src, void *wait);
	/* The server refused token (borrowed); forget it if still cached. */
	void		 (*invalidate)(void *src, const char *token);
	void		*src;
};

struct http_engine_opts {
	enum http_cred	 cred;
	const char	*username;	/* copied; DOMAIN\user, user@dom */
	const char	*password;	/* copied, wiped on free */
	const char	*ca_file;	/* NULL = system trust store */
	const char	*client_cert;	/* PEM, optional */
	const char	*client_key;	/* PEM, optional */
	bool		 tls_verify;	/* verify peer and host name */
	long		 max_host_connections;	/* 0 = unlimited */
	long		 max_total_connections;	/* 0 = unlimited */
	long		 connect_timeout_ms;	/* 0 = 30 s */
	size_t		 max_response;	/* default cap; 0: 16 MiB */
	const char	*user_agent;	/* NULL = "ewsgw/VERSION" */
	const char	*peer;		/* for the tls_verify = no warning;
					   NULL = "the Exchange server" */
};

/*
 * Fill opts from the [exchange] section of conf (borrows its strings:
 * conf must outlive the http_engine_new call).  Connection limits are
 * left 0; the budget scheduler sets them.
 */
void	 http_engine_opts_from_config(struct http_engine_opts *,
	    const struct config *);

/*
 * New engine on base (borrowed, must outlive the engine).  Strings in
 * opts are copied.  Returns NULL with *cause set (allocated, caller
 * frees) if libcurl cannot be set up.
 */
struct http_engine *http_engine_new(struct event_base *,
	    const struct http_engine_opts *, char **cause);
/*
 * Cancel every request (no done callbacks), clean up the multi handle
 * while the base still exists, free socket contexts.  NULL is fine.
 * Never call it from an http callback.
 */
void	 http_engine_free(struct http_engine *);
/* Token source for HTTP_CRED_BEARER (borrowed, must outlive engine). */
/*
 * New credentials (copied; the password is wiped from memory when
 * replaced) for requests started from now on; running ones keep theirs.
 */
void	 http_engine_set_credentials(struct http_engine *, const char *,
	    const char *);
/* Connect timeout for requests started from now on; 0 = 30 s. */
void	 http_engine_set_connect_timeout(struct http_engine *, long);
void	 http_engine_set_token_source(struct http_engine *,
	    const struct http_token_source *);

struct http_stats {
	uint64_t	 started;
	uint64_t	 results[HTTP_RESULT_MAX];
	uint64_t	 cancelled;
	uint64_t	 retried_auth;	/* bearer 401, new token, retry */
	uint64_t	 bytes_in;	/* response bodies */
	uint64_t	 bytes_out;	/* request bodies */
	unsigned	 in_flight;
	unsigned	 sockets;	/* fds curl asked us to watch, and
					   its connections' between
					   transfers */
	uint64_t	 handles;	/* curl easy handles made (each is
					   reused by later requests) */
};
/* Counters for the status socket (borrowed, live). */
const struct http_stats *http_engine_stats(const struct http_engine *);
/* Write the counters as one JSON object value ("results" by name). */
void	 http_stats_json(const struct http_stats *, struct json_writer *);

/* PATCH sends a body like POST; DELETE sends none. */
enum http_method { HTTP_POST, HTTP_GET, HTTP_PATCH, HTTP_DELETE };

struct http_request_opts {
	enum http_method method;
	const char	*url;		/* copied */
	const char	*body;		/* copied; POST and PATCH only */
	size_t		 body_len;
	const char	*anchor_mailbox;	/* X-AnchorMailbox, or NULL */
	bool		 prefer_affinity; /* X-PreferServerAffinity */
	const char	*backend_cookie; /* X-BackEndOverrideCookie */
	const char	*content_type;	/* NULL: text/xml; utf-8 */
	const char	*accept;	/* NULL: text/xml */
	const char * const *headers;	/* extra "Name: value", NULL-ended,
					 * copied; may be NULL */
	int64_t		 timeout_ms;	/* total; 0: none (streaming) */
	size_t		 max_response;	/* body cap; 0: engine's */
	bool		 no_auth;	/* no credentials (token URL) */
	bool		 fresh_connect;	/* a new connection, so NTLM logs in
					 * again instead of reusing one */
	bool		 secret;	/* never trace the bodies */
	const char	*tag;		/* for log lines; copied */
};

/*
 * The outcome, borrowed for the duration of the done call only.
 * body is NUL-terminated (empty for streaming 2xx responses, whose bytes
 * went to the data callback).  Strings are NULL when absent.
 */
struct http_response {
	enum http_result result;
	long		 status;	/* HTTP status, 0 if none */
	int		 curl_code;	/* CURLcode */
	const char	*error;		/* readable reason or NULL */
	const char	*body;
	size_t		 body_len;
	const char	*cookie_backend; /* X-BackEndOverrideCookie */
	const char	*www_authenticate; /* all offers, '\n' between */
	const char	*content_type;
	const char	*retry_after;	/* Retry-After, as sent */
	int64_t		 elapsed_ms;
	bool		 unreachable;	/* no connection could be made: name
					 * lookup, connect, TLS handshake or
					 * connect timeout */
};

/*
 * Called exactly once per request unless the owner cancelled it, always
 * from loop context (outside curl), so it may start or cancel other
 * requests.  The request is freed when done returns: do not cancel it
 * from here.
 */
typedef void (*http_done_cb)(struct http_request *,
	    const struct http_response *, void *arg);

/* Data callback return values. */
#define HTTP_DATA_OK	 0
#define HTTP_DATA_ABORT	(-1)	/* stop; done: HTTP_RESULT_ABORTED */
#define HTTP_DATA_PAUSE	 1	/* not consumed; redelivered after
				 * http_request_resume() */
/*
 * Streaming: bytes of a 2xx response body (borrowed for the call).  Runs
 * inside curl: it must not block; it may call http_request_cancel (any
 * request) and http_request_start (deferred to the loop).
 */
typedef int (*http_data_cb)(const char *, size_t, void *arg);

/*
 * Start a request.  data NULL = unary (body accumulated up to
 * max_response).  Never returns NULL: setup errors are reported through
 * done on a later loop pass.  The returned handle is owned by the engine
 * and valid until done returns or http_request_cancel.
 */
struct http_request *http_request_start(struct http_engine *,
	    const struct http_request_opts *, http_done_cb done,
	    http_data_cb data, void *arg);
/*
 * Cancel: done will not be called, no callback runs afterwards.  Legal
 * at any time, including from a data callback; the handle is invalid on
 * return.
 */
void	 http_request_cancel(struct http_request *);
/* Continue a request whose data callback returned HTTP_DATA_PAUSE. */
void	 http_request_resume(struct http_request *);

const char	*http_result_name(enum http_result);

/*
 * Append a header line (len bytes, without CRLF) to out with secrets
 * redacted: Authorization/Proxy-Authorization keep the scheme only,
 * Cookie/Set-Cookie values go, NTLM/Negotiate blobs in
 * WWW-Authenticate go; control bytes become '?'.  For debug tracing.
 */
void	 http_redact_header(const char *, size_t, struct buf *);

#endif
