/*
 * ewsgw - Exchange calendar presence gateway
 * SPDX-License-Identifier: ISC
 *
 * Built-in sink "sip": each mailbox's presence PUBLISHed (RFC 3903,
 * Event: presence) as PIDF with RPID activities (sip_pidf.c) to its
 * presentity (addrmap.c), refreshed with SIP-If-Match before Expires
 * runs out and published afresh after 412 (the server lost the state,
 * e.g. it restarted); digest authentication on 401/407.  The transport
 * (UDP with RFC 3261 retransmissions, TCP, TLS; RFC 3263 location) is
 * sip_transport.c; messages are parsed by libosip2 (sip_msg.c).
 *
 * The engine (sinkset.c) owns ordering, retries and back-off of the
 * changes; refreshes are the sink's own, at most SIP_REFRESH_INFLIGHT
 * at a time and backed off on failure, so a dead server costs a few
 * timers, never the loop.
 *
 * A reload that changes the section hands the old instance's
 * presentities to the new one (sip_takeover): what was published stays
 * published and refreshed.  Publications the new instance cannot
 * continue (another presentity, server or identity) are removed by the
 * old instance, which the new one keeps, retiring, until that is done.
 */
#include "config.h"

#include <sys/queue.h>

#include <errno.h>
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
#include "base/timerheap.h"
#include "base/timeutil.h"
#include "base/xmalloc.h"
#include "io/dns.h"
#include "io/tls.h"
#include "sinks/addrmap.h"
#include "sinks/sinks.h"
#include "sinks/sinkset.h"
#include "sinks/sip_pidf.h"
#include "sinks/sip_transport.h"

#define SIP_EXPIRES_DEFAULT	3600		/* s */
#define SIP_EXPIRES_MIN		1		/* s */
#define SIP_CONNECT_TIMEOUT	10000		/* ms */
#define SIP_REFRESH_INFLIGHT	64		/* refreshes at once */
#define SIP_REFRESH_RETRY_MIN	1000		/* ms */
#define SIP_REFRESH_RETRY_MAX	(5 * 60 * 1000)	/* ms */
#define SIP_AUTH_TRIES		2		/* answers per request */
#define SIP_LOG_EVERY		1000		/* failures per warning */
#define SIP_USER_AGENT		"ewsgw/" PACKAGE_VERSION

enum sip_op {
	SIP_OP_NONE,
	SIP_OP_PUBLISH,		/* body, If-Match when an etag is held */
	SIP_OP_REFRESH,		/* If-Match, no body */
	SIP_OP_REMOVE		/* If-Match, Expires: 0 */
};

/*
 * What a presentity shows, kept small (the document is written when it
 * is sent): presence NULL means nothing, the publication is removed.
 */
struct sip_state {
	char			*presence;
	char			*activity;
	int64_t			 since;
	int64_t			 until;
};

/* One presentity: what was published, its entity tag, its refresh. */
struct sip_pres {
	struct ewsgw_sink	*s;
	char			*mailbox;
	char			*uri;
	struct sip_state	 cur;		/* in force or being sent */
	char			*etag;		/* or NULL: none held */
	int64_t			 expires_at;	/* mono ms the etag lapses */
	struct timerheap_entry	 refresh;

	struct sip_transport	*t;		/* borrowed from s */
	struct sip_tx		*tx;		/* in flight, or NULL */
	enum sip_op		 op;
	bool			 engine;	/* tx answers token */
	uint64_t		 token;
	unsigned		 auth_tries;
	bool			 retried;	/* after 412 or 423 */
	bool			 forgotten;	/* remove, then free */

	/* a change that came while a refresh was in flight */
	bool			 queued;
	uint64_t		 queued_token;
	struct sip_state	 next;

	char			 call_id[33];
	char			 from_tag[17];
	uint32_t		 cseq;
};

LIST_HEAD(sip_sinks, ewsgw_sink);

struct ewsgw_sink {
	struct ewsgw_host	*host;
	struct event_base	*base;
	struct addrmap		*map;
	char			*route;		/* where and as whom, see
						 * sip_route */
	char			*from;		/* From URI, or NULL */
	char			*tls_name;	/* or NULL */
	int64_t			 expires;	/* s, requested */
	char			*username;
	char			*password_file;
	char			*password;	/* secret */

	struct dns_resolver	*dns;
	SSL_CTX			*ssl_ctx;
	struct sip_transport_opts topts;	/* template */
	struct sip_transport	*server;	/* [server] set, or NULL */
	struct hashmap		*by_domain;	/* domain -> transport */

	struct hashmap		*pres;		/* mailbox -> sip_pres */
	struct timerheap	 heap;		/* refreshes */
	struct event		 heap_ev;
	unsigned		 refreshing;
	struct backoff		 refresh_backoff;
	struct backoff_rng	 rng;

	struct sip_challenge	 chal;		/* the last one, reused */
	bool			 has_chal;
	uint32_t		 nc;

	/* health */
	uint64_t		 published;
	uint64_t		 refreshed;
	uint64_t		 republished;	/* after 412 */
	uint64_t		 answered401;	/* challenges answered */
	uint64_t		 answered407;
	uint64_t		 auth_failures;
	uint64_t		 failures;
	uint64_t		 streak;	/* failures since a success */
	int			 last_status;
	char			 last_error[200];

