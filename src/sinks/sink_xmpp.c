/*
 * ewsgw - Exchange calendar presence gateway
 * SPDX-License-Identifier: ISC
 *
 * Built-in sink "xmpp": each mailbox's presence as XMPP presence
 * (<show>dnd</show> in a meeting, xa out of office, away) from a JID of
 * an external component (XEP-0114), e.g. alice@presence.example.com,
 * to everyone who subscribed to that JID.
 *
 * Why a component and not PEP: XMPP presence (<show>, <status>) is
 * broadcast by a user's own session, and PEP (XEP-0163) carries
 * extended data (user activity, mood) that clients seldom show; either
 * way the gateway would have to log in as every user, i.e. hold 100,000
 * passwords and sessions.  A component needs one connection and one
 * shared secret, works with every server (Prosody, ejabberd, Openfire),
 * and its JIDs behave like ordinary contacts: users add them to their
 * roster, the component approves the subscription and sends presence.
 *
 * Why not libstrophe: its TLS handshake loops on select() until done,
 * and host names go through blocking getaddrinfo(), so a server that
 * accepts TCP and then stalls would freeze the whole daemon; it also
 * hides its socket, so it cannot sit on our libevent loop without
 * polling.  The component protocol is a stream header, one SHA-1
 * handshake and presence stanzas: xmpp_stream.c reads it with libxml2,
 * netconn.c carries it over TCP or verified TLS without blocking.
 *
 * While the component is not connected publish() answers AGAIN, so the
 * engine keeps the changes, in order, and ewsgw_host_resume() releases
 * them the moment the handshake succeeds; reconnects back off with
 * jitter between reconnect_min and reconnect_max.
 *
 * A reload that changes the section hands the old instance's contacts
 * to the new one (xmpp_takeover): the last presence of every mailbox,
 * so probes are answered with it, the subscribers, and the stream
 * itself unless a setting it was opened with changed.
 */
#include "config.h"

#include <errno.h>
#include <stdarg.h>
#include <event2/buffer.h>
#include <event2/event.h>
#include <event2/event_struct.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <unistd.h>

#include "base/backoff.h"
#include "base/buf.h"
#include "base/hashmap.h"
#include "base/log.h"
#include "base/timeutil.h"
#include "base/xmalloc.h"
#include "io/dns.h"
#include "io/netconn.h"
#include "io/tls.h"
#include "sinks/addrmap.h"
#include "sinks/sink_text.h"
#include "sinks/sinks.h"
#include "sinks/sinkset.h"
#include "sinks/xmpp_stream.h"

#define XMPP_PORT_DEFAULT	5347
#define XMPP_RECONNECT_MIN	1000		/* ms */
#define XMPP_RECONNECT_MAX	(60 * 1000)	/* ms */
#define XMPP_TIMEOUT_DEFAULT	10000		/* ms */
#define XMPP_OUTPUT_MAX		(1024 * 1024)	/* bytes queued */
#define XMPP_SAVE_DELAY		1000		/* ms, subscribers file */
#define XMPP_JID_MAX		3071		/* RFC 7622 */

enum xmpp_state {
	XMPP_IDLE,		/* waiting to reconnect */
	XMPP_RESOLVING,
	XMPP_CONNECTING,	/* TCP, TLS handshake */
	XMPP_OPENING,		/* our stream header sent */
	XMPP_HANDSHAKE,		/* <handshake> sent */
	XMPP_ONLINE,
	XMPP_STATE_MAX
};

/* One of our JIDs: its presence and who subscribed to it. */
struct xmpp_contact {
	char		*jid;
	char		*mailbox;	/* whose presence it shows, or NULL */
	bool		 known;		/* a change was published */
	bool		 announce;	/* a reload changed it: send it */
	bool		 available;
	const char	*show;		/* static, or NULL */
	const char	*status;	/* static (sink_text_note), or NULL */
	char		**subs;		/* bare JIDs */
	size_t		 nsubs;
};

struct ewsgw_sink {
	struct ewsgw_host	*host;
	struct event_base	*base;
	char			*host_name;	/* server */
	uint16_t		 port;
	char			*domain;
	char			*secret_file;
	char			*secret;	/* secret */
	char			*subs_file;	/* or NULL */
	struct addrmap		*map;
	bool			 tls;
	char			*tls_name;
	SSL_CTX			*ssl_ctx;	/* with tls */
	int64_t			 timeout;	/* ms */
	struct dns_resolver	*dns;
	char			*stream_key;	/* see xmpp_stream_key */

	enum xmpp_state		 state;
	bool			 adopted;	/* the stream came from a
						 * reload's old instance */
	struct event		 timer;		/* reconnect or deadline */
	struct backoff		 backoff;
	struct backoff_rng	 rng;
	struct dns_req		*req;
	struct dns_addr		*addrs;
	size_t			 naddrs, addr;
	struct netconn		*conn;
	struct xmpp_reader	*reader;
	char			 broken[240];	/* the stream ended: why */
	bool			 waiting;	/* said AGAIN since online */

	struct hashmap		*contacts;	/* jid -> xmpp_contact */
	size_t			 announce;	/* contacts to announce */
	struct event		 save_ev;

	/* health */
	uint64_t		 sent;
	uint64_t		 connects;
	uint64_t		 subscriptions;
	char			 last_error[240];
};

struct xmpp_settings {
	const char	*server;
	const char	*domain;
	const char	*secret_file;
	const char	*jid;
	const char	*mapping_file;
	const char	*subscribers_file;
	const char	*ca_file;
	const char	*tls_name;
	const char	*dns_servers;
	int		 tls;
	int		 tls_verify;
	int64_t		 timeout;
	int64_t		 reconnect_min;
	int64_t		 reconnect_max;
	char		 host[256];
	uint16_t	 port;
	char		*pattern;	/* allocated: jid or the default */
};

