/*
 * ewsgw - Exchange calendar presence gateway
 * SPDX-License-Identifier: ISC
 *
 * Configuration parser: an INI file read through one table of keys (type,
 * target, default, bounds, reloadable) into a new struct config, with
 * every problem reported as FILE:LINE and all of them collected.
 */
#include "config.h"

#include <sys/stat.h>
#include <sys/un.h>

#include <ctype.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <syslog.h>
#include <unistd.h>

#include "base/buf.h"
#include "base/cidr.h"
#include "base/conf.h"
#include "base/secretfile.h"
#include "base/log.h"
#include "base/timeutil.h"
#include "base/xmalloc.h"

#ifndef EWSGW_RUNSTATEDIR
#define EWSGW_RUNSTATEDIR	"/run"
#endif

#define CONF_MAX_FILE		(64 * 1024 * 1024)	/* config, mailboxes */
#define CONF_MAX_SECRET		(64 * 1024)
#define CONF_MAX_ERRORS		200
#define CONF_MAX_SINKS		256	/* sink sections */
#define CONF_MAX_SINK_KEYS	256	/* keys in one sink section */

#define SEC		((int64_t)1000)
#define MIN		(60 * SEC)
#define HOUR		(60 * MIN)
#define DAY		(24 * HOUR)

enum section {
	SEC_EXCHANGE, SEC_PUSH, SEC_THROTTLING, SEC_MAILBOXES, SEC_PRESENCE,
	SEC_STATUS, SEC_LOG, SEC_DAEMON, SEC_CLUSTER, SEC_GRAPH, SEC_COUNT,
	SEC_NONE = -1,		/* before the first header */
	SEC_UNKNOWN = -2,	/* inside a bad header: keys are skipped */
	SEC_SINK = -3		/* inside [sink NAME] */
};

static const char *const section_names[SEC_COUNT] = {
	"exchange", "push", "throttling", "mailboxes", "presence", "status",
	"log", "daemon", "cluster", "graph"
};

enum ktype {
	KT_STR,		/* any non-empty string */
	KT_URL,		/* http:// or https:// URL */
	KT_URLS,	/* one or more URLs, blanks or commas between */
	KT_LISTEN,	/* address:port */
	KT_CIDRS,	/* addresses and networks (cidr.h) */
	KT_PATH,	/* file name; relative to the config's directory */
	KT_CRED,	/* KT_PATH, or a bare systemd credential name */
	KT_BOOL,
	KT_UINT,	/* unsigned in min..max */
	KT_MINUTES,	/* unsigned minutes; "30" or "30m" */
	KT_DURATION,	/* int64_t milliseconds, min..max */
	KT_ENUM,	/* int from an enum table */
	KT_NAME,	/* string from a fixed list (stored as the string) */
	KT_MODE,	/* octal mode_t */
	KT_MAILBOX	/* repeatable: one mailbox */
};

#define CK_RELOAD	0x1	/* may change on reload */
#define CK_READABLE	0x2	/* the named file must be readable now */
#define CK_DERIVED	0x4	/* unset: worked out from other keys */

struct conf_enum {
	const char	*name;
	int		 value;
};

struct conf_key {
	int			 section;
	const char		*name;
	enum ktype		 type;
	size_t			 off;
	const char		*def;	/* default, parsed as if written */
	int64_t			 min, max;
	const struct conf_enum	*enums;	/* KT_ENUM */
	const char *const	*names;	/* KT_NAME */
	unsigned		 flags;
};

static const struct conf_enum auth_enum[] = {
	{ "ntlm", CONF_AUTH_NTLM }, { "basic", CONF_AUTH_BASIC },
	{ "negotiate", CONF_AUTH_NEGOTIATE }, { "oauth2", CONF_AUTH_OAUTH2 },
	{ NULL, 0 }
};
static const struct conf_enum mode_enum[] = {
	{ "streaming", CONF_MODE_STREAMING }, { "push", CONF_MODE_PUSH },
	{ "poll", CONF_MODE_POLL }, { NULL, 0 }
};
static const struct conf_enum idtype_enum[] = {
	{ "smtp", CONF_ID_SMTP }, { "upn", CONF_ID_UPN },
	{ "sid", CONF_ID_SID }, { NULL, 0 }
};
static const struct conf_enum charging_enum[] = {
	{ "service-account", CONF_CHARGING_SERVICE_ACCOUNT },
	{ "impersonated", CONF_CHARGING_IMPERSONATED }, { NULL, 0 }
};
static const struct conf_enum busy_avail_enum[] = {
	{ "busy", CONF_SHOW_BUSY }, { "available", CONF_SHOW_AVAILABLE },
	{ NULL, 0 }
};
static const struct conf_enum avail_busy_enum[] = {
	{ "available", CONF_SHOW_AVAILABLE }, { "busy", CONF_SHOW_BUSY },
	{ NULL, 0 }
};
static const struct conf_enum all_day_enum[] = {
	{ "busy", CONF_SHOW_BUSY }, { "available", CONF_SHOW_AVAILABLE },
	{ "ignore", CONF_SHOW_IGNORE }, { NULL, 0 }
};
static const struct conf_enum elsewhere_enum[] = {
	{ "busy", CONF_SHOW_BUSY }, { "available", CONF_SHOW_AVAILABLE },
	{ "away", CONF_SHOW_AWAY }, { NULL, 0 }
};
static const struct conf_enum away_busy_enum[] = {
	{ "away", CONF_SHOW_AWAY }, { "busy", CONF_SHOW_BUSY }, { NULL, 0 }
};
static const struct conf_enum show_enum[] = {
	{ "busy", CONF_SHOW_BUSY }, { "available", CONF_SHOW_AVAILABLE },
	{ "away", CONF_SHOW_AWAY }, { "ignore", CONF_SHOW_IGNORE },
	{ NULL, 0 }
};
static const struct conf_enum level_enum[] = {
	{ "debug", LOG_DEBUG }, { "info", LOG_INFO }, { "notice", LOG_NOTICE },
	{ "warning", LOG_WARNING }, { "err", LOG_ERR }, { "error", LOG_ERR },
	{ NULL, 0 }
};

/* ExchangeVersionType in types.xsd, oldest first. */
static const char *const version_names[] = {
	"Exchange2007", "Exchange2007_SP1", "Exchange2009", "Exchange2010",
	"Exchange2010_SP1", "Exchange2010_SP2", "Exchange2012", "Exchange2013",
	"Exchange2013_SP1", "Exchange2015", "Exchange2016", "V2015_10_05",
	"V2016_01_06", "V2016_04_13", "V2016_07_13", "V2016_10_10",
	"V2017_01_07", "V2017_04_14", "V2017_07_11", NULL
};

static const char *const sink_types[] = {
	"log", "file", "webhook", "exec", "sip", "xmpp", "plugin", NULL
};