	/*
	 * Retiring instances, replaced by a reload, that still remove
	 * publications this one could not take over.  owner: the
	 * instance a retiring one belongs to (NULL while in service).
	 */
	struct sip_sinks	 retiring;
	struct ewsgw_sink	*owner;
	LIST_ENTRY(ewsgw_sink)	 retire_entry;
	struct event		 retired_ev;	/* the last removal ended */
	uint64_t		 took_etag;	/* at a reload: kept */
	uint64_t		 took_afresh;	/* published anew */
	uint64_t		 took_removed;	/* left to remove */
};

struct sip_settings {
	const char	*presentity;
	const char	*mapping_file;
	const char	*server;
	const char	*from;
	const char	*username;
	const char	*password_file;
	const char	*dns_servers;
	const char	*ca_file;
	const char	*client_cert;
	const char	*client_key;
	const char	*tls_name;
	enum sip_proto	 proto;
	int		 srv;
	int		 tls_verify;
	int64_t		 expires;	/* ms as parsed */
	int64_t		 t1;
	int64_t		 t2;
	int64_t		 connect_timeout;
	char		 host[256];	/* of server */
	uint16_t	 port;
	bool		 secure;
};

static int	 sip_settings(const struct ewsgw_sink_config *,
		    struct sip_settings *);
static int	 sip_check(const struct ewsgw_sink_config *);
static int	 sip_create(struct ewsgw_host *,
		    const struct ewsgw_sink_config *, struct ewsgw_sink **);
static int	 sip_publish(struct ewsgw_sink *,
		    const struct ewsgw_presence_change *, uint64_t);
static int	 sip_health(struct ewsgw_sink *, char *, size_t);
static void	 sip_destroy(struct ewsgw_sink *);
static void	 sip_free(struct ewsgw_sink *);
static void	 sip_reopen(struct ewsgw_sink *);
static void	 sip_forget(struct ewsgw_sink *, const char *);
static void	 sip_takeover(struct ewsgw_sink *, struct ewsgw_sink *);
static char	*sip_route(const struct sip_settings *);
static void	 sip_retire(struct ewsgw_sink *, struct ewsgw_sink *);
static void	 sip_retired_cb(evutil_socket_t, short, void *);
static bool	 pres_take(struct ewsgw_sink *, struct sip_pres *, bool);
static struct sip_transport *sip_transport_for(struct ewsgw_sink *,
		    const char *);
static struct sip_pres *pres_get(struct ewsgw_sink *, const char *,
		    const char *);
static void	 pres_free(void *);
static void	 state_set(struct sip_state *,
		    const struct ewsgw_presence_change *);
static void	 state_clear(struct sip_state *);
static void	 pres_start(struct sip_pres *, enum sip_op);
static void	 pres_forgotten(struct sip_pres *);
static void	 pres_drop(struct sip_pres *);
static void	 pres_build(struct buf *, const char *, const char *,
		    const char *, void *);
static void	 pres_done(const struct sip_response *, const char *, void *);
static void	 pres_finish(struct sip_pres *, int, const char *);
static void	 pres_schedule(struct sip_pres *, int64_t);
static void	 heap_arm(struct ewsgw_sink *);
static void	 heap_cb(evutil_socket_t, short, void *);
static void	 heap_fire(struct timerheap_entry *, void *);

const struct ewsgw_sink_ops sink_sip_ops = {
	.abi_version = EWSGW_SINK_ABI_VERSION,
	.size = sizeof(struct ewsgw_sink_ops),
	.name = "sip",
	.check = sip_check,
	.create = sip_create,
	.publish = sip_publish,
	.health = sip_health,
	.destroy = sip_destroy,
	.reopen = sip_reopen,
	.forget = sip_forget,
	.takeover = sip_takeover,
};

/* ---- configuration ---- */