static int	 xmpp_settings(const struct ewsgw_sink_config *,
		    struct xmpp_settings *);
static int	 xmpp_parse_server(const char *, char *, size_t, uint16_t *);
static int	 xmpp_check(const struct ewsgw_sink_config *);
static int	 xmpp_create(struct ewsgw_host *,
		    const struct ewsgw_sink_config *, struct ewsgw_sink **);
static int	 xmpp_publish(struct ewsgw_sink *,
		    const struct ewsgw_presence_change *, uint64_t);
static int	 xmpp_health(struct ewsgw_sink *, char *, size_t);
static void	 xmpp_destroy(struct ewsgw_sink *);
static void	 xmpp_reopen(struct ewsgw_sink *);
static void	 xmpp_forget(struct ewsgw_sink *, const char *);
static void	 xmpp_takeover(struct ewsgw_sink *, struct ewsgw_sink *);
static char	*xmpp_stream_key(const struct xmpp_settings *);
static void	 xmpp_take_contact(struct ewsgw_sink *,
		    const struct xmpp_contact *, bool, struct hashmap *);
static void	 xmpp_announce(struct ewsgw_sink *);
static void	 xmpp_set_state(struct ewsgw_sink *, enum xmpp_state);
static void	 xmpp_fail(struct ewsgw_sink *, const char *, ...)
		    __attribute__((format(printf, 2, 3)));
static void	 xmpp_close(struct ewsgw_sink *);
static void	 xmpp_timer_cb(evutil_socket_t, short, void *);
static void	 xmpp_resolve_cb(const struct dns_result *, void *);
static void	 xmpp_connect(struct ewsgw_sink *);
static void	 xmpp_conn_read(struct netconn *, struct evbuffer *, void *);
static void	 xmpp_conn_event(struct netconn *, enum netconn_event,
		    const char *, void *);
static void	 xmpp_stream_event(enum xmpp_event,
		    const struct xmpp_stanza *, void *);
static void	 xmpp_presence_in(struct ewsgw_sink *,
		    const struct xmpp_stanza *);
static void	 xmpp_send(struct ewsgw_sink *, struct buf *);
static void	 xmpp_send_presence(struct ewsgw_sink *,
		    struct xmpp_contact *, const char *);
static struct xmpp_contact *contact_get(struct ewsgw_sink *, const char *);
static void	 contact_free(void *);
static bool	 contact_add_sub(struct xmpp_contact *, const char *);
static bool	 contact_del_sub(struct xmpp_contact *, const char *);
static bool	 jid_in_domain(const char *, const char *);
static char	*jid_bare(const char *);
static void	 subs_load(struct ewsgw_sink *);
static void	 subs_changed(struct ewsgw_sink *);
static void	 subs_save_cb(evutil_socket_t, short, void *);

static const char *const xmpp_state_names[XMPP_STATE_MAX] = {
	"idle", "resolving", "connecting", "opening", "handshake", "online"
};

const struct ewsgw_sink_ops sink_xmpp_ops = {
	.abi_version = EWSGW_SINK_ABI_VERSION,
	.size = sizeof(struct ewsgw_sink_ops),
	.name = "xmpp",
	.check = xmpp_check,
	.create = xmpp_create,
	.publish = xmpp_publish,
	.health = xmpp_health,
	.destroy = xmpp_destroy,
	.reopen = xmpp_reopen,
	.forget = xmpp_forget,
	.takeover = xmpp_takeover,
};

/* ---- configuration ---- */

/* "host", "host:port", "[v6]" or "[v6]:port". */
static int
xmpp_parse_server(const char *v, char *host, size_t len, uint16_t *port)
{
	const char	*h = v, *e, *p = NULL;
	char		*end;
	unsigned long	 n;
	size_t		 hl;

	*port = XMPP_PORT_DEFAULT;
	if (*v == '[') {
		if ((e = strchr(v, ']')) == NULL)
			return (-1);
		h = v + 1;
		hl = (size_t)(e - h);
		if (e[1] == ':')
			p = e + 2;
		else if (e[1] != '\0')
			return (-1);
	} else if ((e = strchr(v, ':')) != NULL && strchr(e + 1, ':') == NULL) {
		hl = (size_t)(e - v);
		p = e + 1;
	} else
		hl = strlen(v);
	if (hl == 0 || hl + 1 > len)
		return (-1);
	memcpy(host, h, hl);
	host[hl] = '\0';
	if (p != NULL) {
		errno = 0;
		n = strtoul(p, &end, 10);
		if (*p < '0' || *p > '9' || *end != '\0' || errno != 0 ||
		    n == 0 || n > 65535)
			return (-1);
		*port = (uint16_t)n;
	}
	return (0);
}