#define O(m)	offsetof(struct config, m)
#define K(sec, name, type, member, def, min, max, flags)		\
	{ SEC_##sec, name, type, O(member), def, min, max, NULL, NULL, flags }
#define KE(sec, name, member, def, tab, flags)				\
	{ SEC_##sec, name, KT_ENUM, O(member), def, 0, 0, tab, NULL, flags }

static const struct conf_key keys[] = {
	K(EXCHANGE, "url", KT_URL, exchange.url, NULL, 0, 0, 0),
	{ SEC_EXCHANGE, "version", KT_NAME, O(exchange.version),
	    "Exchange2013_SP1", 0, 0, NULL, version_names, 0 },
	KE(EXCHANGE, "auth", exchange.auth, "ntlm", auth_enum, 0),
	K(EXCHANGE, "username", KT_STR, exchange.username, NULL, 0, 0, 0),
	K(EXCHANGE, "password_file", KT_CRED, exchange.password_file, NULL,
	    0, 0, CK_RELOAD),
	K(EXCHANGE, "ca_file", KT_PATH, exchange.ca_file, NULL, 0, 0,
	    CK_RELOAD | CK_READABLE),
	K(EXCHANGE, "client_cert", KT_PATH, exchange.client_cert, NULL, 0, 0,
	    CK_RELOAD | CK_READABLE),
	K(EXCHANGE, "client_key", KT_PATH, exchange.client_key, NULL, 0, 0,
	    CK_RELOAD | CK_READABLE),
	K(EXCHANGE, "tls_verify", KT_BOOL, exchange.tls_verify, "yes", 0, 0,
	    CK_RELOAD),
	KE(EXCHANGE, "mode", exchange.mode, "streaming", mode_enum, 0),
	KE(EXCHANGE, "impersonation", exchange.impersonation, "smtp",
	    idtype_enum, 0),
	K(EXCHANGE, "request_timeout", KT_DURATION, exchange.request_timeout_ms,
	    "60s", 1 * SEC, 1 * HOUR, CK_RELOAD),
	K(EXCHANGE, "connect_timeout", KT_DURATION, exchange.connect_timeout_ms,
	    "30s", 1 * SEC, 10 * MIN, CK_RELOAD),
	K(EXCHANGE, "login_retry", KT_DURATION, exchange.login_retry_ms,
	    "1m", 1 * SEC, 1 * DAY, CK_RELOAD),
	K(EXCHANGE, "login_retry_max", KT_DURATION,
	    exchange.login_retry_max_ms, "30m", 1 * SEC, 7 * DAY, CK_RELOAD),
	K(EXCHANGE, "tenant", KT_STR, exchange.tenant, NULL, 0, 0, 0),
	K(EXCHANGE, "client_id", KT_STR, exchange.client_id, NULL, 0, 0, 0),
	K(EXCHANGE, "client_secret_file", KT_CRED,
	    exchange.client_secret_file, NULL, 0, 0, CK_RELOAD),
	K(EXCHANGE, "token_url", KT_URL, exchange.token_url, NULL, 0, 0,
	    CK_RELOAD),
	K(EXCHANGE, "token_ca_file", KT_PATH, exchange.token_ca_file, NULL, 0,
	    0, CK_READABLE),
	K(EXCHANGE, "token_tls_verify", KT_BOOL, exchange.token_tls_verify,
	    "yes", 0, 0, 0),
	K(EXCHANGE, "autodiscover", KT_BOOL, exchange.autodiscover, "no", 0,
	    0, 0),
	K(EXCHANGE, "autodiscover_url", KT_URL, exchange.autodiscover_url,
	    NULL, 0, 0, 0),
	K(EXCHANGE, "autodiscover_interval", KT_DURATION,
	    exchange.autodiscover_interval_ms, "24h", 0, 30 * DAY, CK_RELOAD),

	K(PUSH, "listen", KT_LISTEN, push.listen, NULL, 0, 0, 0),
	K(PUSH, "url", KT_URL, push.url, NULL, 0, 0, 0),
	K(PUSH, "certificate", KT_PATH, push.certificate, NULL, 0, 0,
	    CK_RELOAD | CK_READABLE),
	K(PUSH, "key", KT_PATH, push.key, NULL, 0, 0,
	    CK_RELOAD | CK_READABLE),
	K(PUSH, "status_frequency", KT_MINUTES, push.status_frequency, "1",
	    1, 1440, 0),
	K(PUSH, "heartbeat_timeout", KT_DURATION, push.heartbeat_timeout_ms,
	    "0", 0, 1 * DAY, CK_RELOAD),
	K(PUSH, "allow", KT_CIDRS, push.allow, NULL, 0, 0, 0),
	K(PUSH, "max_connections", KT_UINT, push.max_connections, "256", 1,
	    65536, 0),
	K(PUSH, "max_body", KT_UINT, push.max_body, "262144", 4096,
	    16 * 1024 * 1024, 0),
	K(PUSH, "request_timeout", KT_DURATION, push.request_timeout_ms,
	    "10s", 1 * SEC, 5 * MIN, 0),

	K(THROTTLING, "max_concurrency", KT_UINT, throttling.max_concurrency,
	    "10", 1, 1000, CK_RELOAD),
	K(THROTTLING, "max_subscriptions", KT_UINT,
	    throttling.max_subscriptions, "5000", 1, 1000000, CK_RELOAD),
	K(THROTTLING, "subscriptions_per_connection", KT_UINT,
	    throttling.subscriptions_per_connection, "200", 1, 200, 0),
	K(THROTTLING, "connection_timeout", KT_MINUTES,
	    throttling.connection_timeout, "30", 1, 30, CK_RELOAD),
	K(THROTTLING, "find_count_limit", KT_UINT,
	    throttling.find_count_limit, "1000", 1, 100000, CK_RELOAD),
	KE(THROTTLING, "charging", throttling.charging, NULL, charging_enum,
	    CK_DERIVED),
	K(THROTTLING, "streaming_connections_per_anchor", KT_UINT,
	    throttling.streaming_connections_per_anchor, NULL, 1, 100,
	    CK_RELOAD),
	K(THROTTLING, "ungrouped_streams", KT_UINT,
	    throttling.ungrouped_streams, "1000", 0, 100000, CK_RELOAD),
	K(THROTTLING, "short_request_share", KT_UINT,
	    throttling.short_request_share, "20", 0, 90, CK_RELOAD),
	K(THROTTLING, "idle_timeout", KT_DURATION, throttling.idle_timeout_ms,
	    "90s", 1 * SEC, 1 * HOUR, CK_RELOAD),
	K(THROTTLING, "backoff_max", KT_DURATION, throttling.backoff_max_ms,
	    "5m", 1 * SEC, 1 * DAY, CK_RELOAD),
	K(THROTTLING, "poll_interval", KT_DURATION,
	    throttling.poll_interval_ms, "60s", 1 * SEC, 1 * DAY, CK_RELOAD),

	K(MAILBOXES, "file", KT_PATH, mailbox_file, NULL, 0, 0, CK_RELOAD),
	K(MAILBOXES, "mailbox", KT_MAILBOX, mailboxes, NULL, 0, 0, CK_RELOAD),

	K(PRESENCE, "horizon", KT_DURATION, presence.horizon_ms, "24h",
	    1 * HOUR, 30 * DAY, CK_RELOAD),
	K(PRESENCE, "resync_interval", KT_DURATION,
	    presence.resync_interval_ms, "6h", 1 * MIN, 7 * DAY, CK_RELOAD),
	K(PRESENCE, "lookback", KT_DURATION, presence.lookback_ms, "5m",
	    0, 1 * DAY, CK_RELOAD),
	K(PRESENCE, "debounce", KT_DURATION, presence.debounce_ms, "2s",
	    0, 1 * HOUR, CK_RELOAD),
	K(PRESENCE, "oof_share", KT_UINT, presence.oof_share, "10", 0, 50,
	    CK_RELOAD),
	K(PRESENCE, "oof_interval", KT_DURATION, presence.oof_interval_ms,
	    "30s", 1 * SEC, 1 * DAY, CK_RELOAD),
	KE(PRESENCE, "tentative", presence.tentative, "busy", busy_avail_enum,
	    CK_RELOAD),
	KE(PRESENCE, "all_day", presence.all_day, "available", all_day_enum,
	    CK_RELOAD),
	KE(PRESENCE, "working_elsewhere", presence.working_elsewhere,
	    "available", elsewhere_enum, CK_RELOAD),
	KE(PRESENCE, "free", presence.free, "available", avail_busy_enum,
	    CK_RELOAD),
	KE(PRESENCE, "oof", presence.oof, "away", away_busy_enum, CK_RELOAD),

	K(STATUS, "socket", KT_PATH, status.socket,
	    EWSGW_RUNSTATEDIR "/ewsgw/status.sock", 0, 0, 0),
	K(STATUS, "mode", KT_MODE, status.mode, "0660", 0, 07777, 0),
	K(STATUS, "group", KT_STR, status.group, NULL, 0, 0, 0),

	KE(LOG, "level", log.level, "info", level_enum, CK_RELOAD),

	K(DAEMON, "state_directory", KT_PATH, daemon.state_directory, NULL,
	    0, 0, CK_RELOAD),

	K(CLUSTER, "endpoints", KT_URLS, cluster.endpoints, NULL, 0, 0, 0),
	K(CLUSTER, "name", KT_STR, cluster.name, NULL, 0, 0, 0),
	K(CLUSTER, "node", KT_STR, cluster.node, NULL, 0, 0, CK_DERIVED),
	K(CLUSTER, "lease_ttl", KT_DURATION, cluster.lease_ttl_ms, "10s",
	    2 * SEC, 1 * HOUR, 0),
	K(CLUSTER, "group_slices", KT_UINT, cluster.group_slices, "1", 0,
	    1024, 0),
	K(CLUSTER, "ca_file", KT_PATH, cluster.ca_file, NULL, 0, 0,
	    CK_READABLE),
	K(CLUSTER, "client_cert", KT_PATH, cluster.client_cert, NULL, 0, 0,
	    CK_READABLE),
	K(CLUSTER, "client_key", KT_PATH, cluster.client_key, NULL, 0, 0,
	    CK_READABLE),

	K(GRAPH, "tenant_id", KT_STR, graph.tenant_id, NULL, 0, 0, 0),
	K(GRAPH, "client_id", KT_STR, graph.client_id, NULL, 0, 0, 0),
	K(GRAPH, "client_secret_file", KT_CRED, graph.client_secret_file, NULL,
	    0, 0, 0),
	K(GRAPH, "certificate_file", KT_PATH, graph.certificate_file, NULL, 0,
	    0, CK_READABLE),
	K(GRAPH, "key_file", KT_PATH, graph.key_file, NULL, 0, 0, CK_READABLE),
	K(GRAPH, "token_url", KT_URL, graph.token_url, NULL, 0, 0,
	    CK_DERIVED),
	K(GRAPH, "token_ca_file", KT_PATH, graph.token_ca_file, NULL, 0, 0,
	    CK_READABLE),
	K(GRAPH, "token_tls_verify", KT_BOOL, graph.token_tls_verify, "yes", 0,
	    0, 0),
	K(GRAPH, "url", KT_URL, graph.url, "https://graph.microsoft.com/v1.0",
	    0, 0, 0),
	K(GRAPH, "ca_file", KT_PATH, graph.ca_file, NULL, 0, 0, CK_READABLE),
	K(GRAPH, "tls_verify", KT_BOOL, graph.tls_verify, "yes", 0, 0, 0),
	K(GRAPH, "mailboxes", KT_STR, graph.mailbox_list, NULL, 0, 0,
	    CK_RELOAD),
	K(GRAPH, "mailbox_file", KT_PATH, graph.mailbox_file, NULL, 0, 0,
	    CK_RELOAD),
	K(GRAPH, "auto", KT_BOOL, graph.auto_online, "no", 0, 0, 0),
	K(GRAPH, "delta_interval", KT_DURATION, graph.delta_interval_ms, "5m",
	    1 * SEC, 1 * DAY, CK_RELOAD),
	K(GRAPH, "notifications", KT_BOOL, graph.notifications, "yes", 0, 0,
	    0),
	K(GRAPH, "notification_url", KT_URL, graph.notification_url, NULL, 0,
	    0, 0),
	K(GRAPH, "subscription_lifetime", KT_DURATION,
	    graph.subscription_lifetime_ms, "4220m", 1 * MIN, 4220 * MIN, 0),
	K(GRAPH, "mailbox_concurrency", KT_UINT, graph.mailbox_concurrency,
	    "4", 1, 4, 0),
	K(GRAPH, "mailbox_rate", KT_UINT, graph.mailbox_rate, "10000", 1,
	    1000000, 0),
	K(GRAPH, "mailbox_rate_window", KT_DURATION,
	    graph.mailbox_rate_window_ms, "10m", 1 * SEC, 1 * DAY, 0),
	K(GRAPH, "app_rate", KT_UINT, graph.app_rate, "130000", 1, 10000000,
	    0),
	K(GRAPH, "app_rate_window", KT_DURATION, graph.app_rate_window_ms,
	    "10s", 1 * SEC, 1 * DAY, 0),
	K(GRAPH, "max_connections", KT_UINT, graph.max_connections, "64", 1,
	    1024, 0),
	K(GRAPH, "request_timeout", KT_DURATION, graph.request_timeout_ms,
	    "60s", 1 * SEC, 1 * HOUR, 0),
	K(GRAPH, "verify_outside", KT_STR, graph.verify_outside, NULL, 0, 0,
	    CK_RELOAD),
};
#define NKEYS	(sizeof(keys) / sizeof(keys[0]))

/* Parser state for one load. */
struct cstate {
	struct config	*cf;
	const char	*file;		/* config name for messages */
	char		*dir;		/* its directory, for relative paths */
	struct buf	 errs;
	unsigned	 nerrs;
	int		 keyline[NKEYS];	/* 0 = not set, < 0 = bad */
	int		 secline[SEC_COUNT];	/* 0 = absent */
	int		 sec;			/* enum section */
	struct conf_sink *sink;			/* when sec == SEC_SINK */
	size_t		 mbcap;			/* slots in cf->mailboxes */
	const struct config *old;		/* reload: the running one */
	bool		 kept[NKEYS];		/* reload: value from old */
	struct buf	 kept_list;		/* reload: "a.b, c.d" */
};

static void	 cerr(struct cstate *, const char *, int, const char *, ...)
		    __attribute__((format(printf, 4, 5)));
static char	*trim(char *);
static int	 next_line(const char **, const char *, char **, int *);
static int	 read_file(const char *, size_t, struct buf *, struct stat *);
static int	 unquote(char *, char **, const char **);
static const char *closest(const char *, const char *const *, size_t);
static size_t	 edit_distance(const char *, const char *);
static const struct conf_key *key_find(int, const char *);
static int	 key_line(const struct cstate *, int, const char *);
static int	 key_set(struct cstate *, const struct conf_key *, const char *,
		    int);
static char	*resolve_path(struct cstate *, const char *);
static void	 fmt_duration(int64_t, char *, size_t);
static int	 enum_lookup(const struct conf_enum *, const char *, int *);
static void	 enum_list(const struct conf_enum *, char *, size_t);
static void	 parse_line(struct cstate *, char *, int);
static void	 parse_header(struct cstate *, char *, int);
static void	 parse_sink_kv(struct cstate *, const char *, const char *,
		    int);
static int	 valid_url(const char *);
static int	 set_urls(struct cstate *, const struct conf_key *,
		    const char *, int, char **);
static bool	 valid_name(const char *);
static void	 cluster_finish(struct cstate *);
static int	 valid_listen(const char *);
static int	 valid_address(const char *);
static int	 valid_sid(const char *);
static void	 mailbox_add(struct cstate *, const char *, int, const char *,
		    enum conf_backend, bool);
static void	 mailbox_file_load(struct cstate *, int, const char *,
		    enum conf_backend);
static void	 graph_finish(struct cstate *);
static void	 mailboxes_finish(struct cstate *);
static void	 finish(struct cstate *);
static void	 require(struct cstate *, int, const char *, const char *);
static char	*read_secret(struct cstate *, int, const char *, const char *);
static void	 keep_restart_only(struct cstate *, bool);
static size_t	 key_size(const struct conf_key *, bool *);
static bool	 key_differs(const struct conf_key *, const struct config *,
		    const struct config *);
static void	 key_copy(const struct conf_key *, struct config *,
		    const struct config *);
static enum conf_charging charging_default(const char *);
static bool	 version_before_2010_sp2(const char *);
static bool	 version_is_2013(const char *);
static uint32_t	 hash_str(const char *);
static bool	 str_differs(const char *, const char *);
static const char *enum_name(const struct conf_enum *, int);
static struct config *load(const char *, const char *, size_t, int,
		    const struct config *, char **, char **);
static struct config *load_file(const char *, const struct config *,
		    char **, char **);

static void
cerr(struct cstate *st, const char *file, int line, const char *fmt, ...)
{
	va_list	 ap;

	if (st->nerrs++ >= CONF_MAX_ERRORS) {
		if (st->nerrs == CONF_MAX_ERRORS + 1)
			buf_printf(&st->errs, "%s: too many errors, "
			    "giving up reporting\n", st->file);
		return;
	}
	if (line > 0)
		buf_printf(&st->errs, "%s:%d: ", file, line);
	else
		buf_printf(&st->errs, "%s: ", file);
	va_start(ap, fmt);
	buf_vprintf(&st->errs, fmt, ap);
	va_end(ap);
	buf_putc(&st->errs, '\n');
}

static char *
trim(char *s)
{
	char	*e;

	while (isspace((unsigned char)*s))
		s++;
	e = s + strlen(s);
	while (e > s && isspace((unsigned char)e[-1]))
		*--e = '\0';
	return (s);
}

/*
 * Cut the next line out of *p..end into *out (allocated, no newline, a
 * trailing CR dropped) and count it in *lineno.  Returns 1, 0 at the
 * end, or -1 (with *out NULL) for a line holding a NUL byte.
 */
static int
next_line(const char **p, const char *end, char **out, int *lineno)
{
	const char	*nl;
	size_t		 n;

	*out = NULL;
	if (*p >= end)
		return (0);
	nl = memchr(*p, '\n', (size_t)(end - *p));
	n = nl != NULL ? (size_t)(nl - *p) : (size_t)(end - *p);
	(*lineno)++;
	if (memchr(*p, '\0', n) != NULL) {
		*p = nl != NULL ? nl + 1 : end;
		return (-1);
	}
	if (n > 0 && (*p)[n - 1] == '\r')
		n--;
	*out = xstrndup(*p, n);
	*p = nl != NULL ? nl + 1 : end;
	return (1);
}

/*
 * Read a regular file of at most max bytes into b.  Devices and FIFOs
 * are refused so a mistyped name cannot block the loader.  Returns 0 or
 * -1 with errno set.
 */
static int
read_file(const char *path, size_t max, struct buf *b, struct stat *sbp)
{
	struct stat	 sb;
	ssize_t		 n;
	size_t		 room;
	int		 fd, saved;

	fd = open(path, O_RDONLY | O_CLOEXEC | O_NOCTTY | O_NONBLOCK);
	if (fd == -1)
		return (-1);
	if (fstat(fd, &sb) == -1)
		goto fail;
	if (S_ISDIR(sb.st_mode)) {
		errno = EISDIR;
		goto fail;
	}
	if (!S_ISREG(sb.st_mode)) {
		errno = EINVAL;
		goto fail;
	}
	if ((uintmax_t)sb.st_size > max) {
		errno = EFBIG;
		goto fail;
	}
	if (sbp != NULL)
		*sbp = sb;
	/*
	 * Read straight into the buffer, sized up front, so a secret is
	 * not left behind in memory a reallocation gave back.
	 */
	buf_reserve(b, (size_t)sb.st_size + 1);
	for (;;) {
		room = b->cap - b->len - 1;
		if (room == 0) {
			if (b->len >= max) {
				errno = EFBIG;
				goto fail;
			}
			buf_reserve(b, 4096);
			room = b->cap - b->len - 1;
		}
		n = read(fd, b->data + b->len, room);
		if (n == -1 && errno == EINTR)
			continue;
		if (n == -1)
			goto fail;
		if (n == 0)
			break;
		b->len += (size_t)n;
		b->data[b->len] = '\0';
	}
	close(fd);
	return (0);
fail:
	saved = errno;
	close(fd);
	errno = saved;
	return (-1);
}

/*
 * Take a raw value (text after '='): strip a trailing " # comment",
 * surrounding blanks and one pair of double quotes (inside which '#' is
 * kept).  Returns 0 and *out pointing into s, or -1 and *why.
 */
static int
unquote(char *s, char **out, const char **why)
{
	char	*q, *rest;
	size_t	 i;

	while (isspace((unsigned char)*s))
		s++;
	if (*s == '"') {
		q = strchr(s + 1, '"');
		if (q == NULL) {
			*why = "unterminated quoted value";
			return (-1);
		}
		*q = '\0';
		rest = q + 1;
		while (isspace((unsigned char)*rest))
			rest++;
		if (*rest != '\0' && *rest != '#' && *rest != ';') {
			*why = "unexpected text after the closing quote";
			return (-1);
		}
		*out = s + 1;
		return (0);
	}
	for (i = 0; s[i] != '\0'; i++) {
		if (s[i] == '#' &&
		    (i == 0 || isspace((unsigned char)s[i - 1]))) {
			s[i] = '\0';
			break;
		}
	}
	*out = trim(s);
	return (0);
}

/* Levenshtein distance; both strings are short key names. */
static size_t
edit_distance(const char *a, const char *b)
{
	size_t	 la = strlen(a), lb = strlen(b), i, j, prev, cur, tmp;
	size_t	 row[65];

	if (la > 64 || lb > 64)
		return (SIZE_MAX);
	for (j = 0; j <= lb; j++)
		row[j] = j;
	for (i = 1; i <= la; i++) {
		prev = row[0];
		row[0] = i;
		for (j = 1; j <= lb; j++) {
			cur = prev + (a[i - 1] != b[j - 1]);
			if (row[j] + 1 < cur)
				cur = row[j] + 1;
			if (row[j - 1] + 1 < cur)
				cur = row[j - 1] + 1;
			tmp = row[j];
			row[j] = cur;
			prev = tmp;
		}
	}
	return (row[lb]);
}

/* The candidate nearest to s if it is a plausible typo, else NULL. */
static const char *
closest(const char *s, const char *const *cand, size_t n)
{
	const char	*best = NULL;
	size_t		 d, bestd = SIZE_MAX, limit, i;

	limit = strlen(s) / 4 + 1;
	if (limit > 3)
		limit = 3;
	for (i = 0; i < n; i++) {
		d = edit_distance(s, cand[i]);
		if (d < bestd) {
			bestd = d;
			best = cand[i];
		}
	}
	return (bestd <= limit ? best : NULL);
}

static const struct conf_key *
key_find(int sec, const char *name)
{
	size_t	 i;

	for (i = 0; i < NKEYS; i++)
		if (keys[i].section == sec && strcmp(keys[i].name, name) == 0)
			return (&keys[i]);
	return (NULL);
}

/*
 * Where a key was set: its line, minus its line when the value was bad,
 * or 0 when it was not set.
 */
static int
key_line(const struct cstate *st, int sec, const char *name)
{
	return (st->keyline[key_find(sec, name) - keys]);
}

static int
enum_lookup(const struct conf_enum *e, const char *s, int *out)
{
	for (; e->name != NULL; e++) {
		if (strcmp(e->name, s) == 0) {
			*out = e->value;
			return (0);
		}
	}
	return (-1);
}

/* "a, b or c" for messages. */
static void
enum_list(const struct conf_enum *e, char *out, size_t len)
{
	struct buf	 b = BUF_INIT;
	size_t		 i, n;

	for (n = 0; e[n].name != NULL; n++)
		;
	for (i = 0; i < n; i++) {
		if (i > 0)
			buf_puts(&b, i + 1 == n ? " or " : ", ");
		buf_puts(&b, e[i].name);
	}
	snprintf(out, len, "%s", buf_str(&b));
	buf_free(&b);
}

/* Largest unit that divides ms exactly: "90s", "5m", "1d". */
static void
fmt_duration(int64_t ms, char *out, size_t len)
{
	if (ms != 0 && ms % DAY == 0)
		snprintf(out, len, "%lldd", (long long)(ms / DAY));
	else if (ms != 0 && ms % HOUR == 0)
		snprintf(out, len, "%lldh", (long long)(ms / HOUR));
	else if (ms != 0 && ms % MIN == 0)
		snprintf(out, len, "%lldm", (long long)(ms / MIN));
	else if (ms % SEC == 0)
		snprintf(out, len, "%llds", (long long)(ms / SEC));
	else
		snprintf(out, len, "%lldms", (long long)ms);
}

/* Absolute paths as they are; relative ones against the config's dir. */
static char *
resolve_path(struct cstate *st, const char *v)
{
	char	*p;

	if (v[0] == '/' || st->dir == NULL)
		return (xstrdup(v));
	xasprintf(&p, "%s/%s", st->dir, v);
	return (p);
}

static int
valid_url(const char *v)
{
	const char	*host, *s;

	if (strncasecmp(v, "https://", 8) == 0)
		host = v + 8;
	else if (strncasecmp(v, "http://", 7) == 0)
		host = v + 7;
	else
		return (0);
	if (*host == '\0' || *host == '/' || *host == ':' || *host == '?')
		return (0);
	for (s = v; *s != '\0'; s++)
		if ((unsigned char)*s <= ' ' || *s == 0x7f)
			return (0);
	return (1);
}

/* A list of URLs, kept with one blank between them. */
static int
set_urls(struct cstate *st, const struct conf_key *k, const char *v, int line,
    char **target)
{
	struct buf	 b = BUF_INIT;
	char		*copy = xstrdup(v), *tok, *sp;
	int		 rc = 0;

	for (tok = strtok_r(copy, " \t,", &sp); tok != NULL;
	    tok = strtok_r(NULL, " \t,", &sp)) {
		if (!valid_url(tok)) {
			cerr(st, st->file, line, "invalid URL '%s' for '%s' in "
			    "[%s] (expected http://HOST:PORT or "
			    "https://HOST:PORT)", tok, k->name,
			    section_names[k->section]);
			rc = -1;
			continue;
		}
		buf_printf(&b, "%s%s", b.len > 0 ? " " : "", tok);
	}
	free(copy);
	if (rc == 0 && b.len == 0) {
		cerr(st, st->file, line, "no URL for '%s' in [%s]", k->name,
		    section_names[k->section]);
		rc = -1;
	}
	if (rc == 0)
		*target = buf_steal(&b);
	buf_free(&b);
	return (rc);
}

/* "host:port", "[v6]:port" or "*:port"; port 1..65535. */
static int
valid_listen(const char *v)
{
	const char	*colon, *end;
	char		*ep;
	long		 port;

	if (v[0] == '[') {
		end = strchr(v, ']');
		if (end == NULL || end == v + 1 || end[1] != ':')
			return (0);
		colon = end + 1;
	} else {
		colon = strrchr(v, ':');
		if (colon == NULL || colon == v)
			return (0);
		if (memchr(v, ':', (size_t)(colon - v)) != NULL)
			return (0);	/* bare IPv6 needs brackets */
	}
	for (end = v; end < colon; end++)
		if (isspace((unsigned char)*end) ||
		    iscntrl((unsigned char)*end))
			return (0);
	if (!isdigit((unsigned char)colon[1]))
		return (0);
	errno = 0;
	port = strtol(colon + 1, &ep, 10);
	if (errno != 0 || *ep != '\0' || port < 1 || port > 65535)
		return (0);
	return (1);
}

/*
 * Parse value v for key k (line 0 = a built-in default) and store it.
 * Returns 0, or -1 after reporting why.
 */
static int
key_set(struct cstate *st, const struct conf_key *k, const char *v, int line)
{
	char		*target = (char *)st->cf + k->off;
	const char	*sec = section_names[k->section];
	char		 lo[32], hi[32], list[256], *ep;
	unsigned long long ull;
	int64_t		 ms;
	int		 e;
	size_t		 i;

	if (*v == '\0' && k->type != KT_MAILBOX) {
		cerr(st, st->file, line, "empty value for '%s' in [%s]",
		    k->name, sec);
		return (-1);
	}
	switch (k->type) {
	case KT_STR:
		*(char **)target = xstrdup(v);
		return (0);
	case KT_URL:
		if (!valid_url(v)) {
			cerr(st, st->file, line, "invalid URL '%s' for '%s' in "
			    "[%s] (expected http://HOST/... or "
			    "https://HOST/...)", v, k->name, sec);
			return (-1);
		}
		*(char **)target = xstrdup(v);
		return (0);
	case KT_URLS:
		return (set_urls(st, k, v, line, (char **)target));
	case KT_LISTEN:
		if (!valid_listen(v)) {
			cerr(st, st->file, line, "invalid address '%s' for "
			    "'%s' in [%s] (expected ADDRESS:PORT)", v,
			    k->name, sec);
			return (-1);
		}
		*(char **)target = xstrdup(v);
		return (0);
	case KT_CIDRS: {
		struct cidr_list	 cl;
		char			*why = NULL;

		if (cidr_list_parse(v, &cl, &why) != 0) {
			cerr(st, st->file, line, "'%s' in [%s]: %s", k->name,
			    sec, why);
			free(why);
			return (-1);
		}
		cidr_list_free(&cl);
		*(char **)target = xstrdup(v);
		return (0);
	}
	case KT_PATH:
	case KT_CRED:
		if (k->type == KT_CRED && strchr(v, '/') == NULL) {
			if (strcmp(v, ".") == 0 || strcmp(v, "..") == 0) {
				cerr(st, st->file, line, "invalid credential "
				    "name '%s' for '%s' in [%s]", v, k->name,
				    sec);
				return (-1);
			}
			*(char **)target = xstrdup(v);
			return (0);
		}
		*(char **)target = resolve_path(st, v);
		if ((k->flags & CK_READABLE) &&
		    access(*(char **)target, R_OK) == -1) {
			cerr(st, st->file, line, "cannot read %s '%s': %s",
			    k->name, *(char **)target, strerror(errno));
			return (-1);
		}
		return (0);
	case KT_BOOL:
		if (strcasecmp(v, "yes") == 0 || strcasecmp(v, "true") == 0 ||
		    strcasecmp(v, "on") == 0 || strcmp(v, "1") == 0)
			*(bool *)target = true;
		else if (strcasecmp(v, "no") == 0 ||
		    strcasecmp(v, "false") == 0 || strcasecmp(v, "off") == 0 ||
		    strcmp(v, "0") == 0)
			*(bool *)target = false;
		else {
			cerr(st, st->file, line, "invalid boolean '%s' for "
			    "'%s' in [%s] (expected yes or no)", v, k->name,
			    sec);
			return (-1);
		}
		return (0);
	case KT_UINT:
		errno = 0;
		ull = strtoull(v, &ep, 10);
		if (!isdigit((unsigned char)v[0]) || *ep != '\0') {
			cerr(st, st->file, line, "invalid number '%s' for '%s' "
			    "in [%s]", v, k->name, sec);
			return (-1);
		}
		if (errno == ERANGE || ull < (unsigned long long)k->min ||
		    ull > (unsigned long long)k->max) {
			cerr(st, st->file, line, "value %s for '%s' in [%s] "
			    "out of range %lld..%lld", v, k->name, sec,
			    (long long)k->min, (long long)k->max);
			return (-1);
		}
		*(unsigned *)target = (unsigned)ull;
		return (0);
	case KT_MINUTES:
		if (time_parse_duration(v, MIN, &ms) == -1 || ms % MIN != 0) {
			cerr(st, st->file, line, "invalid duration '%s' for "
			    "'%s' in [%s] (expected whole minutes: 30 or 30m)",
			    v, k->name, sec);
			return (-1);
		}
		if (ms / MIN < k->min || ms / MIN > k->max) {
			cerr(st, st->file, line, "value %s for '%s' in [%s] "
			    "out of range %lld..%lld minutes", v, k->name, sec,
			    (long long)k->min, (long long)k->max);
			return (-1);
		}
		*(unsigned *)target = (unsigned)(ms / MIN);
		return (0);
	case KT_DURATION:
		if (time_parse_duration(v, SEC, &ms) == -1) {
			cerr(st, st->file, line, "invalid duration '%s' for "
			    "'%s' in [%s] (expected a number with unit ms, s, "
			    "m, h or d)", v, k->name, sec);
			return (-1);
		}
		if (ms < k->min || ms > k->max) {
			fmt_duration(k->min, lo, sizeof(lo));
			fmt_duration(k->max, hi, sizeof(hi));
			cerr(st, st->file, line, "value %s for '%s' in [%s] "
			    "out of range %s..%s", v, k->name, sec, lo, hi);
			return (-1);
		}
		*(int64_t *)target = ms;
		return (0);
	case KT_ENUM:
		if (enum_lookup(k->enums, v, &e) == -1) {
			enum_list(k->enums, list, sizeof(list));
			cerr(st, st->file, line, "invalid value '%s' for '%s' "
			    "in [%s] (expected %s)", v, k->name, sec, list);
			return (-1);
		}
		/* Every enum in conf.h has int's size and representation. */
		*(int *)target = e;
		return (0);
	case KT_NAME:
		for (i = 0; k->names[i] != NULL; i++)
			if (strcmp(k->names[i], v) == 0)
				break;
		if (k->names[i] == NULL) {
			const char *near = closest(v, k->names, i);

			cerr(st, st->file, line, "unknown %s '%s' for '%s' in "
			    "[%s]%s%s%s", k->name, v, k->name, sec,
			    near != NULL ? " (did you mean '" : "",
			    near != NULL ? near : "",
			    near != NULL ? "'?)" : "");
			return (-1);
		}
		*(char **)target = xstrdup(k->names[i]);
		return (0);
	case KT_MODE:
		errno = 0;
		ull = strtoull(v, &ep, 8);
		if (!isdigit((unsigned char)v[0]) || *ep != '\0' ||
		    errno != 0 || ull > (unsigned long long)k->max) {
			cerr(st, st->file, line, "invalid mode '%s' for '%s' "
			    "in [%s] (expected octal, e.g. 0660)", v, k->name,
			    sec);
			return (-1);
		}
		*(mode_t *)target = (mode_t)ull;
		return (0);
	case KT_MAILBOX:
		mailbox_add(st, v, line, NULL, CONF_BACKEND_EWS, false);
		return (0);
	}
	return (-1);
}

static void
parse_header(struct cstate *st, char *s, int line)
{
	char		*end, *name, *arg, *why_v;
	const char	*why, *near;
	const char	*cands[SEC_COUNT + 1];
	size_t		 i;
	int		 sec;

	end = strchr(s, ']');
	if (end == NULL) {
		cerr(st, st->file, line, "missing ']' in section header");
		st->sec = SEC_UNKNOWN;
		return;
	}
	*end = '\0';
	if (unquote(end + 1, &why_v, &why) == -1 || *why_v != '\0') {
		cerr(st, st->file, line,
		    "unexpected text after section header");
		st->sec = SEC_UNKNOWN;
		return;
	}
	name = trim(s + 1);
	arg = name + strcspn(name, " \t");
	if (*arg != '\0') {
		*arg++ = '\0';
		arg = trim(arg);
	}
	st->sink = NULL;
	if (strcmp(name, "sink") == 0) {
		if (*arg == '\0') {
			cerr(st, st->file, line, "[sink] needs a name: "
			    "[sink NAME]");
			st->sec = SEC_UNKNOWN;
			return;
		}
		for (i = 0; arg[i] != '\0'; i++) {
			if (!isalnum((unsigned char)arg[i]) &&
			    strchr("_-.", arg[i]) == NULL) {
				cerr(st, st->file, line, "invalid sink name "
				    "'%s' (letters, digits, '_', '-' and '.' "
				    "only)", arg);
				st->sec = SEC_UNKNOWN;
				return;
			}
		}
		for (i = 0; i < st->cf->nsinks; i++) {
			if (strcmp(st->cf->sinks[i].name, arg) == 0) {
				cerr(st, st->file, line, "duplicate sink '%s' "
				    "(first at line %d)", arg,
				    st->cf->sinks[i].line);
				st->sec = SEC_UNKNOWN;
				return;
			}
		}
		if (st->cf->nsinks == CONF_MAX_SINKS) {
			cerr(st, st->file, line, "too many sink sections (at "
			    "most %d)", CONF_MAX_SINKS);
			st->sec = SEC_UNKNOWN;
			return;
		}
		st->cf->sinks = xreallocarray(st->cf->sinks,
		    st->cf->nsinks + 1, sizeof(*st->cf->sinks));
		st->sink = &st->cf->sinks[st->cf->nsinks++];
		memset(st->sink, 0, sizeof(*st->sink));
		st->sink->name = xstrdup(arg);
		st->sink->line = line;
		st->sec = SEC_SINK;
		return;
	}
	for (sec = 0; sec < SEC_COUNT; sec++)
		if (strcmp(name, section_names[sec]) == 0)
			break;
	if (sec == SEC_COUNT) {
		for (i = 0; i < SEC_COUNT; i++)
			cands[i] = section_names[i];
		cands[SEC_COUNT] = "sink";
		near = closest(name, cands, SEC_COUNT + 1);
		cerr(st, st->file, line, "unknown section [%s]%s%s%s", name,
		    near != NULL ? " (did you mean [" : "",
		    near != NULL ? near : "", near != NULL ? "]?)" : "");
		st->sec = SEC_UNKNOWN;
		return;
	}
	if (*arg != '\0') {
		cerr(st, st->file, line, "section [%s] takes no name", name);
		st->sec = SEC_UNKNOWN;
		return;
	}
	if (st->secline[sec] != 0) {
		cerr(st, st->file, line, "duplicate section [%s] (first at "
		    "line %d)", name, st->secline[sec]);
		st->sec = SEC_UNKNOWN;
		return;
	}
	st->secline[sec] = line;
	st->sec = sec;
}

static void
parse_sink_kv(struct cstate *st, const char *key, const char *value, int line)
{
	struct conf_sink	*sk = st->sink;
	size_t			 i;

	if (strcmp(key, "type") == 0) {
		if (sk->type != NULL) {
			cerr(st, st->file, line, "duplicate key 'type' in "
			    "[sink %s]", sk->name);
			return;
		}
		for (i = 0; sink_types[i] != NULL; i++)
			if (strcmp(sink_types[i], value) == 0)
				break;
		if (sink_types[i] == NULL) {
			cerr(st, st->file, line, "invalid sink type '%s' in "
			    "[sink %s] (expected log, file, webhook, exec, "
			    "sip, xmpp or plugin)", value, sk->name);
			sk->type = xstrdup("");	/* no "missing type" too */
			return;
		}
		sk->type = xstrdup(value);
		return;
	}
	for (i = 0; i < sk->nkv; i++) {
		if (strcmp(sk->kv[i].key, key) == 0) {
			cerr(st, st->file, line, "duplicate key '%s' in [sink "
			    "%s] (first at line %d)", key, sk->name,
			    sk->kv[i].line);
			return;
		}
	}
	if (sk->nkv == CONF_MAX_SINK_KEYS) {
		cerr(st, st->file, line, "too many keys in [sink %s] (at most "
		    "%d)", sk->name, CONF_MAX_SINK_KEYS);
		return;
	}
	sk->kv = xreallocarray(sk->kv, sk->nkv + 1, sizeof(*sk->kv));
	sk->kv[sk->nkv].key = xstrdup(key);
	sk->kv[sk->nkv].value = xstrdup(value);
	sk->kv[sk->nkv].line = line;
	sk->nkv++;
}

static void
parse_line(struct cstate *st, char *raw, int line)
{
	const struct conf_key	*k;
	const char		*cands[NKEYS], *near, *why;
	char			*s, *eq, *key, *value;
	size_t			 i, n;

	s = trim(raw);
	if (*s == '\0' || *s == '#' || *s == ';')
		return;
	if (*s == '[') {
		parse_header(st, s, line);
		return;
	}
	eq = strchr(s, '=');
	if (eq == NULL) {
		cerr(st, st->file, line, "syntax error: expected "
		    "'key = value' or '[section]'");
		return;
	}
	*eq = '\0';
	key = trim(s);
	if (*key == '\0') {
		cerr(st, st->file, line,
		    "syntax error: missing key before '='");
		return;
	}
	for (i = 0; key[i] != '\0'; i++) {
		if (!isalnum((unsigned char)key[i]) && key[i] != '_' &&
		    key[i] != '-' && key[i] != '.') {
			cerr(st, st->file, line, "syntax error: invalid key "
			    "name '%s'", key);
			return;
		}
	}
	if (unquote(eq + 1, &value, &why) == -1) {
		cerr(st, st->file, line, "%s for '%s'", why, key);
		return;
	}
	switch (st->sec) {
	case SEC_NONE:
		cerr(st, st->file, line, "key '%s' outside of any section",
		    key);
		return;
	case SEC_UNKNOWN:
		return;		/* the header was reported */
	case SEC_SINK:
		parse_sink_kv(st, key, value, line);
		return;
	}
	k = key_find(st->sec, key);
	if (k == NULL) {
		for (i = n = 0; i < NKEYS; i++)
			if (keys[i].section == st->sec)
				cands[n++] = keys[i].name;
		near = closest(key, cands, n);
		cerr(st, st->file, line, "unknown key '%s' in [%s]%s%s%s", key,
		    section_names[st->sec],
		    near != NULL ? " (did you mean '" : "",
		    near != NULL ? near : "", near != NULL ? "'?)" : "");
		return;
	}
	i = (size_t)(k - keys);
	if (st->keyline[i] != 0 && k->type != KT_MAILBOX) {
		cerr(st, st->file, line, "duplicate key '%s' in [%s] (first at "
		    "line %d)", key, section_names[st->sec],
		    abs(st->keyline[i]));
		return;
	}
	if (key_set(st, k, value, line) == 0 || k->type == KT_MAILBOX)
		st->keyline[i] = line;
	else
		st->keyline[i] = -line;	/* bad: no default, no "missing" */
}

/* local@domain, printable ASCII, no blanks or specials. */
static int
valid_address(const char *a)
{
	const char	*at, *p;

	at = strchr(a, '@');
	if (at == NULL || at == a || at[1] == '\0' || strchr(at + 1, '@'))
		return (0);
	for (p = a; p < at; p++)
		if ((unsigned char)*p <= ' ' || (unsigned char)*p >= 0x7f ||
		    strchr("\"(),:;<>[\\]", *p) != NULL)
			return (0);
	if (a[0] == '.' || at[-1] == '.' || strstr(a, "..") != NULL)
		return (0);
	for (p = at + 1; *p != '\0'; p++)
		if (!isalnum((unsigned char)*p) && *p != '-' && *p != '.')
			return (0);
	if (at[1] == '.' || at[1] == '-' || p[-1] == '.' || p[-1] == '-')
		return (0);
	return (1);
}

/* S-1-<authority>(-<subauthority>)*, digits only. */
static int
valid_sid(const char *s)
{
	const char	*p;
	int		 groups = 0;

	if (strncasecmp(s, "S-1-", 4) != 0)
		return (0);
	p = s + 4;
	for (;;) {
		if (!isdigit((unsigned char)*p))
			return (0);
		while (isdigit((unsigned char)*p))
			p++;
		groups++;
		if (*p == '\0')
			break;
		if (*p++ != '-')
			return (0);
	}
	return (groups >= 1);
}

/*
 * Add one "address [upn=UPN|sid=SID]" spec from the config (in_file
 * false) or the mailbox file; file is the name used in messages.
 */
static void
mailbox_add(struct cstate *st, const char *spec, int line, const char *file,
    enum conf_backend backend, bool in_file)
{
	struct config		*cf = st->cf;
	struct conf_mailbox	*mb;
	const char		*name = in_file ? file : st->file;
	char			*copy, *addr, *opt, *extra, *p;
	enum conf_idtype	 idtype = CONF_ID_SMTP;
	char			*id = NULL;

	copy = xstrdup(spec);
	addr = strtok_r(copy, " \t", &p);
	if (addr == NULL) {
		cerr(st, name, line, "empty mailbox");
		goto out;
	}
	opt = strtok_r(NULL, " \t", &p);
	extra = opt != NULL ? strtok_r(NULL, " \t", &p) : NULL;
	if (extra != NULL) {
		cerr(st, name, line, "unexpected '%s' after mailbox '%s' "
		    "(expected one upn=UPN or sid=SID)", extra, addr);
		goto out;
	}
	for (p = addr; *p != '\0'; p++)
		*p = (char)tolower((unsigned char)*p);
	if (!valid_address(addr)) {
		cerr(st, name, line, "invalid mailbox address '%s' (expected "
		    "local@domain)", addr);
		goto out;
	}
	if (opt != NULL) {
		if (strncmp(opt, "upn=", 4) == 0) {
			idtype = CONF_ID_UPN;
			if (!valid_address(opt + 4)) {
				cerr(st, name, line, "invalid UPN '%s' for "
				    "mailbox '%s' (expected user@domain)",
				    opt + 4, addr);
				goto out;
			}
		} else if (strncmp(opt, "sid=", 4) == 0 &&
		    backend == CONF_BACKEND_GRAPH) {
			cerr(st, name, line, "sid= for mailbox '%s' in "
			    "[graph]: Graph names a user by address or upn=",
			    addr);
			goto out;
		} else if (strncmp(opt, "sid=", 4) == 0) {
			idtype = CONF_ID_SID;
			if (!valid_sid(opt + 4)) {
				cerr(st, name, line, "invalid SID '%s' for "
				    "mailbox '%s' (expected S-1-...)", opt + 4,
				    addr);
				goto out;
			}
		} else {
			cerr(st, name, line, "unexpected '%s' after mailbox "
			    "'%s' (expected upn=UPN or sid=SID)", opt, addr);
			goto out;
		}
		id = xstrdup(opt + 4);
	}
	if (cf->nmailboxes == st->mbcap) {
		/* Doubling: a list file may hold 100,000 mailboxes. */
		st->mbcap = st->mbcap == 0 ? 16 : st->mbcap * 2;
		cf->mailboxes = xreallocarray(cf->mailboxes, st->mbcap,
		    sizeof(*cf->mailboxes));
	}
	mb = &cf->mailboxes[cf->nmailboxes++];
	mb->address = xstrdup(addr);
	mb->backend = backend;
	mb->idtype = idtype;
	mb->id = id;
	mb->line = line;
	mb->in_file = in_file;
out:
	free(copy);
}

/* A mailbox list file named by key (its path) in section sec. */
static void
mailbox_file_load(struct cstate *st, int sec, const char *key,
    enum conf_backend backend)
{
	struct buf	 b = BUF_INIT;
	const struct conf_key *k = key_find(sec, key);
	const char	*p, *end, *path;
	char		*line, *s, *c;
	int		 lineno = 0, r;

	path = *(char *const *)((const char *)st->cf + k->off);
	if (read_file(path, CONF_MAX_FILE, &b, NULL) == -1) {
		cerr(st, st->file, key_line(st, sec, key),
		    "cannot read mailbox file '%s': %s", path,
		    strerror(errno));
		buf_free(&b);
		return;
	}
	p = b.data;
	end = b.data + b.len;
	while ((r = next_line(&p, end, &line, &lineno)) != 0) {
		if (r == -1) {
			cerr(st, path, lineno, "NUL byte in line");
			continue;
		}
		for (c = line; *c != '\0'; c++) {
			if (*c == '#' && (c == line ||
			    isspace((unsigned char)c[-1]))) {
				*c = '\0';
				break;
			}
		}
		s = trim(line);
		if (*s != '\0')
			mailbox_add(st, s, lineno, path, backend, true);
		free(line);
	}
	buf_free(&b);
}

static uint32_t
hash_str(const char *s)
{
	uint32_t	 h = 2166136261u;

	for (; *s != '\0'; s++)
		h = (h ^ (unsigned char)*s) * 16777619u;
	return (h);
}

/* The file a mailbox was listed in. */
static const char *
mailbox_where(const struct cstate *st, const struct conf_mailbox *mb)
{
	if (!mb->in_file)
		return (st->file);
	return (mb->backend == CONF_BACKEND_GRAPH ? st->cf->graph.mailbox_file :
	    st->cf->mailbox_file);
}

/*
 * Give every EWS mailbox without an explicit id the default
 * impersonation, and reject duplicates, also across the backends
 * (hashed: there may be 100,000 of them).
 */
static void
mailboxes_finish(struct cstate *st)
{
	struct config		*cf = st->cf;
	struct conf_mailbox	*mb, *o;
	size_t			 size = 16, i, h, *tab;

	/* The list lives as long as the configuration: no spare slots. */
	if (st->mbcap > cf->nmailboxes && cf->nmailboxes > 0) {
		cf->mailboxes = xreallocarray(cf->mailboxes, cf->nmailboxes,
		    sizeof(*cf->mailboxes));
		st->mbcap = cf->nmailboxes;
	}
	for (i = 0; i < cf->nmailboxes; i++) {
		mb = &cf->mailboxes[i];
		if (mb->backend == CONF_BACKEND_GRAPH)
			cf->graph.nmailboxes++;
		if (mb->id != NULL || mb->backend == CONF_BACKEND_GRAPH)
			continue;
		switch (cf->exchange.impersonation) {
		case CONF_ID_SMTP:
			break;
		case CONF_ID_UPN:
			/* The UPN usually equals the primary SMTP address. */
			mb->idtype = CONF_ID_UPN;
			mb->id = xstrdup(mb->address);
			break;
		case CONF_ID_SID:
			cerr(st, mailbox_where(st, mb),
			    mb->line, "mailbox '%s' has no sid= but "
			    "impersonation is sid", mb->address);
			break;
		}
	}
	while (size < cf->nmailboxes * 2)
		size <<= 1;
	tab = xcalloc(size, sizeof(*tab));
	for (i = 0; i < cf->nmailboxes; i++) {
		mb = &cf->mailboxes[i];
		h = hash_str(mb->address) & (size - 1);
		for (;;) {
			if (tab[h] == 0) {
				tab[h] = i + 1;
				break;
			}
			o = &cf->mailboxes[tab[h] - 1];
			if (strcmp(o->address, mb->address) == 0) {
				cerr(st, mailbox_where(st, mb), mb->line,
				    "duplicate mailbox '%s' (first at %s:%d)",
				    mb->address, mailbox_where(st, o), o->line);
				break;
			}
			h = (h + 1) & (size - 1);
		}
	}
	free(tab);
}

/* Report a missing key at its section's header (or line 0). */
static void
require(struct cstate *st, int sec, const char *name, const char *why)
{
	const struct conf_key	*k = key_find(sec, name);

	if (key_line(st, sec, name) != 0)
		return;
	/* A value kept on reload (required keys are strings). */
	if (st->kept[k - keys] &&
	    *(char *const *)((const char *)st->cf + k->off) != NULL)
		return;
	cerr(st, st->file, st->secline[sec], "missing required key '%s' in "
	    "[%s]%s%s%s", name, section_names[sec], why != NULL ? " (" : "",
	    why != NULL ? why : "", why != NULL ? ")" : "");
}

/*
 * Where a bare credential name is read from outside systemd (no
 * $CREDENTIALS_DIRECTORY): the file the unit's LoadCredential= loads it
 * from, so a root shell checks exactly what the service will use.
 */
#ifndef EWSGW_SYSCONFDIR
#define EWSGW_SYSCONFDIR "/etc"
#endif
static const char *credential_store = EWSGW_SYSCONFDIR "/ewsgw";

void
conf_set_credential_store(const char *dir)
{
	credential_store = dir;
}

const char *
conf_credential_store(void)
{
	return (credential_store);
}

/*
 * Read the first line of a secret file named by key (a path, or a bare
 * name of a systemd credential).  Returns it (allocated, wipe with
 * xfree_secret) or NULL after reporting; never puts it in a message.
 */
static char *
read_secret(struct cstate *st, int sec, const char *keyname, const char *v)
{
	struct buf	 b = BUF_INIT_SECRET;
	const char	*dir, *from = "";
	char		*path, *secret;
	int		 line = key_line(st, sec, keyname);
	size_t		 n;
	struct stat	 sb;
	bool		 credential = false;	/* systemd's, private */
	char		 why[256];

	dir = getenv("CREDENTIALS_DIRECTORY");
	if (strchr(v, '/') == NULL) {
		credential = dir != NULL && *dir != '\0';
		if (!credential) {
			dir = credential_store;
			from = " (no $CREDENTIALS_DIRECTORY: a credential is "
			    "read from the file the unit loads it from)";
		}
		xasprintf(&path, "%s/%s", dir, v);
	} else {
		path = xstrdup(v);
		credential = secret_file_is_credential(path);
	}
	if (read_file(path, CONF_MAX_SECRET, &b, &sb) == -1) {
		cerr(st, st->file, line, "cannot read %s '%s': %s%s", keyname,
		    path, strerror(errno), from);
		buf_free_secret(&b);
		free(path);
		return (NULL);
	}
	switch (secret_file_judge(&sb, credential, geteuid(), why,
	    sizeof why)) {
	case SECRET_REFUSE:
		cerr(st, st->file, line, "%s '%s' %s", keyname, path, why);
		buf_free_secret(&b);
		free(path);
		return (NULL);
	case SECRET_WARN:
		log_warnx("%s:%d: %s '%s' %s", st->file, line, keyname, path,
		    why);
		break;
	case SECRET_OK:
		break;
	}
	n = strcspn(buf_str(&b), "\n");
	if (n > 0 && b.data[n - 1] == '\r' && b.data[n] == '\n')
		n--;
	if (n == 0 || memchr(b.data, '\0', n) != NULL) {
		cerr(st, st->file, line, "%s '%s' %s", keyname, path,
		    n == 0 ? "is empty" : "holds a NUL byte");
		buf_free_secret(&b);
		free(path);
		return (NULL);
	}
	secret = xstrndup(b.data, n);
	buf_free_secret(&b);
	free(path);
	return (secret);
}

static enum conf_charging
charging_default(const char *version)
{
	return (version_before_2010_sp2(version) ?
	    CONF_CHARGING_SERVICE_ACCOUNT : CONF_CHARGING_IMPERSONATED);
}

/*
 * Reload: every restart-only key whose value in the file differs from
 * the running configuration keeps the running value, is marked kept
 * (a rule requiring the key is satisfied by a kept value) and is named
 * in st->kept_list.  The first pass runs before the rules and derived
 * defaults; a key left unset that is derived from others (CK_DERIVED:
 * charging from the version, the cluster node from the host name) is
 * compared in the second pass, once it has been worked out.  Keys with
 * a bad value are left alone: the load fails anyway.
 */
static void
keep_restart_only(struct cstate *st, bool derived)
{
	struct config		*cf = st->cf;
	const struct conf_key	*k;
	size_t			 i;

	for (i = 0; i < NKEYS; i++) {
		k = &keys[i];
		if ((k->flags & CK_RELOAD) || st->keyline[i] < 0 ||
		    st->kept[i])
			continue;
		if (derived != ((k->flags & CK_DERIVED) &&
		    st->keyline[i] == 0))
			continue;
		if (!key_differs(k, cf, st->old))
			continue;
		key_copy(k, cf, st->old);
		st->kept[i] = true;
		if (st->kept_list.len > 0)
			buf_puts(&st->kept_list, ", ");
		buf_printf(&st->kept_list, "%s.%s", section_names[k->section],
		    k->name);
	}
}

static bool
version_before_2010_sp2(const char *v)
{
	return (strncmp(v, "Exchange2007", 12) == 0 ||
	    strcmp(v, "Exchange2009") == 0 || strcmp(v, "Exchange2010") == 0 ||
	    strcmp(v, "Exchange2010_SP1") == 0);
}

static bool
version_is_2013(const char *v)
{
	/* Exchange2012 is the 2013 preview's name for the same server. */
	return (strcmp(v, "Exchange2012") == 0 ||
	    strcmp(v, "Exchange2013") == 0 ||
	    strcmp(v, "Exchange2013_SP1") == 0);
}

/* Cluster and node names become etcd keys: a safe alphabet only. */
static bool
valid_name(const char *s)
{
	size_t	 n = strspn(s, "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRS"
	    "TUVWXYZ0123456789._-");

	return (n > 0 && n <= 64 && s[n] == '\0');
}

/* [cluster]: on with endpoints; then name is needed, node defaults. */
static void
cluster_finish(struct cstate *st)
{
	struct config	*cf = st->cf;
	char		 host[256], *tok, *copy, *sp;
	int		 line = st->secline[SEC_CLUSTER];
	size_t		 i;

	if (cf->cluster.endpoints == NULL) {
		for (i = 0; i < NKEYS; i++)
			if (keys[i].section == SEC_CLUSTER &&
			    st->keyline[i] > 0) {
				require(st, SEC_CLUSTER, "endpoints",
				    "cluster mode needs etcd");
				break;
			}
		return;
	}
	copy = xstrdup(cf->cluster.endpoints);
	for (tok = strtok_r(copy, " ", &sp); tok != NULL;
	    tok = strtok_r(NULL, " ", &sp)) {
		cf->cluster.endpoint = xreallocarray(cf->cluster.endpoint,
		    cf->cluster.nendpoints + 1, sizeof *cf->cluster.endpoint);
		cf->cluster.endpoint[cf->cluster.nendpoints++] = xstrdup(tok);
	}
	free(copy);
	require(st, SEC_CLUSTER, "name", "needed with endpoints");
	if (cf->cluster.name != NULL && !valid_name(cf->cluster.name))
		cerr(st, st->file, key_line(st, SEC_CLUSTER, "name"),
		    "invalid name '%s' in [cluster] (letters, digits, '.', "
		    "'_' and '-', at most 64)", cf->cluster.name);
	if (cf->cluster.node == NULL) {
		if (gethostname(host, sizeof host) == -1)
			host[0] = '\0';
		host[sizeof host - 1] = '\0';
		host[strcspn(host, ".")] = '\0';
		if (!valid_name(host))
			cerr(st, st->file, line, "the host name '%s' cannot "
			    "name this node: set node in [cluster]", host);
		else
			cf->cluster.node = xstrdup(host);
	} else if (!valid_name(cf->cluster.node))
		cerr(st, st->file, key_line(st, SEC_CLUSTER, "node"),
		    "invalid node '%s' in [cluster] (letters, digits, '.', "
		    "'_' and '-', at most 64)", cf->cluster.node);
	if (cf->cluster.lease_ttl_ms % SEC != 0)
		cerr(st, st->file, key_line(st, SEC_CLUSTER, "lease_ttl"),
		    "lease_ttl in [cluster] must be whole seconds");
	if ((cf->cluster.client_cert == NULL) !=
	    (cf->cluster.client_key == NULL))
		cerr(st, st->file, line, "client_cert and client_key in "
		    "[cluster] go together: set both or neither");
}

/* Defaults, cross-key rules, secrets, mailboxes, sinks. */
/* A tenant id or domain name: it goes into the token URL's path. */
static bool
valid_tenant(const char *s)
{
	return (s[strspn(s, "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTU"
	    "VWXYZ0123456789.-")] == '\0');
}

/*
 * [graph]: its mailboxes (the list, then the file), and when there are
 * any, the app registration they need: a client id, a token URL (from
 * the tenant), and a client secret or a certificate with its key, the
 * key kept from other users like the secret.
 */
static void
graph_finish(struct cstate *st)
{
	struct config	*cf = st->cf;
	const char	*why = "needed for Graph mailboxes or [graph] auto";
	char		*copy, *tok, *sp;
	struct stat	 sb;
	int		 line;

	if (cf->graph.mailbox_list != NULL) {
		line = key_line(st, SEC_GRAPH, "mailboxes");
		copy = xstrdup(cf->graph.mailbox_list);
		for (tok = strtok_r(copy, " \t,", &sp); tok != NULL;
		    tok = strtok_r(NULL, " \t,", &sp))
			mailbox_add(st, tok, line, NULL, CONF_BACKEND_GRAPH,
			    false);
		free(copy);
	}
	if (cf->graph.mailbox_file != NULL &&
	    key_line(st, SEC_GRAPH, "mailbox_file") > 0)
		mailbox_file_load(st, SEC_GRAPH, "mailbox_file",
		    CONF_BACKEND_GRAPH);
	if (cf->graph.mailbox_list == NULL && cf->graph.mailbox_file == NULL &&
	    !cf->graph.auto_online)
		return;
	if (cf->graph.auto_online && !cf->exchange.autodiscover)
		cerr(st, st->file, key_line(st, SEC_GRAPH, "auto"), "auto in "
		    "[graph] needs autodiscover = yes in [exchange]: "
		    "Autodiscover finds the mailboxes in Exchange Online");
	if (cf->graph.tenant_id != NULL && !valid_tenant(cf->graph.tenant_id))
		cerr(st, st->file, key_line(st, SEC_GRAPH, "tenant_id"),
		    "invalid tenant_id '%s' in [graph] (expected a tenant id "
		    "or domain name)", cf->graph.tenant_id);
	require(st, SEC_GRAPH, "client_id", why);
	if (cf->graph.token_url == NULL) {
		require(st, SEC_GRAPH, "tenant_id", "needed for Graph "
		    "mailboxes without token_url");
		if (cf->graph.tenant_id != NULL)
			xasprintf(&cf->graph.token_url, "https://login."
			    "microsoftonline.com/%s/oauth2/v2.0/token",
			    cf->graph.tenant_id);
	}
	if ((cf->graph.certificate_file == NULL) !=
	    (cf->graph.key_file == NULL))
		cerr(st, st->file, st->secline[SEC_GRAPH], "certificate_file "
		    "and key_file in [graph] go together: set both or "
		    "neither");
	if (cf->graph.client_secret_file != NULL &&
	    cf->graph.certificate_file != NULL)
		cerr(st, st->file, key_line(st, SEC_GRAPH,
		    "certificate_file"), "client_secret_file and "
		    "certificate_file in [graph] exclude each other: set one");
	if (cf->graph.client_secret_file == NULL &&
	    cf->graph.certificate_file == NULL)
		require(st, SEC_GRAPH, "client_secret_file", "or "
		    "certificate_file and key_file, needed for Graph "
		    "mailboxes");
	if (cf->graph.client_secret_file != NULL)
		cf->graph.client_secret = read_secret(st, SEC_GRAPH,
		    "client_secret_file", cf->graph.client_secret_file);
	if (cf->graph.notifications && cf->graph.notification_url != NULL)
		require(st, SEC_PUSH, "listen", "needed for [graph] "
		    "notification_url: the push listener receives them");
	/* The private key is a secret like the client secret. */
	if (cf->graph.key_file != NULL &&
	    stat(cf->graph.key_file, &sb) == 0 && (sb.st_mode & S_IROTH))
		cerr(st, st->file, key_line(st, SEC_GRAPH, "key_file"),
		    "key_file '%s' is readable by everyone (mode %04o): "
		    "chmod 0600 it", cf->graph.key_file,
		    (unsigned)(sb.st_mode & 07777));
}

static void
finish(struct cstate *st)
{
	struct config	*cf = st->cf;
	struct sockaddr_un sa;
	char		 why[96];
	size_t		 i;
	int		 line;

	for (i = 0; i < NKEYS; i++)
		if (st->keyline[i] == 0 && keys[i].def != NULL &&
		    key_set(st, &keys[i], keys[i].def, 0) == -1)
			abort();	/* a bad built-in default */
	/*
	 * On reload, before any rule looks at them: what follows (required
	 * keys, derived defaults, the mailboxes' impersonation) then sees
	 * the values the daemon will really run with.
	 */
	if (st->old != NULL)
		keep_restart_only(st, false);

	snprintf(why, sizeof(why), "needed for auth = %s%s",
	    conf_auth_name(cf->exchange.auth),
	    st->kept[key_find(SEC_EXCHANGE, "auth") - keys] ?
	    ", which stays until a restart" : "");
	if (cf->exchange.tenant != NULL && !valid_tenant(cf->exchange.tenant))
		cerr(st, st->file, key_line(st, SEC_EXCHANGE, "tenant"),
		    "invalid tenant '%s' in [exchange] "
		    "(expected a domain name or a tenant id)",
		    cf->exchange.tenant);
	if (cf->status.socket != NULL &&
	    strlen(cf->status.socket) >= sizeof(sa.sun_path))
		cerr(st, st->file, key_line(st, SEC_STATUS, "socket"),
		    "socket path in [status] too long (at most %zu "
		    "bytes)", sizeof(sa.sun_path) - 1);
	require(st, SEC_EXCHANGE, "url", NULL);
	if (cf->exchange.auth == CONF_AUTH_OAUTH2) {
		require(st, SEC_EXCHANGE, "tenant", why);
		require(st, SEC_EXCHANGE, "client_id", why);
		require(st, SEC_EXCHANGE, "client_secret_file", why);
		if (cf->exchange.token_url == NULL &&
		    cf->exchange.tenant != NULL)
			xasprintf(&cf->exchange.token_url, "https://login."
			    "microsoftonline.com/%s/oauth2/v2.0/token",
			    cf->exchange.tenant);
	} else
		require(st, SEC_EXCHANGE, "username", why);
	if (cf->exchange.auth == CONF_AUTH_NTLM ||
	    cf->exchange.auth == CONF_AUTH_BASIC)
		require(st, SEC_EXCHANGE, "password_file", why);
	if (cf->exchange.password_file != NULL &&
	    key_line(st, SEC_EXCHANGE, "password_file") > 0)
		cf->exchange.password = read_secret(st, SEC_EXCHANGE,
		    "password_file",
		    cf->exchange.password_file);
	if (cf->exchange.client_secret_file != NULL &&
	    key_line(st, SEC_EXCHANGE, "client_secret_file") > 0)
		cf->exchange.client_secret = read_secret(st, SEC_EXCHANGE,
		    "client_secret_file", cf->exchange.client_secret_file);
	if (cf->exchange.login_retry_max_ms < cf->exchange.login_retry_ms) {
		if ((line = key_line(st, SEC_EXCHANGE, "login_retry_max")) <= 0)
			line = key_line(st, SEC_EXCHANGE, "login_retry");
		cerr(st, st->file, line, "login_retry_max in [exchange] is "
		    "shorter than login_retry");
	}
	if ((cf->exchange.client_cert == NULL) !=
	    (cf->exchange.client_key == NULL))
		cerr(st, st->file, st->secline[SEC_EXCHANGE], "client_cert and "
		    "client_key in [exchange] go together: set both or "
		    "neither");

	if (cf->exchange.mode == CONF_MODE_PUSH) {
		require(st, SEC_PUSH, "listen", "needed for mode = push");
		require(st, SEC_PUSH, "url", "needed for mode = push");
	}
	if ((cf->push.certificate == NULL) != (cf->push.key == NULL))
		cerr(st, st->file, st->secline[SEC_PUSH], "certificate and key "
		    "in [push] go together: set both or neither");

	if (key_line(st, SEC_THROTTLING, "charging") > 0)
		cf->throttling.charging_set = true;
	else if (cf->exchange.version != NULL)
		cf->throttling.charging =
		    charging_default(cf->exchange.version);
	if (key_line(st, SEC_THROTTLING,
	    "streaming_connections_per_anchor") <= 0 &&
	    cf->exchange.version != NULL)
		cf->throttling.streaming_connections_per_anchor =
		    version_is_2013(cf->exchange.version) ? 3 : 10;

	if (cf->mailbox_file != NULL &&
	    key_line(st, SEC_MAILBOXES, "file") > 0)
		mailbox_file_load(st, SEC_MAILBOXES, "file", CONF_BACKEND_EWS);
	graph_finish(st);
	mailboxes_finish(st);

	cluster_finish(st);
	if (st->old != NULL) {
		keep_restart_only(st, true);
		if (st->kept[key_find(SEC_THROTTLING, "charging") - keys])
			cf->throttling.charging_set =
			    st->old->throttling.charging_set;
	}

	for (i = 0; i < cf->nsinks; i++)
		if (cf->sinks[i].type == NULL)
			cerr(st, st->file, cf->sinks[i].line, "missing "
			    "required key 'type' in [sink %s]",
			    cf->sinks[i].name);
	if (cf->nsinks == 0) {
		cf->sinks = xcalloc(1, sizeof(*cf->sinks));
		cf->sinks[0].name = xstrdup("log");
		cf->sinks[0].type = xstrdup("log");
		cf->nsinks = 1;
	}
}

static struct config *
load(const char *name, const char *data, size_t len, int read_errno,
    const struct config *old, char **errors, char **kept)
{
	struct cstate	 st;
	const char	*p = data, *end = data + len, *slash;
	char		*line;
	int		 lineno = 0, r;

	memset(&st, 0, sizeof(st));
	buf_init(&st.errs);
	st.cf = xcalloc(1, sizeof(*st.cf));
	st.cf->path = xstrdup(name);
	st.file = st.cf->path;
	st.sec = SEC_NONE;
	st.old = old;
	buf_init(&st.kept_list);
	slash = strrchr(name, '/');
	if (slash == name)
		st.dir = xstrdup("/");
	else if (slash != NULL)
		st.dir = xstrndup(name, (size_t)(slash - name));

	if (read_errno != 0)
		cerr(&st, st.file, 0, "cannot read: %s", strerror(read_errno));
	else {
		while ((r = next_line(&p, end, &line, &lineno)) != 0) {
			if (r == -1) {
				cerr(&st, st.file, lineno, "NUL byte in line");
				continue;
			}
			parse_line(&st, line, lineno);
			free(line);
		}
		finish(&st);
	}

	free(st.dir);
	if (errors != NULL)
		*errors = st.nerrs > 0 ? buf_steal(&st.errs) : NULL;
	buf_free(&st.errs);
	if (kept != NULL)
		*kept = st.nerrs == 0 && st.kept_list.len > 0 ?
		    buf_steal(&st.kept_list) : NULL;
	buf_free(&st.kept_list);
	if (st.nerrs > 0) {
		conf_free(st.cf);
		return (NULL);
	}
	return (st.cf);
}

struct config *
conf_load_buffer(const char *name, const char *data, size_t len,
    char **errors)
{
	return (load(name, data, len, 0, NULL, errors, NULL));
}

static struct config *
load_file(const char *path, const struct config *old, char **errors,
    char **kept)
{
	struct buf	 b = BUF_INIT;
	struct config	*cf;
	int		 e = 0;

	if (read_file(path, CONF_MAX_FILE, &b, NULL) == -1)
		e = errno;
	cf = load(path, buf_str(&b), b.len, e, old, errors, kept);
	buf_free(&b);
	return (cf);
}

struct config *
conf_load(const char *path, char **errors)
{
	return (load_file(path, NULL, errors, NULL));
}

struct config *
conf_reload(const char *path, const struct config *old, char **errors,
    char **kept)
{
	return (load_file(path, old, errors, kept));
}

void
conf_free(struct config *cf)
{
	size_t	 i, j;
	char	**s;
	bool	 string;

	if (cf == NULL)
		return;
	for (i = 0; i < NKEYS; i++) {
		(void)key_size(&keys[i], &string);
		if (string) {
			s = (char **)((char *)cf + keys[i].off);
			free(*s);
		}
	}
	xfree_secret(cf->exchange.password);
	xfree_secret(cf->exchange.client_secret);
	xfree_secret(cf->graph.client_secret);
	for (i = 0; i < cf->cluster.nendpoints; i++)
		free(cf->cluster.endpoint[i]);
	free(cf->cluster.endpoint);
	for (i = 0; i < cf->nmailboxes; i++) {
		free(cf->mailboxes[i].address);
		free(cf->mailboxes[i].id);
	}
	free(cf->mailboxes);
	for (i = 0; i < cf->nsinks; i++) {
		for (j = 0; j < cf->sinks[i].nkv; j++) {
			free(cf->sinks[i].kv[j].key);
			free(cf->sinks[i].kv[j].value);
		}
		free(cf->sinks[i].kv);
		free(cf->sinks[i].name);
		free(cf->sinks[i].type);
	}
	free(cf->sinks);
	free(cf->path);
	free(cf);
}

const char *
conf_state_directory(const struct config *cf)
{
	static char	 first[4096];
	const char	*env, *colon;
	size_t		 n;

	if (cf->daemon.state_directory != NULL)
		return (cf->daemon.state_directory);
	if ((env = getenv("STATE_DIRECTORY")) == NULL || *env != '/')
		return (NULL);
	/* Several StateDirectory= entries arrive colon-separated. */
	n = (colon = strchr(env, ':')) != NULL ? (size_t)(colon - env) :
	    strlen(env);
	if (n >= sizeof(first))
		return (NULL);
	memcpy(first, env, n);
	first[n] = '\0';
	return (first);
}

bool
conf_key_reloadable(const char *section, const char *key)
{
	int	 sec;

	if (strcmp(section, "sink") == 0 || strncmp(section, "sink ", 5) == 0)
		return (true);
	for (sec = 0; sec < SEC_COUNT; sec++) {
		if (strcmp(section, section_names[sec]) == 0) {
			const struct conf_key *k = key_find(sec, key);

			return (k != NULL && (k->flags & CK_RELOAD) != 0);
		}
	}
	return (false);
}

bool
conf_key_at(size_t i, const char **section, const char **name)
{
	if (i >= NKEYS)
		return (false);
	*section = section_names[keys[i].section];
	*name = keys[i].name;
	return (true);
}

static bool
str_differs(const char *a, const char *b)
{
	if (a == NULL || b == NULL)
		return (a != b);
	return (strcmp(a, b) != 0);
}

/*
 * Where a scalar key (mailboxes and sinks aside) keeps its value in a
 * config: the size of a plain value, or 0 for an allocated string (and
 * for the mailbox list, which is no scalar).
 */
static size_t
key_size(const struct conf_key *k, bool *string)
{
	*string = false;
	switch (k->type) {
	case KT_STR:
	case KT_URL:
	case KT_URLS:
	case KT_LISTEN:
	case KT_CIDRS:
	case KT_PATH:
	case KT_CRED:
	case KT_NAME:
		*string = true;
		return (0);
	case KT_BOOL:
		return (sizeof(bool));
	case KT_UINT:
	case KT_MINUTES:
		return (sizeof(unsigned));
	case KT_DURATION:
		return (sizeof(int64_t));
	case KT_ENUM:
		return (sizeof(int));
	case KT_MODE:
		return (sizeof(mode_t));
	default:
		return (0);
	}
}

/* Whether a scalar key differs between a and b. */
static bool
key_differs(const struct conf_key *k, const struct config *a,
    const struct config *b)
{
	const char	*o = (const char *)a + k->off;
	const char	*n = (const char *)b + k->off;
	bool		 string;
	size_t		 size = key_size(k, &string);

	if (string)
		return (str_differs(*(char *const *)o, *(char *const *)n));
	return (memcmp(o, n, size) != 0);
}

/* Give dst src's value of a scalar key. */
static void
key_copy(const struct conf_key *k, struct config *dst,
    const struct config *src)
{
	char		*d = (char *)dst + k->off;
	const char	*s = (const char *)src + k->off;
	const char	*v;
	bool		 string;
	size_t		 size = key_size(k, &string);

	if (string) {
		v = *(char *const *)s;
		free(*(char **)d);
		*(char **)d = v != NULL ? xstrdup(v) : NULL;
	} else
		memcpy(d, s, size);
}

int
conf_diff_keys(const struct config *old, const struct config *new,
    char **what)
{
	struct buf	 b = BUF_INIT;
	size_t		 i;
	int		 count = 0;

	for (i = 0; i < NKEYS; i++) {
		if (!key_differs(&keys[i], old, new))
			continue;
		if (count++ > 0)
			buf_puts(&b, ", ");
		buf_printf(&b, "%s.%s", section_names[keys[i].section],
		    keys[i].name);
	}
	*what = count > 0 ? buf_steal(&b) : NULL;
	buf_free(&b);
	return (count);
}

static const char *
enum_name(const struct conf_enum *e, int v)
{
	for (; e->name != NULL; e++)
		if (e->value == v)
			return (e->name);
	return ("unknown");
}

const char *
conf_auth_name(enum conf_auth v)
{
	return (enum_name(auth_enum, (int)v));
}

const char *
conf_mode_name(enum conf_mode v)
{
	return (enum_name(mode_enum, (int)v));
}

const char *
conf_idtype_name(enum conf_idtype v)
{
	return (enum_name(idtype_enum, (int)v));
}

const char *
conf_charging_name(enum conf_charging v)
{
	return (enum_name(charging_enum, (int)v));
}

const char *
conf_show_name(enum conf_show v)
{
	return (enum_name(show_enum, (int)v));
}

const struct conf_kv *
conf_sink_get(const struct conf_sink *sk, const char *key)
{
	size_t	 i;

	for (i = 0; i < sk->nkv; i++)
		if (strcmp(sk->kv[i].key, key) == 0)
			return (&sk->kv[i]);
	return (NULL);
}