static int
sip_settings(const struct ewsgw_sink_config *c, struct sip_settings *ss)
{
	const char	*v;
	char		*cause = NULL, transport[8];
	int		 rc = 0;
	bool		 tls;

	memset(ss, 0, sizeof *ss);
	ss->proto = SIP_PROTO_ANY;
	ss->presentity = ewsgw_sink_config_get(c, "presentity");
	if (ss->presentity == NULL) {
		ewsgw_sink_config_error(c, NULL, "missing required key "
		    "presentity (e.g. sip:%%l@example.com)");
		rc = -1;
	} else if (strncasecmp(ss->presentity, "sip:", 4) != 0 &&
	    strncasecmp(ss->presentity, "sips:", 5) != 0) {
		ewsgw_sink_config_error(c, "presentity",
		    "presentity must be a sip: or sips: URI pattern");
		rc = -1;
	}
	if (addrmap_config(c, "presentity", rc == 0 ? ss->presentity : NULL,
	    ADDRMAP_SIP, &ss->mapping_file) == -1)
		rc = -1;
	if ((v = ewsgw_sink_config_get(c, "transport")) != NULL) {
		if (strcasecmp(v, "udp") == 0)
			ss->proto = SIP_PROTO_UDP;
		else if (strcasecmp(v, "tcp") == 0)
			ss->proto = SIP_PROTO_TCP;
		else if (strcasecmp(v, "tls") == 0)
			ss->proto = SIP_PROTO_TLS;
		else {
			ewsgw_sink_config_error(c, "transport",
			    "transport must be udp, tcp or tls, not '%s'", v);
			rc = -1;
		}
	}
	ss->server = ewsgw_sink_config_get(c, "server");
	if (ss->server != NULL) {
		char *uri = NULL;

		if (strncasecmp(ss->server, "sip:", 4) != 0 &&
		    strncasecmp(ss->server, "sips:", 5) != 0)
			xasprintf(&uri, "sip:%s", ss->server);
		if (sip_uri_target(uri != NULL ? uri : ss->server, ss->host,
		    sizeof ss->host, &ss->port, &tls, transport,
		    sizeof transport) == -1) {
			ewsgw_sink_config_error(c, "server", "server must be "
			    "HOST[:PORT] or a sip:/sips: URI, not '%s'",
			    ss->server);
			rc = -1;
		} else {
			ss->secure = tls;
			if (ss->proto == SIP_PROTO_ANY && transport[0] != '\0')
				ss->proto = strcmp(transport, "tcp") == 0 ?
				    SIP_PROTO_TCP : strcmp(transport, "tls") ==
				    0 ? SIP_PROTO_TLS : SIP_PROTO_UDP;
		}
		free(uri);
	}
	if (ss->secure && ss->proto != SIP_PROTO_ANY &&
	    ss->proto != SIP_PROTO_TLS) {
		ewsgw_sink_config_error(c, "transport",
		    "a sips: server needs transport tls");
		rc = -1;
	}
	ss->from = ewsgw_sink_config_get(c, "from");
	if (ss->from != NULL && strncasecmp(ss->from, "sip:", 4) != 0 &&
	    strncasecmp(ss->from, "sips:", 5) != 0) {
		ewsgw_sink_config_error(c, "from", "from must be a SIP URI");
		rc = -1;
	}
	ss->username = ewsgw_sink_config_get(c, "username");
	ss->password_file = ewsgw_sink_config_get(c, "password_file");
	if ((ss->username == NULL) != (ss->password_file == NULL)) {
		ewsgw_sink_config_error(c, ss->username != NULL ?
		    "username" : "password_file",
		    "username and password_file go together");
		rc = -1;
	} else if (ss->password_file != NULL && sink_check_secret_file(c,
	    "password_file", ss->password_file) == -1)
		rc = -1;
	ss->dns_servers = ewsgw_sink_config_get(c, "dns_servers");
	ss->ca_file = ewsgw_sink_config_get(c, "ca_file");
	ss->client_cert = ewsgw_sink_config_get(c, "client_cert");
	ss->client_key = ewsgw_sink_config_get(c, "client_key");
	ss->tls_name = ewsgw_sink_config_get(c, "tls_name");
	if (sink_config_bool(c, "tls_verify", 1, &ss->tls_verify) == -1 ||
	    sink_config_bool(c, "srv_lookup", 1, &ss->srv) == -1)
		rc = -1;
	{
		struct tls_client_opts	 to = { ss->ca_file, ss->client_cert,
		    ss->client_key, true };

		if (tls_client_check(&to, &cause) == -1) {
			ewsgw_sink_config_error(c, NULL, "%s", cause);
			free(cause);
			rc = -1;
		}
	}
	if (sink_config_duration(c, "expires", SIP_EXPIRES_DEFAULT * 1000,
	    1000, &ss->expires) == -1)
		rc = -1;
	else if (ss->expires < SIP_EXPIRES_MIN * 1000 ||
	    ss->expires > (int64_t)UINT32_MAX * 1000) {
		ewsgw_sink_config_error(c, "expires",
		    "expires must be from 1s to 136 years");
		rc = -1;
	}
	if (sink_config_duration(c, "t1", SIP_T1_DEFAULT, 1, &ss->t1) == -1 ||
	    sink_config_duration(c, "t2", SIP_T2_DEFAULT, 1, &ss->t2) == -1 ||
	    sink_config_duration(c, "connect_timeout", SIP_CONNECT_TIMEOUT,
	    1000, &ss->connect_timeout) == -1)
		rc = -1;
	else if (ss->t1 < 10 || ss->t2 < ss->t1 || ss->connect_timeout < 1) {
		ewsgw_sink_config_error(c, "t1", "need 10ms <= t1 <= t2 and a "
		    "positive connect_timeout");
		rc = -1;
	}
	return (rc);
}

static int
sip_check(const struct ewsgw_sink_config *c)
{
	struct sip_settings	 ss;

	return (sip_settings(c, &ss));
}

/*
 * Where the requests go and as whom, as one string (allocated): two
 * instances with the same route reach the same server with the same
 * identity, so an entity tag one got is good for the other.  Values
 * cannot hold a newline, so the fields cannot run into each other.
 * The TLS trust settings, timers, expires and the password are not
 * part of it: they change how, not where or as whom.
 */
static char *
sip_route(const struct sip_settings *ss)
{
	char	*r;

	xasprintf(&r, "%s\n%u\n%d\n%d\n%d\n%s\n%s\n%s",
	    ss->server != NULL ? ss->host : "", (unsigned)ss->port,
	    ss->secure, (int)ss->proto, ss->srv,
	    ss->dns_servers != NULL ? ss->dns_servers : "",
	    ss->from != NULL ? ss->from : "",
	    ss->username != NULL ? ss->username : "");
	return (r);
}

static int
sip_create(struct ewsgw_host *host, const struct ewsgw_sink_config *c,
    struct ewsgw_sink **out)
{
	struct sip_settings	 ss;
	struct ewsgw_sink	*s;
	struct tls_client_opts	 to;
	char			*cause = NULL;