static int
xmpp_settings(const struct ewsgw_sink_config *c, struct xmpp_settings *xs)
{
	struct tls_client_opts	 to;
	char			*cause = NULL;
	int			 rc = 0;

	memset(xs, 0, sizeof *xs);
	xs->server = ewsgw_sink_config_get(c, "server");
	xs->domain = ewsgw_sink_config_get(c, "domain");
	xs->secret_file = ewsgw_sink_config_get(c, "secret_file");
	if (xs->server == NULL || xs->domain == NULL ||
	    xs->secret_file == NULL) {
		ewsgw_sink_config_error(c, NULL, "missing required key %s",
		    xs->server == NULL ? "server (HOST[:PORT] of the "
		    "component port)" : xs->domain == NULL ? "domain (the "
		    "component's name, e.g. presence.example.com)" :
		    "secret_file (the component secret)");
		rc = -1;
	}
	if (xs->server != NULL && xmpp_parse_server(xs->server, xs->host,
	    sizeof xs->host, &xs->port) == -1) {
		ewsgw_sink_config_error(c, "server",
		    "server must be HOST[:PORT], not '%s'", xs->server);
		rc = -1;
	}
	if (xs->domain != NULL && (xs->domain[0] == '\0' ||
	    strpbrk(xs->domain, "@/ '\"<>&") != NULL)) {
		ewsgw_sink_config_error(c, "domain",
		    "domain must be a bare domain name, not '%s'", xs->domain);
		rc = -1;
	}
	if (xs->secret_file != NULL && sink_check_secret_file(c,
	    "secret_file", xs->secret_file) == -1)
		rc = -1;
	xs->jid = ewsgw_sink_config_get(c, "jid");
	if (xs->jid != NULL)
		xs->pattern = xstrdup(xs->jid);
	else if (xs->domain != NULL)
		xasprintf(&xs->pattern, "%%l@%s", xs->domain);
	if (addrmap_config(c, "jid", xs->pattern, ADDRMAP_JID,
	    &xs->mapping_file) == -1)
		rc = -1;
	else if (xs->domain != NULL && strstr(xs->pattern, "%d") == NULL &&
	    !jid_in_domain(xs->pattern, xs->domain)) {
		ewsgw_sink_config_error(c, "jid", "jid '%s' must end in @%s: "
		    "a component speaks only for its own domain", xs->pattern,
		    xs->domain);
		rc = -1;
	}
	xs->subscribers_file = ewsgw_sink_config_get(c, "subscribers_file");
	xs->ca_file = ewsgw_sink_config_get(c, "ca_file");
	xs->tls_name = ewsgw_sink_config_get(c, "tls_name");
	xs->dns_servers = ewsgw_sink_config_get(c, "dns_servers");
	if (sink_config_bool(c, "tls", 0, &xs->tls) == -1 ||
	    sink_config_bool(c, "tls_verify", 1, &xs->tls_verify) == -1)
		rc = -1;
	memset(&to, 0, sizeof to);
	to.ca_file = xs->ca_file;
	if (tls_client_check(&to, &cause) == -1) {
		ewsgw_sink_config_error(c, "ca_file", "%s", cause);
		free(cause);
		rc = -1;
	}
	if (sink_config_duration(c, "timeout", XMPP_TIMEOUT_DEFAULT, 1000,
	    &xs->timeout) == -1 ||
	    sink_config_duration(c, "reconnect_min", XMPP_RECONNECT_MIN, 1000,
	    &xs->reconnect_min) == -1 ||
	    sink_config_duration(c, "reconnect_max", XMPP_RECONNECT_MAX, 1000,
	    &xs->reconnect_max) == -1)
		rc = -1;
	else if (xs->timeout < 1 || xs->reconnect_min < 1 ||
	    xs->reconnect_max < xs->reconnect_min) {
		ewsgw_sink_config_error(c, "reconnect_max", "need a positive "
		    "timeout and 0 < reconnect_min <= reconnect_max");
		rc = -1;
	}
	return (rc);
}

/*
 * The settings a stream was opened with, as one string (allocated): a
 * reload's new instance keeps the old one's stream only when they are
 * the same.  The secret is not among them (the stream is authenticated
 * already; a new one is used for the next handshake, as after SIGHUP),
 * nor are the timeouts, the JID pattern and the files.  Values cannot
 * hold a newline, so the fields cannot run into each other.
 */
static char *
xmpp_stream_key(const struct xmpp_settings *xs)
{
	char	*k;

	xasprintf(&k, "%s\n%u\n%s\n%d\n%s\n%s\n%d\n%s", xs->host,
	    (unsigned)xs->port, xs->domain, xs->tls,
	    xs->tls_name != NULL ? xs->tls_name : "",
	    xs->ca_file != NULL ? xs->ca_file : "", xs->tls_verify,
	    xs->dns_servers != NULL ? xs->dns_servers : "");
	return (k);
}

static int
xmpp_check(const struct ewsgw_sink_config *c)
{
	struct xmpp_settings	 xs;
	int			 rc;

	rc = xmpp_settings(c, &xs);
	free(xs.pattern);
	return (rc);
}

static int
xmpp_create(struct ewsgw_host *host, const struct ewsgw_sink_config *c,
    struct ewsgw_sink **out)
{
	struct xmpp_settings	 xs;
	struct tls_client_opts	 to;
	struct ewsgw_sink	*s;
	char			*cause = NULL;

