/*
 * ewsgw - Exchange calendar presence gateway
 * SPDX-License-Identifier: ISC
 *
 * The parsed configuration (/etc/ewsgw.conf).  conf_load() builds a new
 * struct config from a file and validates all of it; reload swaps it in
 * only if everything passed.  Pure: no side effects beyond reading the
 * config file and the files it names.
 */
#ifndef EWSGW_CONF_H
#define EWSGW_CONF_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#define CONF_EX_CONFIG	78	/* sysexits.h EX_CONFIG */

enum conf_auth {
	CONF_AUTH_NTLM, CONF_AUTH_BASIC, CONF_AUTH_NEGOTIATE, CONF_AUTH_OAUTH2
};
enum conf_mode { CONF_MODE_STREAMING, CONF_MODE_PUSH, CONF_MODE_POLL };
enum conf_idtype { CONF_ID_SMTP, CONF_ID_UPN, CONF_ID_SID };
enum conf_charging {
	CONF_CHARGING_SERVICE_ACCOUNT,	/* Exchange 2010 before SP2 RU4 */
	CONF_CHARGING_IMPERSONATED	/* Exchange 2013+, Online */
};
/* How a calendar status is shown. */
enum conf_show { CONF_SHOW_BUSY, CONF_SHOW_AVAILABLE, CONF_SHOW_AWAY,
	CONF_SHOW_IGNORE };

/* One key = value line kept verbatim, for sink sections. */
struct conf_kv {
	char		*key;
	char		*value;
	int		 line;
};

/* Which protocol watches a mailbox. */
enum conf_backend { CONF_BACKEND_EWS, CONF_BACKEND_GRAPH };

struct conf_mailbox {
	char		*address;	/* SMTP address, lower-cased */
	enum conf_backend backend;	/* [graph] mailboxes: Graph */
	enum conf_idtype idtype;	/* how to impersonate it */
	char		*id;		/* UPN or SID when idtype != SMTP */
	int		 line;
	bool		 in_file;	/* line is in its list file
					   (mailbox_file or
					   graph.mailbox_file), not path */
};

struct conf_sink {
	char		*name;		/* [sink NAME] */
	char		*type;		/* log|file|webhook|exec|sip|xmpp|
					   plugin */
	struct conf_kv	*kv;		/* every other key, in file order */
	size_t		 nkv;
	int		 line;		/* line of the section header */
};

struct config {
	char		*path;		/* file it was read from */

	struct {
		char		*url;
		char		*version;	/* RequestServerVersion */
		enum conf_auth	 auth;
		char		*username;	/* DOMAIN\user or user@domain */
		char		*password;	/* secret, from password_file */
		char		*password_file;
		char		*ca_file;
		char		*client_cert;
		char		*client_key;
		bool		 tls_verify;
		enum conf_mode	 mode;
		enum conf_idtype impersonation;	/* default id type */
		char		*tenant;
		char		*client_id;
		char		*client_secret;	/* secret */
		char		*client_secret_file;
		char		*token_url;
		/* The token endpoint's own TLS (the client secret goes
		 * there): never [exchange] ca_file / tls_verify. */
		char		*token_ca_file;
		bool		 token_tls_verify;
		/* Group mailboxes by their server (GetUserSettings); the
		 * Autodiscover URL, NULL: from each mailbox's domain. */
		bool		 autodiscover;
		char		*autodiscover_url;
		/* Each mailbox asked again once per interval, 0 never. */
		int64_t		 autodiscover_interval_ms;
		int64_t		 request_timeout_ms;
		int64_t		 connect_timeout_ms;
		/* Credentials refused: wait this long, then one login attempt
		 * per step, the step tripling up to login_retry_max_ms. */
		int64_t		 login_retry_ms;
		int64_t		 login_retry_max_ms;
	} exchange;

	struct {
		char		*listen;	/* address:port, NULL = off */
		char		*url;		/* what Exchange calls back */
		char		*certificate;
		char		*key;
		unsigned	 status_frequency;	/* minutes */
		int64_t		 heartbeat_timeout_ms;	/* 0: two intervals */
		char		*allow;		/* CIDR list, NULL = anyone */
		unsigned	 max_connections;	/* open at once */
		unsigned	 max_body;	/* bytes per request body */
		int64_t		 request_timeout_ms;	/* whole exchange */
	} push;

	struct {
		unsigned	 max_concurrency;
		unsigned	 max_subscriptions;
		unsigned	 subscriptions_per_connection;	/* 1..200 */
		unsigned	 connection_timeout;	/* minutes, 1..30 */
		unsigned	 find_count_limit;
		enum conf_charging charging;
		bool		 charging_set;	/* explicit in the file */
		unsigned	 streaming_connections_per_anchor;
		/* Streams of one mailbox each when the server refuses
		 * grouping; the other mailboxes are polled. */
		unsigned	 ungrouped_streams;
		/* percent of the budget kept for short requests */
		unsigned	 short_request_share;
		int64_t		 idle_timeout_ms;	/* dead stream */
		int64_t		 backoff_max_ms;
		int64_t		 poll_interval_ms;
	} throttling;

	struct conf_mailbox	*mailboxes;	/* both backends */
	size_t			 nmailboxes;
	char			*mailbox_file;