	if (sip_settings(c, &ss) == -1)
		return (-1);
	s = xcalloc(1, sizeof *s);
	s->host = host;
	s->base = ewsgw_host_event_base(host);
	s->pres = hashmap_new();
	s->by_domain = hashmap_new();
	timerheap_init(&s->heap);
	evtimer_assign(&s->heap_ev, s->base, heap_cb, s);
	LIST_INIT(&s->retiring);
	evtimer_assign(&s->retired_ev, s->base, sip_retired_cb, s);
	s->route = sip_route(&ss);
	backoff_init(&s->refresh_backoff, SIP_REFRESH_RETRY_MIN,
	    SIP_REFRESH_RETRY_MAX, BACKOFF_DECORRELATED);
	backoff_rng_seed(&s->rng, (uint64_t)time_wall_ms() ^
	    (uint64_t)(uintptr_t)s);
	s->from = ss.from != NULL ? xstrdup(ss.from) : NULL;
	s->expires = ss.expires / 1000;
	if ((s->map = addrmap_new(ss.presentity, ADDRMAP_SIP, ss.mapping_file,
	    &cause)) == NULL) {
		ewsgw_sink_config_error(c, "mapping_file", "%s", cause);
		goto fail;
	}
	if (ss.username != NULL) {
		s->username = xstrdup(ss.username);
		s->password_file = xstrdup(ss.password_file);
		if ((s->password = sink_read_secret(ss.password_file,
		    &cause)) == NULL) {
			ewsgw_sink_config_error(c, "password_file", "%s",
			    cause);
			goto fail;
		}
	}
	if ((s->dns = dns_resolver_new(s->base, ss.dns_servers, 2000, 2,
	    &cause)) == NULL) {
		ewsgw_sink_config_error(c, "dns_servers", "%s", cause);
		goto fail;
	}
	memset(&to, 0, sizeof to);
	to.ca_file = ss.ca_file;
	to.client_cert = ss.client_cert;
	to.client_key = ss.client_key;
	to.verify = ss.tls_verify != 0;
	if ((s->ssl_ctx = tls_client_ctx_new(&to, &cause)) == NULL) {
		ewsgw_sink_config_error(c, "ca_file", "%s", cause);
		goto fail;
	}
	s->topts.ssl_ctx = s->ssl_ctx;
	s->topts.t1 = ss.t1;
	s->topts.t2 = ss.t2;
	s->topts.connect_timeout = ss.connect_timeout;
	s->tls_name = ss.tls_name != NULL ? xstrdup(ss.tls_name) : NULL;
	s->topts.tls_name = s->tls_name;
	s->topts.target.proto = ss.proto;
	s->topts.target.srv = ss.srv != 0;
	if (ss.server != NULL) {
		s->topts.target.host = ss.host;
		s->topts.target.port = ss.port;
		s->topts.target.secure = ss.secure;
		s->server = sip_transport_new(s->base, s->dns, &s->topts);
	}
	s->topts.target.host = NULL;
	*out = s;
	return (0);
fail:
	free(cause);
	sip_free(s);
	return (-1);
}

/*
 * The host is done with s.  A retiring instance (taken over by a
 * reload) belongs to its owner from then on, which frees it.
 */
static void
sip_destroy(struct ewsgw_sink *s)
{
	if (s->owner == NULL)
		sip_free(s);
}

static void
sip_free(struct ewsgw_sink *s)
{
	struct ewsgw_sink	*r;
	struct hashmap_iter	 it;
	const char		*k;
	void			*v;

	while ((r = LIST_FIRST(&s->retiring)) != NULL) {
		LIST_REMOVE(r, retire_entry);
		sip_free(r);
	}
	evtimer_del(&s->retired_ev);
	/* Transports first: they cancel the transactions silently. */
	sip_transport_free(s->server);
	hashmap_iter_init(&it, s->by_domain);
	while (hashmap_iter_next(&it, &k, &v))
		sip_transport_free(v);
	hashmap_free(s->by_domain, NULL);
	hashmap_free(s->pres, pres_free);
	evtimer_del(&s->heap_ev);
	timerheap_free(&s->heap);
	dns_resolver_free(s->dns);
	if (s->ssl_ctx != NULL)
		SSL_CTX_free(s->ssl_ctx);
	addrmap_free(s->map);
	sip_challenge_clear(&s->chal);
	xfree_secret(s->password);
	free(s->password_file);
	free(s->username);
	free(s->from);
	free(s->route);
	free(s->tls_name);
	free(s);
}

/* SIGHUP: read the mapping file and the password again. */
static void
sip_reopen(struct ewsgw_sink *s)
{
	char	*pw, *cause = NULL;

	addrmap_reopen(s->map, s->host);
	if (s->password_file == NULL)
		return;
	if ((pw = sink_read_secret(s->password_file, &cause)) == NULL) {
		ewsgw_host_log(s->host, LOG_WARNING, "keeping the old "
		    "password: %s", cause);
		free(cause);
		return;
	}
	xfree_secret(s->password);
	s->password = pw;
}