	if (xmpp_settings(c, &xs) == -1) {
		free(xs.pattern);
		return (-1);
	}
	s = xcalloc(1, sizeof *s);
	s->host = host;
	s->base = ewsgw_host_event_base(host);
	s->contacts = hashmap_new();
	evtimer_assign(&s->timer, s->base, xmpp_timer_cb, s);
	evtimer_assign(&s->save_ev, s->base, subs_save_cb, s);
	s->host_name = xstrdup(xs.host);
	s->port = xs.port;
	s->domain = xstrdup(xs.domain);
	s->subs_file = xs.subscribers_file != NULL ?
	    xstrdup(xs.subscribers_file) : NULL;
	s->tls = xs.tls != 0;
	s->tls_name = xstrdup(xs.tls_name != NULL ? xs.tls_name : xs.host);
	s->stream_key = xmpp_stream_key(&xs);
	s->timeout = xs.timeout;
	backoff_init(&s->backoff, xs.reconnect_min, xs.reconnect_max,
	    BACKOFF_DECORRELATED);
	backoff_rng_seed(&s->rng, (uint64_t)time_wall_ms() ^
	    (uint64_t)(uintptr_t)s);
	s->map = addrmap_new(xs.pattern, ADDRMAP_JID, xs.mapping_file, &cause);
	free(xs.pattern);
	if (s->map == NULL) {
		ewsgw_sink_config_error(c, "mapping_file", "%s", cause);
		goto fail;
	}
	s->secret_file = xstrdup(xs.secret_file);
	if ((s->secret = sink_read_secret(xs.secret_file, &cause)) == NULL) {
		ewsgw_sink_config_error(c, "secret_file", "%s", cause);
		goto fail;
	}
	if ((s->dns = dns_resolver_new(s->base, xs.dns_servers, 2000, 2,
	    &cause)) == NULL) {
		ewsgw_sink_config_error(c, "dns_servers", "%s", cause);
		goto fail;
	}
	if (s->tls) {
		memset(&to, 0, sizeof to);
		to.ca_file = xs.ca_file;
		to.verify = xs.tls_verify != 0;
		if ((s->ssl_ctx = tls_client_ctx_new(&to, &cause)) == NULL) {
			ewsgw_sink_config_error(c, "ca_file", "%s", cause);
			goto fail;
		}
	}
	subs_load(s);
	*out = s;
	/* Connect at once, so the component is there before changes. */
	xmpp_set_state(s, XMPP_RESOLVING);
	return (0);
fail:
	free(cause);
	xmpp_destroy(s);
	return (-1);
}

static void
xmpp_destroy(struct ewsgw_sink *s)
{
	xmpp_close(s);
	evtimer_del(&s->timer);
	if (evtimer_pending(&s->save_ev, NULL)) {
		evtimer_del(&s->save_ev);
		subs_save_cb(-1, 0, s);
	}
	dns_resolver_free(s->dns);
	if (s->ssl_ctx != NULL)
		SSL_CTX_free(s->ssl_ctx);
	hashmap_free(s->contacts, contact_free);
	addrmap_free(s->map);
	xfree_secret(s->secret);
	free(s->secret_file);
	free(s->host_name);
	free(s->domain);
	free(s->subs_file);
	free(s->tls_name);
	free(s->stream_key);
	free(s);
}

/* SIGHUP: read the mapping file and the secret (for the next
 * handshake) again. */
static void
xmpp_reopen(struct ewsgw_sink *s)
{
	char	*secret, *cause = NULL;

	addrmap_reopen(s->map, s->host);
	if ((secret = sink_read_secret(s->secret_file, &cause)) == NULL) {
		ewsgw_host_log(s->host, LOG_WARNING, "keeping the old "
		    "secret: %s", cause);
		free(cause);
		return;
	}
	xfree_secret(s->secret);
	s->secret = secret;
}

static int
xmpp_health(struct ewsgw_sink *s, char *detail, size_t len)
{
	snprintf(detail, len, "%s %s:%u as %s%s%s; %zu contacts, %llu "
	    "subscriptions approved, %llu stanzas sent, %zu bytes queued, "
	    "%llu connects", xmpp_state_names[s->state], s->host_name,
	    s->port, s->domain,
	    s->state != XMPP_ONLINE && s->last_error[0] != '\0' ? ": " : "",
	    s->state != XMPP_ONLINE ? s->last_error : "",
	    hashmap_count(s->contacts), (unsigned long long)s->subscriptions,
	    (unsigned long long)s->sent, s->conn != NULL ?
	    netconn_output_len(s->conn) : 0,
	    (unsigned long long)s->connects);
	return (s->state == XMPP_ONLINE ? 1 : 0);
}

/* ---- connection ---- */

static void
xmpp_set_state(struct ewsgw_sink *s, enum xmpp_state st)
{
	struct timeval	 tv;
	struct buf	 b = BUF_INIT;
	int64_t		 ms = -1;	/* the state's timer, if any */

	log_debug("sink %s: %s -> %s", ewsgw_host_name(s->host),
	    xmpp_state_names[s->state], xmpp_state_names[st]);
	s->state = st;
	evtimer_del(&s->timer);
	switch (st) {
	case XMPP_IDLE:
		xmpp_close(s);
		ms = backoff_next(&s->backoff, &s->rng);
		break;
	case XMPP_RESOLVING:
		s->req = dns_lookup_addr(s->dns, s->host_name, s->port,
		    xmpp_resolve_cb, s);
		break;
	case XMPP_CONNECTING:
		xmpp_connect(s);
		break;
	case XMPP_OPENING:
		s->broken[0] = '\0';
		s->reader = xmpp_reader_new(xmpp_stream_event, s);
		xmpp_write_open(&b, s->domain);
		xmpp_send(s, &b);
		/* Their stream header, then the handshake, in time. */
		ms = s->timeout;
		break;
	case XMPP_HANDSHAKE:
		ms = s->timeout;
		break;
	case XMPP_ONLINE:
		backoff_reset(&s->backoff);
		s->last_error[0] = '\0';
		if (s->adopted)
			ewsgw_host_log(s->host, LOG_NOTICE, "kept the stream "
			    "to %s:%u as component %s", s->host_name, s->port,
			    s->domain);
		else {
			s->connects++;
			ewsgw_host_log(s->host, LOG_NOTICE, "connected to "
			    "%s:%u as component %s", s->host_name, s->port,
			    s->domain);
		}
		s->adopted = false;
		xmpp_announce(s);
		if (s->waiting) {
			s->waiting = false;
			ewsgw_host_resume(s->host);
		}
		break;
	default:
		break;
	}
	if (ms >= 0) {
		tv.tv_sec = ms / 1000;
		tv.tv_usec = (ms % 1000) * 1000;
		evtimer_add(&s->timer, &tv);
	}
	buf_free(&b);
}