	/* Microsoft Graph, for mailboxes in Exchange Online.  On when
	 * graph.nmailboxes > 0 (mailboxes or mailbox_file) or auto_online. */
	struct {
		char		*tenant_id;
		char		*client_id;
		char		*client_secret;	/* secret, read from
						   client_secret_file */
		char		*client_secret_file;
		char		*certificate_file;	/* or this, key_file */
		char		*key_file;
		char		*token_url;	/* default from tenant_id */
		char		*token_ca_file;
		bool		 token_tls_verify;
		char		*url;		/* Graph's base, .../v1.0 */
		char		*ca_file;
		bool		 tls_verify;
		char		*mailbox_list;	/* [graph] mailboxes as is */
		char		*mailbox_file;
		size_t		 nmailboxes;	/* of mailboxes[] on Graph */
		/* "auto": [exchange] mailboxes that Autodiscover finds in
		 * Exchange Online move to Graph. */
		bool		 auto_online;
		int64_t		 delta_interval_ms;
		/* Change notifications through the push listener: on when
		 * notifications and notification_url are set. */
		bool		 notifications;
		char		*notification_url;
		int64_t		 subscription_lifetime_ms;
		unsigned	 mailbox_concurrency;
		/* Requests per window: per mailbox, and for the app. */
		unsigned	 mailbox_rate;
		int64_t		 mailbox_rate_window_ms;
		unsigned	 app_rate;
		int64_t		 app_rate_window_ms;
		unsigned	 max_connections;
		int64_t		 request_timeout_ms;
		/* --verify: a mailbox outside the watched ones that the
		 * application access policy must refuse. */
		char		*verify_outside;
	} graph;

	struct {
		int64_t		 horizon_ms;
		int64_t		 resync_interval_ms;
		int64_t		 lookback_ms;
		int64_t		 debounce_ms;
		/* The automatic-replies cycle: percent of max_concurrency
		 * (0: off), and the shortest time a cycle takes. */
		unsigned	 oof_share;
		int64_t		 oof_interval_ms;
		enum conf_show	 tentative;
		enum conf_show	 all_day;
		enum conf_show	 working_elsewhere;
		enum conf_show	 free;
		enum conf_show	 oof;
	} presence;

	struct conf_sink	*sinks;
	size_t			 nsinks;

	struct {
		char		*socket;
		mode_t		 mode;
		char		*group;
	} status;

	struct {
		int		 level;		/* syslog priority */
	} log;

	struct {
		/* NULL: see conf_state_directory */
		char		*state_directory;
	} daemon;

	/* Several nodes sharing one account's budget through etcd. */
	struct {
		char		*endpoints;	/* URLs, one blank between;
						 * NULL: no cluster */
		char		**endpoint;	/* each of them */
		size_t		 nendpoints;
		char		*name;		/* the cluster's etcd prefix */
		char		*node;		/* default: the host name */
		int64_t		 lease_ttl_ms;	/* whole seconds */
		unsigned	 group_slices;	/* 0: place by address */
		char		*ca_file;
		char		*client_cert;
		char		*client_key;
	} cluster;
};

/*
 * Read and validate path.  Returns a new config (free with conf_free)
 * or NULL.  *errors (errors may be NULL) is set to every problem found
 * as "FILE:LINE: message\n" lines ("FILE: message\n" when no line
 * applies), allocated, caller frees; NULL when there is none.  A config
 * is returned only when there is no error.  Secrets never appear in the
 * messages.
 */
struct config	*conf_load(const char *path, char **errors);
/*
 * The same for a configuration already in memory (data need not be
 * NUL-terminated); name is used in messages, as cf->path, and its
 * directory anchors relative paths.
 */
struct config	*conf_load_buffer(const char *name, const char *data,
		    size_t len, char **errors);
/*
 * conf_load() for a reload while old runs.  The restart-only keys (not
 * conf_key_reloadable()) keep old's values, before any rule or derived
 * default looks at them, so the result is exactly what the daemon will
 * run with; the keys whose value in the file differs are listed in
 * *kept ("exchange.url, exchange.mode", allocated, caller frees; NULL
 * when none and on error).  old is borrowed.
 */
struct config	*conf_reload(const char *path, const struct config *old,
		    char **errors, char **kept);
/*
 * The directory a bare credential name is read from when
 * $CREDENTIALS_DIRECTORY is not set (SYSCONFDIR/ewsgw as built: where
 * the unit's LoadCredential= takes it from).  The string is borrowed.
 */
void		 conf_set_credential_store(const char *dir);
const char	*conf_credential_store(void);
/* Free everything, wiping the secrets; NULL is fine. */
void		 conf_free(struct config *);

/*
 * Whether a key may change on reload without a restart.  Every key of a
 * [sink NAME] section is; unknown keys are not.
 */
bool		 conf_key_reloadable(const char *section, const char *key);
/*
 * The i-th key of the table (from 0) as its section and name, both
 * static; false past the last.  [sink NAME] keys are not in the table.
 */
bool		 conf_key_at(size_t i, const char **section, const char **name);
/*
 * Count the keys, reloadable or not, whose values differ between old
 * and new, except the mailbox list and the sinks (compare those entry by
 * entry); *what is set to an "exchange.url, log.level"-style list
 * (allocated, caller frees) or NULL when the count is 0.  For reload's
 * log.
 */
int		 conf_diff_keys(const struct config *old,
		    const struct config *new, char **what);

/*
 * Where the daemon keeps what must survive a restart: [daemon]
 * state_directory, else the first directory of $STATE_DIRECTORY (set by
 * systemd's StateDirectory=), else NULL (nothing is kept).  Borrowed
 * from conf or the environment.
 */
const char	*conf_state_directory(const struct config *);

/* Names for enums, for status output and messages. */
const char	*conf_auth_name(enum conf_auth);
const char	*conf_mode_name(enum conf_mode);
const char	*conf_idtype_name(enum conf_idtype);
const char	*conf_charging_name(enum conf_charging);
const char	*conf_show_name(enum conf_show);

/* A sink key's value or NULL (borrowed). */
const struct conf_kv *conf_sink_get(const struct conf_sink *, const char *);

#endif