static int
sip_health(struct ewsgw_sink *s, char *detail, size_t len)
{
	struct hashmap_iter	 it;
	const char		*k;
	void			*v;
	char			 st[200] = "no server contacted yet";
	char			 one[200];
	bool			 ok = true;

	if (s->server != NULL)
		ok = sip_transport_status(s->server, st, sizeof st);
	hashmap_iter_init(&it, s->by_domain);
	while (hashmap_iter_next(&it, &k, &v)) {
		/* The first failing transport's story, else the last's. */
		if (!sip_transport_status(v, one, sizeof one)) {
			if (ok)
				snprintf(st, sizeof st, "%s", one);
			ok = false;
		} else if (ok)
			snprintf(st, sizeof st, "%s", one);
	}
	if (s->streak > 0 && ok)
		snprintf(st, sizeof st, "%s", s->last_error);
	/* The counts first: a long story is what the buffer cuts. */
	snprintf(detail, len, "%zu presentities, %llu published, "
	    "%llu refreshed, %llu re-published after 412, %llu 401 "
	    "challenges answered, %llu 407 challenges answered, %llu auth "
	    "failures, last status %d; %s", hashmap_count(s->pres),
	    (unsigned long long)s->published,
	    (unsigned long long)s->refreshed,
	    (unsigned long long)s->republished,
	    (unsigned long long)s->answered401,
	    (unsigned long long)s->answered407,
	    (unsigned long long)s->auth_failures, s->last_status, st);
	return (ok ? 1 : 0);
}

/* ---- transports ---- */

/* The transport for a presentity: [server], or one per domain. */
static struct sip_transport *
sip_transport_for(struct ewsgw_sink *s, const char *uri)
{
	struct sip_transport_opts	 o;
	struct sip_transport		*t;
	char				 host[256], transport[8];
	uint16_t			 port;
	bool				 tls;

	if (s->server != NULL)
		return (s->server);
	if (sip_uri_target(uri, host, sizeof host, &port, &tls, transport,
	    sizeof transport) == -1)
		return (NULL);
	if ((t = hashmap_get(s->by_domain, host)) != NULL)
		return (t);
	o = s->topts;
	o.target.host = host;
	o.target.port = port;
	o.target.secure = tls;
	if (o.target.proto == SIP_PROTO_ANY && transport[0] != '\0')
		o.target.proto = strcmp(transport, "tcp") == 0 ?
		    SIP_PROTO_TCP : strcmp(transport, "tls") == 0 ?
		    SIP_PROTO_TLS : SIP_PROTO_UDP;
	t = sip_transport_new(s->base, s->dns, &o);
	hashmap_put(s->by_domain, host, t);
	return (t);
}

/* ---- presentities ---- */

static struct sip_pres *
pres_get(struct ewsgw_sink *s, const char *mailbox, const char *uri)
{
	struct sip_pres	*p;

	if ((p = hashmap_get(s->pres, mailbox)) != NULL) {
		if (strcmp(p->uri, uri) != 0 && p->tx == NULL) {
			/* Remapped: a new presentity, a fresh start. */
			free(p->uri);
			p->uri = xstrdup(uri);
			free(p->etag);
			p->etag = NULL;
			p->t = NULL;
			sip_token(p->call_id, 16);
		}
		return (p);
	}
	p = xcalloc(1, sizeof *p);
	p->s = s;
	p->mailbox = xstrdup(mailbox);
	p->uri = xstrdup(uri);
	timerheap_entry_init(&p->refresh);
	sip_token(p->call_id, 16);
	sip_token(p->from_tag, 8);
	hashmap_put(s->pres, mailbox, p);
	return (p);
}

static void
pres_free(void *arg)
{
	struct sip_pres	*p = arg;

	/* The transports are gone already: p->tx was cancelled. */
	timerheap_remove(&p->s->heap, &p->refresh);
	free(p->mailbox);
	free(p->uri);
	state_clear(&p->cur);
	state_clear(&p->next);
	free(p->etag);
	free(p);
}

/* st takes c's state; "unknown" is none. */
static void
state_set(struct sip_state *st, const struct ewsgw_presence_change *c)
{
	state_clear(st);
	if (!sip_pidf_publishes(c))
		return;
	st->presence = xstrdup(c->presence);
	st->activity = c->activity != NULL ? xstrdup(c->activity) : NULL;
	st->since = c->since;
	st->until = c->until;
}

static void
state_clear(struct sip_state *st)
{
	free(st->presence);
	free(st->activity);
	memset(st, 0, sizeof *st);
}

static int
sip_publish(struct ewsgw_sink *s, const struct ewsgw_presence_change *c,
    uint64_t token)
{
	struct sip_pres	*p;
	char		*uri;

	if ((uri = addrmap_lookup(s->map, c->mailbox)) == NULL)
		return (EWSGW_SINK_OK);		/* mapped to "-" */
	p = pres_get(s, c->mailbox, uri);
	if (p->t == NULL && (p->t = sip_transport_for(s, p->uri)) == NULL) {
		ewsgw_host_mlog(s->host, LOG_WARNING, c->mailbox,
		    "presentity %s is not a SIP URI", uri);
		free(uri);
		return (EWSGW_SINK_REJECT);
	}
	free(uri);
	p->forgotten = false;		/* watched again */
	if (p->tx != NULL) {
		/* A refresh is on the wire: this change goes next. */
		state_set(&p->next, c);
		p->queued = true;
		p->queued_token = token;
		return (EWSGW_SINK_PENDING);
	}
	state_set(&p->cur, c);
	if (p->cur.presence == NULL && p->etag == NULL)
		return (EWSGW_SINK_OK);	/* nothing published to take back */
	p->engine = true;
	p->token = token;
	pres_start(p, p->cur.presence != NULL ? SIP_OP_PUBLISH :
	    SIP_OP_REMOVE);
	return (EWSGW_SINK_PENDING);
}

/*
 * A reload stopped watching the mailbox: take its publication back, so
 * watchers do not see a state nobody updates, and forget it.
 */