/* Give up on this connection: log why, back off, reconnect later. */
static void
xmpp_fail(struct ewsgw_sink *s, const char *fmt, ...)
{
	va_list	 ap;
	bool	 was_online = s->state == XMPP_ONLINE;

	va_start(ap, fmt);
	vsnprintf(s->last_error, sizeof s->last_error, fmt, ap);
	va_end(ap);
	/* Once per outage at warning, repeats at debug. */
	ewsgw_host_log(s->host, was_online || s->backoff.attempt == 0 ?
	    LOG_WARNING : LOG_DEBUG, "%s", s->last_error);
	xmpp_set_state(s, XMPP_IDLE);
}

static void
xmpp_close(struct ewsgw_sink *s)
{
	dns_cancel(s->req);
	s->req = NULL;
	netconn_free(s->conn);
	s->conn = NULL;
	xmpp_reader_free(s->reader);
	s->reader = NULL;
	free(s->addrs);
	s->addrs = NULL;
	s->naddrs = s->addr = 0;
}

static void
xmpp_timer_cb(evutil_socket_t fd, short what, void *arg)
{
	struct ewsgw_sink	*s = arg;

	if (s->state == XMPP_IDLE)
		xmpp_set_state(s, XMPP_RESOLVING);
	else
		xmpp_fail(s, "%s:%u: no component handshake within %lld ms",
		    s->host_name, s->port, (long long)s->timeout);
}

static void
xmpp_resolve_cb(const struct dns_result *res, void *arg)
{
	struct ewsgw_sink	*s = arg;

	s->req = NULL;
	if (res->error != NULL) {
		xmpp_fail(s, "%s: %s", s->host_name, res->error);
		return;
	}
	s->addrs = xcalloc(res->naddrs, sizeof *s->addrs);
	memcpy(s->addrs, res->addrs, res->naddrs * sizeof *s->addrs);
	s->naddrs = res->naddrs;
	s->addr = 0;
	xmpp_set_state(s, XMPP_CONNECTING);
}

static void
xmpp_connect(struct ewsgw_sink *s)
{
	struct netconn_opts	 no;
	const struct dns_addr	*a = &s->addrs[s->addr];
	char			*cause = NULL;

	memset(&no, 0, sizeof no);
	no.ssl_ctx = s->ssl_ctx;
	no.peer_name = s->tls_name;
	no.timeout_ms = s->timeout;
	s->conn = netconn_connect(s->base, (const struct sockaddr *)&a->ss,
	    a->len, &no, xmpp_conn_read, xmpp_conn_event, s, &cause);
	if (s->conn == NULL) {
		xmpp_fail(s, "%s:%u: %s", s->host_name, s->port, cause);
		free(cause);
	}
}

static void
xmpp_conn_event(struct netconn *c, enum netconn_event ev, const char *why,
    void *arg)
{
	struct ewsgw_sink	*s = arg;
	char			 addr[80];

	switch (ev) {
	case NETCONN_CONNECTED:
		xmpp_set_state(s, XMPP_OPENING);
		break;
	case NETCONN_DRAINED:
		if (s->waiting && s->state == XMPP_ONLINE) {
			s->waiting = false;
			ewsgw_host_resume(s->host);
		}
		break;
	case NETCONN_CLOSED:
		xmpp_fail(s, "%s:%u closed the connection", s->host_name,
		    s->port);
		break;
	case NETCONN_ERROR:
		if (s->state == XMPP_CONNECTING && s->addr + 1 < s->naddrs) {
			/* The next address of the name. */
			netconn_free(s->conn);
			s->conn = NULL;
			s->addr++;
			xmpp_connect(s);
			break;
		}
		netconn_addr_string((const struct sockaddr *)
		    &s->addrs[s->addr].ss, addr, sizeof addr);
		xmpp_fail(s, "%s (%s): %s", s->host_name, addr, why);
		break;
	}
}

static void
xmpp_conn_read(struct netconn *c, struct evbuffer *in, void *arg)
{
	struct ewsgw_sink	*s = arg;
	unsigned char		 chunk[4096];
	char			*cause = NULL;
	int			 n;

	while (s->conn == c && s->reader != NULL &&
	    (n = evbuffer_remove(in, chunk, sizeof chunk)) > 0) {
		if (xmpp_reader_feed(s->reader, (const char *)chunk,
		    (size_t)n, &cause) == -1) {
			xmpp_fail(s, "%s:%u: bad stream: %s", s->host_name,
			    s->port, cause);
			free(cause);
			return;
		}
		if (s->broken[0] != '\0') {
			xmpp_fail(s, "%s", s->broken);
			return;
		}
	}
}

/*
 * What the server sent.  This runs inside xmpp_reader_feed, so it must
 * not free the reader: the end of the connection is only noted in
 * s->broken, and xmpp_conn_read acts on it after the feed returns.
 */
