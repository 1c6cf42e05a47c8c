/*
 * ewsgw - Exchange calendar presence gateway
 * SPDX-License-Identifier: ISC
 *
 * OAuth2 client-credentials tokens for Exchange Online: one fetch at a
 * time through the HTTP engine, a queue of waiters, a cached token that
 * is refreshed before it expires, and a one-shot invalidation after 401.
 * The client authenticates with a secret or with a signed assertion
 * (certificate credentials); EWS and Microsoft Graph share this cache
 * type, one instance per resource (scope).
 */
#ifndef EWSGW_AUTH_H
#define EWSGW_AUTH_H

#include <stdint.h>

struct auth;
struct auth_wait;
struct config;
struct event_base;
struct http_engine;

#define AUTH_DEFAULT_SCOPE	"https://outlook.office365.com/.default"

struct auth_opts {
	const char	*token_url;	/* copied */
	const char	*client_id;	/* copied */
	const char	*client_secret;	/* copied, wiped on free */
	const char	*scope;		/* NULL = AUTH_DEFAULT_SCOPE */
	/*
	 * Certificate credentials: when set, every fetch sends
	 * client_assertion (what this returns: allocated, wiped and freed
	 * by the auth; NULL with *cause allocated on failure) instead of
	 * client_secret.
	 */
	char		*(*assertion)(void *arg, char **cause);
	void		*assertion_arg;
	/*
	 * The engine token requests go through (borrowed, must outlive the
	 * auth), so the token endpoint has TLS settings of its own; NULL =
	 * the engine the auth serves.
	 */
	struct http_engine *token_engine;
	int64_t		 timeout_ms;	/* token request; 0 = 30 s */
	/* Milliseconds; NULL = time_mono_ms (tests inject one). */
	int64_t		 (*clock)(void);
};

/* Fill opts from [exchange] (borrows conf's strings for the call). */
void	 auth_opts_from_config(struct auth_opts *, const struct config *);
/*
 * The engine tokens are fetched with: the token endpoint's own TLS
 * settings (token_ca_file, token_tls_verify), never Exchange's, and no
 * credentials of its own.  NULL with *cause.
 */
struct http_engine *auth_token_engine_new(struct event_base *,
		    const struct config *, char **cause);

/*
 * New token cache fetching through eng (borrowed; must outlive the auth:
 * free the auth first).  It installs itself as eng's bearer token source,
 * so EWS requests wait for a token and retry once after a 401.
 */
struct auth	*auth_new(struct event_base *, struct http_engine *,
		    const struct auth_opts *);
/* Cancel the fetch, drop waiters without calling them, wipe secrets,
 * detach from the engine.  NULL is fine. */
void		 auth_free(struct auth *);

/*
 * A token valid now (borrowed until the next auth call) or NULL.  Past
 * the refresh point it still answers and starts a background refresh.
 */
const char	*auth_current(struct auth *);

/*
 * Called exactly once, from the loop (never from inside auth_get), with
 * a token or an error (both borrowed for the call), unless cancelled.
 */
typedef void	 (*auth_token_cb)(const char *token, const char *error,
		    void *arg);
/*
 * Get a token: concurrent callers share one fetch.  Returns a handle
 * owned by the auth, valid until the callback runs or it is cancelled.
 */
struct auth_wait *auth_get(struct auth *, auth_token_cb, void *arg);
void		 auth_wait_cancel(struct auth *, struct auth_wait *);

/*
 * The server refused token (borrowed): forget it if it is still the
 * cached one, so the next auth_get fetches exactly one new token.
 * NULL forgets whatever is cached.
 */
void		 auth_invalidate(struct auth *, const char *token);

struct auth_stats {
	uint64_t	 fetches;
	uint64_t	 failures;
	int64_t		 expires_in_ms;	/* cached token; 0 if none */
};
void		 auth_get_stats(struct auth *, struct auth_stats *);

#endif