static void
sip_forget(struct ewsgw_sink *s, const char *mailbox)
{
	struct sip_pres	*p;

	if ((p = hashmap_get(s->pres, mailbox)) == NULL)
		return;
	state_clear(&p->cur);
	timerheap_remove(&s->heap, &p->refresh);
	p->forgotten = true;
	if (p->tx != NULL)
		return;		/* a refresh: pres_finish goes on */
	pres_forgotten(p);
}

/*
 * A reload changed the section: s, new and idle, takes over old's
 * presentities, keyed by mailbox.  What old had published stays
 * published: under the same presentity URI and route (sip_route) s
 * keeps the entity tag and the refresh time, so refreshing goes on and
 * the next change is a conditional PUBLISH; under another URI or route
 * s publishes the last state afresh at once (paced like refreshes) and
 * old removes its publication.  What old had not published yet, or was
 * sending for the engine, the engine hands to s again.
 */
static void
sip_takeover(struct ewsgw_sink *s, struct ewsgw_sink *old)
{
	struct hashmap_iter	 it;
	struct ewsgw_sink	*r;
	struct sip_pres		*p;
	const char		*k;
	void			*v;
	bool			 same = strcmp(s->route, old->route) == 0;

	/* Removals left by earlier reloads go on, for s now. */
	while ((r = LIST_FIRST(&old->retiring)) != NULL) {
		LIST_REMOVE(r, retire_entry);
		sip_retire(s, r);
	}
	hashmap_iter_init(&it, old->pres);
	while (hashmap_iter_next(&it, &k, &v)) {
		p = v;
		if (p->forgotten)
			continue;	/* old goes on removing it */
		if (!pres_take(s, p, same)) {
			hashmap_iter_remove(&it);
			pres_free(p);
		}
	}
	ewsgw_host_log(s->host, LOG_NOTICE, "reload: %llu publications "
	    "kept with their entity tags, %llu published afresh, %llu to "
	    "remove", (unsigned long long)s->took_etag,
	    (unsigned long long)s->took_afresh,
	    (unsigned long long)s->took_removed);
	heap_arm(s);
	if (hashmap_count(old->pres) > 0) {
		sip_retire(s, old);
		heap_arm(old);
	}
}

/*
 * Take p's publication over from its instance into s, keeping the entity
 * tag when same is set and the URI did not change.  Returns whether p
 * stays with its instance, to be removed there.
 */
static bool
pres_take(struct ewsgw_sink *s, struct sip_pres *p, bool same)
{
	struct sip_pres	*np = NULL;
	char		*uri = NULL;
	int64_t		 now = time_mono_ms(), due = -1, at = -1;
	bool		 live, kept, upkept, refreshing = false;

	if (p->tx != NULL) {
		/* Its change comes again from the engine; a refresh goes
		 * on in s at once. */
		refreshing = !p->engine;
		if (refreshing)
			p->s->refreshing--;
		sip_tx_cancel(p->tx);
		p->tx = NULL;
		p->engine = false;
	}
	p->queued = false;	/* that change comes again too */
	state_clear(&p->next);
	if (timerheap_scheduled(&p->refresh)) {
		due = p->refresh.deadline;
		timerheap_remove(&p->s->heap, &p->refresh);
	}
	/* live: the server holds it; upkept: the sink keeps it there. */
	live = p->etag != NULL && now < p->expires_at;
	upkept = p->cur.presence != NULL && (live || refreshing || due >= 0);
	if (live || upkept)
		uri = addrmap_lookup(s->map, p->mailbox);
	kept = live && uri != NULL && same && strcmp(uri, p->uri) == 0;
	if (uri != NULL && (kept || upkept)) {
		np = pres_get(s, p->mailbox, uri);
		if ((np->t = sip_transport_for(s, uri)) == NULL) {
			hashmap_remove(s->pres, p->mailbox);
			pres_free(np);
			np = NULL;
			kept = false;
		} else {
			np->cur = p->cur;
			memset(&p->cur, 0, sizeof p->cur);
		}
	}
	free(uri);
	if (np != NULL && kept) {
		np->etag = p->etag;
		p->etag = NULL;
		np->expires_at = p->expires_at;
		memcpy(np->call_id, p->call_id, sizeof np->call_id);
		memcpy(np->from_tag, p->from_tag, sizeof np->from_tag);
		np->cseq = p->cseq;
		at = refreshing ? now : due;
		s->took_etag++;
	} else if (np != NULL && upkept) {
		at = now;	/* published afresh */
		s->took_afresh++;
	}
	if (at >= 0 && np->cur.presence != NULL)
		timerheap_set(&s->heap, &np->refresh, at);
	if (!live || kept)
		return (false);
	/* Not continued by s: remove it, paced like refreshes. */
	state_clear(&p->cur);
	p->forgotten = true;
	timerheap_set(&p->s->heap, &p->refresh, now);
	s->took_removed++;
	return (true);
}

/* r, replaced by a reload, goes on removing publications for s. */
static void
sip_retire(struct ewsgw_sink *s, struct ewsgw_sink *r)
{
	r->owner = s;
	r->host = s->host;	/* r's own handle goes with destroy() */
	LIST_INSERT_HEAD(&s->retiring, r, retire_entry);
}

/* A retiring instance removed its last publication: free it. */
static void
sip_retired_cb(evutil_socket_t fd, short what, void *arg)
{
	struct ewsgw_sink	*r = arg;

	if (r->owner == NULL || hashmap_count(r->pres) > 0)
		return;
	LIST_REMOVE(r, retire_entry);
	sip_free(r);
}