static void
xmpp_stream_event(enum xmpp_event ev, const struct xmpp_stanza *st,
    void *arg)
{
	struct ewsgw_sink	*s = arg;
	struct buf		 b = BUF_INIT;

	switch (ev) {
	case XMPP_EV_OPEN:
		if (s->state != XMPP_OPENING || st->id == NULL) {
			snprintf(s->broken, sizeof s->broken, "%s:%u: stream "
			    "header without an id", s->host_name, s->port);
			break;
		}
		xmpp_write_handshake(&b, st->id, s->secret);
		xmpp_send(s, &b);
		explicit_bzero(b.data, b.len);
		xmpp_set_state(s, XMPP_HANDSHAKE);
		break;
	case XMPP_EV_CLOSE:
		/* After a stream error, that error is the story. */
		if (s->broken[0] == '\0')
			snprintf(s->broken, sizeof s->broken, "%s:%u closed "
			    "the stream", s->host_name, s->port);
		break;
	case XMPP_EV_STANZA:
		if (strcmp(st->name, "error") == 0 &&
		    strcmp(st->ns, "http://etherx.jabber.org/streams") == 0) {
			/* conflict, not-authorized, host-unknown, ... */
			snprintf(s->broken, sizeof s->broken, "%s:%u refused "
			    "component %s: stream error %s", s->host_name,
			    s->port, s->domain, st->child != NULL ?
			    st->child : "(none)");
			break;
		}
		if (s->state == XMPP_HANDSHAKE &&
		    strcmp(st->name, "handshake") == 0) {
			xmpp_set_state(s, XMPP_ONLINE);
			break;
		}
		if (s->state != XMPP_ONLINE)
			break;
		if (strcmp(st->name, "presence") == 0)
			xmpp_presence_in(s, st);
		else if (strcmp(st->name, "iq") == 0 && st->type != NULL &&
		    (strcmp(st->type, "get") == 0 ||
		    strcmp(st->type, "set") == 0) && st->from != NULL &&
		    st->to != NULL) {
			/* RFC 6120 8.2.3: every request gets an answer. */
			xmpp_write_iq_error(&b, st->to, st->from, st->id);
			xmpp_send(s, &b);
		}
		break;
	}
	buf_free(&b);
}

static void
xmpp_send(struct ewsgw_sink *s, struct buf *b)
{
	if (s->conn == NULL || b->len == 0)
		return;
	netconn_write(s->conn, b->data, b->len);
	s->sent++;
}

/* ---- contacts and subscriptions ---- */

/* Does jid ("local@domain[/res]") belong to domain? */
static bool
jid_in_domain(const char *jid, const char *domain)
{
	const char	*at = strrchr(jid, '@');
	size_t		 dl = strlen(domain);

	if (at == NULL || strchr(at, '/') != NULL)
		return (false);
	return (strlen(at + 1) == dl && strncasecmp(at + 1, domain, dl) == 0);
}

/* The bare JID (allocated), resource removed. */
static char *
jid_bare(const char *jid)
{
	const char	*slash = strchr(jid, '/');

	return (slash != NULL ? xstrndup(jid, (size_t)(slash - jid)) :
	    xstrdup(jid));
}

static struct xmpp_contact *
contact_get(struct ewsgw_sink *s, const char *jid)
{
	struct xmpp_contact	*ct;

	if ((ct = hashmap_get(s->contacts, jid)) != NULL)
		return (ct);
	ct = xcalloc(1, sizeof *ct);
	ct->jid = xstrdup(jid);
	hashmap_put(s->contacts, jid, ct);
	return (ct);
}

static void
contact_free(void *arg)
{
	struct xmpp_contact	*ct = arg;
	size_t			 i;

	for (i = 0; i < ct->nsubs; i++)
		free(ct->subs[i]);
	free(ct->subs);
	free(ct->jid);
	free(ct->mailbox);
	free(ct);
}

static bool
contact_add_sub(struct xmpp_contact *ct, const char *who)
{
	size_t	 i;

	for (i = 0; i < ct->nsubs; i++)
		if (strcasecmp(ct->subs[i], who) == 0)
			return (false);
	ct->subs = xreallocarray(ct->subs, ct->nsubs + 1, sizeof *ct->subs);
	ct->subs[ct->nsubs++] = xstrdup(who);
	return (true);
}

static bool
contact_del_sub(struct xmpp_contact *ct, const char *who)
{
	size_t	 i;

	for (i = 0; i < ct->nsubs; i++) {
		if (strcasecmp(ct->subs[i], who) != 0)
			continue;
		free(ct->subs[i]);
		ct->subs[i] = ct->subs[--ct->nsubs];
		return (true);
	}
	return (false);
}

/* ct's presence to one subscriber (to) or to all (to NULL). */
static void
xmpp_send_presence(struct ewsgw_sink *s, struct xmpp_contact *ct,
    const char *to)
{
	struct buf	 b = BUF_INIT;
	size_t		 i;

	for (i = 0; i < ct->nsubs; i++) {
		if (to != NULL && strcasecmp(ct->subs[i], to) != 0)
			continue;
		xmpp_write_presence(&b, ct->jid, ct->subs[i],
		    ct->available ? NULL : "unavailable", ct->show,
		    ct->status);
	}
	xmpp_send(s, &b);
	buf_free(&b);
}

/* A presence stanza addressed to one of our JIDs. */
static void
xmpp_presence_in(struct ewsgw_sink *s, const struct xmpp_stanza *st)
{
	struct xmpp_contact	*ct;
	struct buf		 b = BUF_INIT;
	char			*who;

	if (st->from == NULL || st->to == NULL || st->type == NULL ||
	    strlen(st->from) > XMPP_JID_MAX ||
	    !jid_in_domain(st->to, s->domain))
		return;
	who = jid_bare(st->from);
	if (strcmp(st->type, "subscribe") == 0) {
		/* Approve, and tell the new subscriber where we are. */
		ct = contact_get(s, st->to);
		xmpp_write_presence(&b, ct->jid, who, "subscribed", NULL,
		    NULL);
		xmpp_send(s, &b);
		if (contact_add_sub(ct, who)) {
			s->subscriptions++;
			subs_changed(s);
		}
		xmpp_send_presence(s, ct, who);
	} else if (strcmp(st->type, "unsubscribe") == 0) {
		if ((ct = hashmap_get(s->contacts, st->to)) != NULL &&
		    contact_del_sub(ct, who))
			subs_changed(s);
		xmpp_write_presence(&b, st->to, who, "unsubscribed", NULL,
		    NULL);
		xmpp_send(s, &b);
	} else if (strcmp(st->type, "probe") == 0) {
		/* A probe means the prober's server holds a subscription. */
		ct = contact_get(s, st->to);
		if (contact_add_sub(ct, who))
			subs_changed(s);
		xmpp_send_presence(s, ct, who);
	}
	buf_free(&b);
	free(who);
}

/* ---- publishing ---- */

static int
xmpp_publish(struct ewsgw_sink *s, const struct ewsgw_presence_change *c,
    uint64_t token)
{
	struct xmpp_contact	*ct;
	char			*jid;
	const char		*show = NULL, *act;

	if ((jid = addrmap_lookup(s->map, c->mailbox)) == NULL)
		return (EWSGW_SINK_OK);		/* mapped to "-" */
	if (!jid_in_domain(jid, s->domain)) {
		ewsgw_host_mlog(s->host, LOG_WARNING, c->mailbox, "JID %s is "
		    "outside the component domain %s", jid, s->domain);
		free(jid);
		return (EWSGW_SINK_REJECT);
	}
	if (s->state != XMPP_ONLINE ||
	    netconn_output_len(s->conn) > XMPP_OUTPUT_MAX) {
		/* Held by the engine until we are (back) online or the
		 * output drained: ewsgw_host_resume(). */
		s->waiting = true;
		free(jid);
		return (EWSGW_SINK_AGAIN);
	}
	ct = contact_get(s, jid);
	free(jid);
	if (ct->mailbox == NULL || strcmp(ct->mailbox, c->mailbox) != 0) {
		free(ct->mailbox);
		ct->mailbox = xstrdup(c->mailbox);
	}
	act = c->activity != NULL ? c->activity : "";
	if (strcmp(c->presence, "busy") == 0)
		show = "dnd";
	else if (strcmp(c->presence, "away") == 0)
		show = strcmp(act, "out-of-office") == 0 ? "xa" : "away";
	ct->known = true;
	ct->available = strcmp(c->presence, "unknown") != 0;
	ct->show = show;
	ct->status = ct->available ? sink_text_note(c) : NULL;
	xmpp_send_presence(s, ct, NULL);
	return (EWSGW_SINK_OK);
}

/*
 * A reload stopped watching the mailbox: its JID goes unavailable for
 * its subscribers, who stay subscribed (it may be watched again).
 */
static void
xmpp_forget(struct ewsgw_sink *s, const char *mailbox)
{
	struct xmpp_contact	*ct;
	char			*jid;

	if ((jid = addrmap_lookup(s->map, mailbox)) == NULL)
		return;
	ct = hashmap_get(s->contacts, jid);
	free(jid);
	if (ct == NULL || !ct->known)
		return;
	ct->known = ct->available = false;
	ct->show = ct->status = NULL;
	if (s->state == XMPP_ONLINE)
		xmpp_send_presence(s, ct, NULL);
}

/* ---- reload ---- */

/*
 * A reload changed the section: s, new and idle, takes over old's
 * contacts.  Subscribers of the JIDs of its domain (old's list is newer
 * than the file, which is written a second after a change); the last
 * presence of each mailbox, under the JID s maps it to, so probes are
 * answered as before; a JID that changed is announced to its
 * subscribers (the new one with the presence, the old one unavailable).
 * The stream goes over to s when it was up and opened with the same
 * settings (xmpp_stream_key); otherwise s connects on its own and
 * announces once it is up.
 */
static void
xmpp_takeover(struct ewsgw_sink *s, struct ewsgw_sink *old)
{
	struct hashmap_iter	 it;
	struct hashmap		*vacated;
	struct xmpp_contact	*ct;
	const char		*k;
	void			*v;
	bool			 same_domain, keep;
	size_t			 known = 0;

	same_domain = strcasecmp(s->domain, old->domain) == 0;
	vacated = hashmap_new_borrowing();
	hashmap_iter_init(&it, old->contacts);
	while (hashmap_iter_next(&it, &k, &v)) {
		ct = v;
		xmpp_take_contact(s, ct, same_domain, vacated);
		if (ct->known)
			known++;
	}
	/* An old JID no mailbox maps to any more goes unavailable. */
	hashmap_iter_init(&it, vacated);
	while (hashmap_iter_next(&it, &k, &v)) {
		if ((ct = hashmap_get(s->contacts, k)) != NULL &&
		    !ct->known && !ct->announce && ct->nsubs > 0) {
			ct->announce = true;
			s->announce++;
		}
	}
	hashmap_free(vacated, NULL);

	keep = old->state == XMPP_ONLINE &&
	    strcmp(s->stream_key, old->stream_key) == 0;
	ewsgw_host_log(s->host, LOG_NOTICE, "reload: presence of %zu JIDs "
	    "taken over, %zu to announce; %s", known, s->announce, keep ?
	    "keeping the stream" : old->state == XMPP_ONLINE ? "connecting "
	    "anew: connection settings changed" : "connecting");
	if (!keep)
		return;
	xmpp_close(s);		/* what create() started */
	s->conn = old->conn;
	old->conn = NULL;
	netconn_set_arg(s->conn, s);
	s->reader = old->reader;
	old->reader = NULL;
	xmpp_reader_set_arg(s->reader, s);
	s->addrs = old->addrs;
	s->naddrs = old->naddrs;
	s->addr = old->addr;
	old->addrs = NULL;
	old->naddrs = old->addr = 0;
	s->connects = old->connects;
	s->adopted = true;
	xmpp_set_state(s, XMPP_ONLINE);
}