/* p is forgotten and idle: remove its publication, or free it. */
static void
pres_forgotten(struct sip_pres *p)
{
	struct ewsgw_sink	*s = p->s;

	/* A lapsed entity tag has nothing left to remove. */
	if (p->etag != NULL && p->t != NULL &&
	    time_mono_ms() < p->expires_at) {
		s->refreshing++;	/* the sink's own, like a refresh */
		p->engine = false;
		pres_start(p, SIP_OP_REMOVE);
		return;
	}
	pres_drop(p);
}

/* Free p, which is idle.  A retiring instance goes with its last. */
static void
pres_drop(struct sip_pres *p)
{
	struct ewsgw_sink	*s = p->s;
	struct timeval		 now = { 0, 0 };

	hashmap_remove(s->pres, p->mailbox);
	pres_free(p);
	/* Not from here: this may run in a callback of its transport. */
	if (s->owner != NULL && hashmap_count(s->pres) == 0)
		evtimer_add(&s->retired_ev, &now);
}

/* Send op for p; the result arrives in pres_done. */
static void
pres_start(struct sip_pres *p, enum sip_op op)
{
	/* An entity tag past its expiry is unknown to the server. */
	if (p->etag != NULL && time_mono_ms() >= p->expires_at) {
		free(p->etag);
		p->etag = NULL;
	}
	if (op == SIP_OP_REFRESH && p->etag == NULL)
		op = SIP_OP_PUBLISH;
	p->op = op;
	timerheap_remove(&p->s->heap, &p->refresh);
	p->tx = sip_tx_start(p->t, pres_build, pres_done, p);
}

static void
pres_build(struct buf *out, const char *via_proto, const char *via_host,
    const char *branch, void *arg)
{
	struct sip_pres		*p = arg;
	struct ewsgw_sink	*s = p->s;
	struct sip_publish		 m;
	struct ewsgw_presence_change	 c;
	struct buf			 auth = BUF_INIT, body = BUF_INIT;
	char				 cnonce[17], *cause = NULL;

	memset(&m, 0, sizeof m);
	m.uri = p->uri;
	m.from = s->from != NULL ? s->from : p->uri;
	m.from_tag = p->from_tag;
	m.call_id = p->call_id;
	m.cseq = ++p->cseq;
	m.transport = via_proto;
	m.via_host = via_host;
	m.branch = branch;
	m.expires = p->op == SIP_OP_REMOVE ? 0 : s->expires;
	m.if_match = p->op == SIP_OP_PUBLISH && p->etag == NULL ? NULL :
	    p->etag;
	m.user_agent = SIP_USER_AGENT;
	if (p->op == SIP_OP_PUBLISH) {
		memset(&c, 0, sizeof c);
		c.size = sizeof c;
		c.mailbox = p->mailbox;
		c.presence = p->cur.presence;
		c.activity = p->cur.activity;
		c.since = p->cur.since;
		c.until = p->cur.until;
		sip_pidf_write(&body, p->uri, &c);
		m.body = body.data;
		m.body_len = body.len;
	}
	if (s->has_chal && s->password != NULL) {
		sip_token(cnonce, 8);
		if (sip_digest_answer(&auth, &s->chal, s->username,
		    s->password, "PUBLISH", p->uri, ++s->nc, cnonce,
		    &cause) == 0) {
			m.authorization = buf_str(&auth);
			m.proxy_auth = s->chal.proxy;
		} else {
			snprintf(s->last_error, sizeof s->last_error, "%s",
			    cause);
			free(cause);
		}
	}
	sip_publish_write(out, &m);
	buf_free(&auth);
	buf_free(&body);
}

static void
pres_done(const struct sip_response *r, const char *why, void *arg)
{
	struct sip_pres		*p = arg;
	struct ewsgw_sink	*s = p->s;
	enum sip_op		 op = p->op;
	char			 msg[240];
	int64_t			 granted;

	p->tx = NULL;
	if (r == NULL) {
		pres_finish(p, EWSGW_SINK_ERR, why);
		return;
	}
	s->last_status = r->status;
	if (r->status >= 200 && r->status < 300) {
		backoff_reset(&s->refresh_backoff);
		if (op == SIP_OP_REMOVE) {
			free(p->etag);
			p->etag = NULL;
			pres_finish(p, EWSGW_SINK_OK, NULL);
			return;
		}
		if (r->etag != NULL) {
			free(p->etag);
			p->etag = xstrdup(r->etag);
		}
		granted = r->expires > 0 ? r->expires : s->expires;
		p->expires_at = time_mono_ms() + granted * 1000;
		if (op == SIP_OP_REFRESH)
			s->refreshed++;
		else
			s->published++;
		/* Refresh at about 80 % of the granted time, spread. */
		pres_schedule(p, granted * 1000 * 8 / 10 - backoff_rng_range(
		    &s->rng, 0, granted * 1000 / 10));
		pres_finish(p, EWSGW_SINK_OK, NULL);
		return;
	}
	if ((r->status == 401 || r->status == 407) && r->has_challenge &&
	    s->password != NULL && p->auth_tries < SIP_AUTH_TRIES) {
		/* A first challenge, or a fresh nonce (stale): answer. */
		p->auth_tries++;
		if (r->status == 401)
			s->answered401++;
		else
			s->answered407++;
		sip_challenge_copy(&s->chal, &r->challenge);
		s->has_chal = true;
		s->nc = 0;
		pres_start(p, op);
		return;
	}
	if (r->status == 412 && op != SIP_OP_REMOVE && !p->retried &&
	    p->cur.presence != NULL) {
		/* RFC 3903 4.4: the entity tag is unknown (expired, or
		 * the server lost its state): publish afresh. */
		p->retried = true;
		free(p->etag);
		p->etag = NULL;
		s->republished++;
		pres_start(p, SIP_OP_PUBLISH);
		return;
	}
	if (r->status == 412 && op == SIP_OP_REMOVE) {
		free(p->etag);
		p->etag = NULL;
		pres_finish(p, EWSGW_SINK_OK, NULL);
		return;
	}
	if (r->status == 423 && r->min_expires > s->expires && !p->retried) {
		p->retried = true;
		s->expires = r->min_expires;
		pres_start(p, op);
		return;
	}
	if (r->status == 401 || r->status == 407)
		s->auth_failures++;
	snprintf(msg, sizeof msg, "PUBLISH %s: %d %s%s", p->uri, r->status,
	    r->reason, (r->status == 401 || r->status == 407) ?
	    (s->password == NULL ? " (no username/password_file set)" :
	    " (credentials refused)") : "");
	/* A request the server will never take as it is. */
	pres_finish(p, r->status == 400 || r->status == 404 ||
	    r->status == 415 || r->status == 489 ? EWSGW_SINK_REJECT :
	    EWSGW_SINK_ERR, msg);
}