/*
 * Take one of old's contacts (ct) into s: its subscribers when s speaks
 * for its domain, its presence under the JID s maps its mailbox to.
 * An old JID left behind goes into vacated (borrowing ct's JID).
 */
static void
xmpp_take_contact(struct ewsgw_sink *s, const struct xmpp_contact *ct,
    bool same_domain, struct hashmap *vacated)
{
	struct xmpp_contact	*nc;
	char			*jid;
	size_t			 i;
	bool			 added = false;

	if (same_domain) {
		nc = contact_get(s, ct->jid);
		for (i = 0; i < ct->nsubs; i++)
			if (contact_add_sub(nc, ct->subs[i]))
				added = true;
		if (added)
			subs_changed(s);
	}
	if (!ct->known || ct->mailbox == NULL)
		return;
	jid = addrmap_lookup(s->map, ct->mailbox);
	if (jid != NULL && !jid_in_domain(jid, s->domain)) {
		free(jid);
		jid = NULL;
	}
	if (same_domain && (jid == NULL || strcmp(jid, ct->jid) != 0))
		hashmap_put(vacated, ct->jid, (void *)ct);
	if (jid == NULL)
		return;
	nc = contact_get(s, jid);
	free(nc->mailbox);
	nc->mailbox = xstrdup(ct->mailbox);
	nc->known = true;
	nc->available = ct->available;
	nc->show = ct->show;
	nc->status = ct->status;
	if (strcmp(jid, ct->jid) != 0 || !same_domain) {
		if (!nc->announce)
			s->announce++;
		nc->announce = true;
	}
	free(jid);
}

/* Online: send what a reload changed to the subscribers. */
static void
xmpp_announce(struct ewsgw_sink *s)
{
	struct hashmap_iter	 it;
	struct xmpp_contact	*ct;
	const char		*k;
	void			*v;

	if (s->announce == 0)
		return;
	hashmap_iter_init(&it, s->contacts);
	while (hashmap_iter_next(&it, &k, &v)) {
		ct = v;
		if (!ct->announce)
			continue;
		ct->announce = false;
		xmpp_send_presence(s, ct, NULL);
	}
	s->announce = 0;
}

/* ---- the subscribers file ---- */

/* "OURJID SUBSCRIBER" per line, as subs_save_cb writes it. */
static void
subs_load(struct ewsgw_sink *s)
{
	FILE		*f;
	char		*line = NULL, *a, *b;
	size_t		 cap = 0;
	unsigned	 n = 0;

	if (s->subs_file == NULL)
		return;
	if ((f = fopen(s->subs_file, "re")) == NULL) {
		if (errno != ENOENT)
			ewsgw_host_log(s->host, LOG_WARNING, "%s: %s",
			    s->subs_file, strerror(errno));
		return;
	}
	while (getline(&line, &cap, f) != -1) {
		a = strtok(line, " \t\r\n");
		b = a != NULL ? strtok(NULL, " \t\r\n") : NULL;
		if (a == NULL || b == NULL || a[0] == '#' ||
		    !jid_in_domain(a, s->domain) || strlen(b) > XMPP_JID_MAX)
			continue;
		if (contact_add_sub(contact_get(s, a), b))
			n++;
	}
	free(line);
	fclose(f);
	ewsgw_host_log(s->host, LOG_INFO, "%u subscriptions from %s", n,
	    s->subs_file);
}

static void
subs_changed(struct ewsgw_sink *s)
{
	struct timeval	 tv = { XMPP_SAVE_DELAY / 1000,
			    (XMPP_SAVE_DELAY % 1000) * 1000 };

	if (s->subs_file != NULL && !evtimer_pending(&s->save_ev, NULL))
		evtimer_add(&s->save_ev, &tv);
}

/* Write the file anew and rename it over the old one. */
static void
subs_save_cb(evutil_socket_t fd, short what, void *arg)
{
	struct ewsgw_sink	*s = arg;
	struct hashmap_iter	 it;
	struct xmpp_contact	*ct;
	const char		*k;
	void			*v;
	char			*tmp;
	FILE			*f;
	size_t			 i;
	bool			 ok;

	xasprintf(&tmp, "%s.tmp", s->subs_file);
	if ((f = fopen(tmp, "we")) == NULL) {
		ewsgw_host_log(s->host, LOG_WARNING, "%s: %s", tmp,
		    strerror(errno));
		free(tmp);
		return;
	}
	fprintf(f, "# subscriptions approved by the xmpp sink %s\n",
	    ewsgw_host_name(s->host));
	hashmap_iter_init(&it, s->contacts);
	while (hashmap_iter_next(&it, &k, &v)) {
		ct = v;
		for (i = 0; i < ct->nsubs; i++)
			fprintf(f, "%s %s\n", ct->jid, ct->subs[i]);
	}
	ok = fflush(f) == 0 && fsync(fileno(f)) == 0;
	if (fclose(f) != 0)
		ok = false;
	if (!ok || rename(tmp, s->subs_file) == -1) {
		ewsgw_host_log(s->host, LOG_WARNING, "cannot write %s: %s",
		    s->subs_file, strerror(errno));
		unlink(tmp);
	}
	free(tmp);
}