/*
 * The operation ended with result (EWSGW_SINK_*), why on failure: answer
 * the engine or reschedule the refresh, then send what was queued.
 */
static void
pres_finish(struct sip_pres *p, int result, const char *why)
{
	struct ewsgw_sink	*s = p->s;
	bool			 refresh = !p->engine;

	p->auth_tries = 0;
	p->retried = false;
	if (result != EWSGW_SINK_OK) {
		s->failures++;
		s->streak++;
		snprintf(s->last_error, sizeof s->last_error, "%s", why);
	} else
		s->streak = 0;
	if (refresh) {
		s->refreshing--;
		if (result != EWSGW_SINK_OK) {
			ewsgw_host_mlog(s->host, LOG_DEBUG, p->mailbox,
			    "refresh failed: %s", why);
			pres_schedule(p, backoff_next(&s->refresh_backoff,
			    &s->rng));
		}
		heap_arm(s);	/* a slot is free */
	} else {
		p->engine = false;
		/* A dead server fails every mailbox: say so once in a
		 * while, not once per mailbox and retry. */
		if (result != EWSGW_SINK_OK)
			ewsgw_host_mlog(s->host,
			    s->streak % SIP_LOG_EVERY == 1 ? LOG_WARNING :
			    LOG_DEBUG, p->mailbox, "%s%s", why,
			    s->streak > 1 ? " (and earlier failures)" : "");
		ewsgw_host_done(s->host, p->token, result);
	}
	if (p->forgotten && !p->queued && p->tx == NULL) {
		/* Removed, or the removal failed: either way, done. */
		if (p->op == SIP_OP_REMOVE || p->etag == NULL)
			pres_drop(p);
		else
			pres_forgotten(p);
		return;
	}
	if (p->queued && p->tx == NULL) {
		p->queued = false;
		state_clear(&p->cur);
		p->cur = p->next;
		memset(&p->next, 0, sizeof p->next);
		p->engine = true;
		p->token = p->queued_token;
		if (p->cur.presence == NULL && p->etag == NULL) {
			p->engine = false;
			ewsgw_host_done(s->host, p->token, EWSGW_SINK_OK);
			return;
		}
		pres_start(p, p->cur.presence != NULL ? SIP_OP_PUBLISH :
		    SIP_OP_REMOVE);
	}
}

/* ---- refreshes ---- */

static void
pres_schedule(struct sip_pres *p, int64_t in_ms)
{
	if (in_ms < 0)
		in_ms = 0;
	timerheap_set(&p->s->heap, &p->refresh, time_mono_ms() + in_ms);
	heap_arm(p->s);
}

static void
heap_arm(struct ewsgw_sink *s)
{
	struct timerheap_entry	*e = timerheap_peek(&s->heap);
	struct timeval		 tv;
	int64_t			 d;

	if (e == NULL || s->refreshing >= SIP_REFRESH_INFLIGHT) {
		evtimer_del(&s->heap_ev);
		return;
	}
	d = e->deadline - time_mono_ms();
	if (d < 0)
		d = 0;
	tv.tv_sec = d / 1000;
	tv.tv_usec = (d % 1000) * 1000;
	evtimer_add(&s->heap_ev, &tv);
}

static void
heap_cb(evutil_socket_t fd, short what, void *arg)
{
	struct ewsgw_sink	*s = arg;
	struct timerheap_entry	*e;
	int64_t			 now = time_mono_ms();

	while (s->refreshing < SIP_REFRESH_INFLIGHT &&
	    (e = timerheap_peek(&s->heap)) != NULL && e->deadline <= now) {
		timerheap_remove(&s->heap, e);
		heap_fire(e, s);
	}
	heap_arm(s);
}

static void
heap_fire(struct timerheap_entry *e, void *arg)
{
	struct sip_pres	*p = timerheap_owner(e, struct sip_pres, refresh);

	if (p->tx == NULL && p->forgotten) {
		pres_forgotten(p);	/* left to remove by a reload */
		return;
	}
	if (p->tx != NULL || p->cur.presence == NULL)
		return;		/* a change is on its way, or removed */
	p->s->refreshing++;
	p->engine = false;
	pres_start(p, SIP_OP_REFRESH);
}
