/*
 * ewsgw - Exchange calendar presence gateway
 * SPDX-License-Identifier: ISC
 *
 * RFC 3263 section 4 as a chain of lookups: NAPTR (transport unknown),
 * then SRV for the chosen or each supported transport, then the host
 * itself on the default port.  SRV order is priority, then weight.
 */
#include "config.h"

#include <arpa/inet.h>

#include <event2/event.h>
#include <event2/event_struct.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "base/xmalloc.h"
#include "io/dns.h"
#include "sinks/sip_locate.h"

#define LOCATE_MAX_QUERIES	8

struct sip_locate {
	struct dns_resolver	*dns;
	struct dns_req		*req;
	struct event		 ev;		/* deferred answer */
	sip_locate_cb		 cb;
	void			*arg;

	char			*host;
	uint16_t		 port;
	enum sip_proto		 proto;
	bool			 secure;

	/* SRV names still to ask, with their transport */
	char			*srv_names[LOCATE_MAX_QUERIES];
	enum sip_proto		 srv_protos[LOCATE_MAX_QUERIES];
	size_t			 nsrv, next_srv;

	struct sip_hop		*hops;
	size_t			 nhops;
	const char		*error;
};

static void	 locate_done(struct sip_locate *);
static void	 locate_ev_cb(evutil_socket_t, short, void *);
static void	 locate_add_hop(struct sip_locate *, enum sip_proto,
		    const char *, uint16_t);
static void	 locate_add_srv(struct sip_locate *, enum sip_proto,
		    const char *);
static void	 locate_next_srv(struct sip_locate *);
static void	 locate_naptr_cb(const struct dns_result *, void *);
static void	 locate_srv_cb(const struct dns_result *, void *);
static void	 locate_free(struct sip_locate *);
static bool	 is_ip_literal(const char *);

const char *
sip_proto_name(enum sip_proto p)
{
	switch (p) {
	case SIP_PROTO_UDP:
		return ("udp");
	case SIP_PROTO_TCP:
		return ("tcp");
	case SIP_PROTO_TLS:
		return ("tls");
	default:
		return ("any");
	}
}

const char *
sip_proto_via(enum sip_proto p)
{
	switch (p) {
	case SIP_PROTO_TCP:
		return ("TCP");
	case SIP_PROTO_TLS:
		return ("TLS");
	default:
		return ("UDP");
	}
}

/* The default port: 5061 for TLS, else 5060. */
static uint16_t
sip_proto_port(enum sip_proto p)
{
	return (p == SIP_PROTO_TLS ? 5061 : 5060);
}

static bool
is_ip_literal(const char *h)
{
	struct in6_addr	 a6;
	struct in_addr	 a4;

	return (inet_pton(AF_INET, h, &a4) == 1 ||
	    inet_pton(AF_INET6, h, &a6) == 1);
}

struct sip_locate *
sip_locate_start(struct dns_resolver *dns, struct event_base *base,
    const struct sip_target *t, sip_locate_cb cb, void *arg)
{
	struct sip_locate	*l;
	enum sip_proto		 p;

	l = xcalloc(1, sizeof *l);
	l->dns = dns;
	l->cb = cb;
	l->arg = arg;
	l->host = xstrdup(t->host);
	l->port = t->port;
	l->secure = t->secure;
	l->proto = t->secure ? SIP_PROTO_TLS : t->proto;
	event_assign(&l->ev, base, -1, 0, locate_ev_cb, l);

	/* RFC 3263 4.1/4.2: a literal or an explicit port needs no
	 * records; neither does a caller who turned them off. */
	if (is_ip_literal(l->host) || l->port != 0 || !t->srv) {
		p = l->proto == SIP_PROTO_ANY ? SIP_PROTO_UDP : l->proto;
		locate_add_hop(l, p, l->host, l->port != 0 ? l->port :
		    sip_proto_port(p));
		locate_done(l);
		return (l);
	}
	if (l->proto == SIP_PROTO_ANY) {
		l->req = dns_lookup_naptr(dns, l->host, locate_naptr_cb, l);
		return (l);
	}
	locate_add_srv(l, l->proto, l->host);
	locate_next_srv(l);
	return (l);
}

void
sip_locate_cancel(struct sip_locate *l)
{
	if (l == NULL)
		return;
	dns_cancel(l->req);
	event_del(&l->ev);
	locate_free(l);
}

static void
locate_free(struct sip_locate *l)
{
	size_t	 i;

	for (i = 0; i < l->nhops; i++)
		free(l->hops[i].host);
	for (i = 0; i < l->nsrv; i++)
		free(l->srv_names[i]);
	free(l->hops);
	free(l->host);
	free(l);
}

static void
locate_add_hop(struct sip_locate *l, enum sip_proto p, const char *host,
    uint16_t port)
{
	size_t	 i;
	char	*h;

	h = xstrdup(host);
	i = strlen(h);
	if (i > 1 && h[i - 1] == '.')	/* SRV targets are absolute */
		h[i - 1] = '\0';
	l->hops = xreallocarray(l->hops, l->nhops + 1, sizeof *l->hops);
	l->hops[l->nhops].proto = p;
	l->hops[l->nhops].host = h;
	l->hops[l->nhops].port = port;
	l->nhops++;
}

/* Queue an SRV query: name is the full name, or the host for p's. */
static void
locate_add_srv(struct sip_locate *l, enum sip_proto p, const char *host)
{
	const char	*prefix;

	if (l->nsrv == LOCATE_MAX_QUERIES)
		return;
	prefix = p == SIP_PROTO_TLS ? "_sips._tcp." : p == SIP_PROTO_TCP ?
	    "_sip._tcp." : "_sip._udp.";
	if (host[0] == '_')
		l->srv_names[l->nsrv] = xstrdup(host);
	else
		xasprintf(&l->srv_names[l->nsrv], "%s%s", prefix, host);
	l->srv_protos[l->nsrv] = p;
	l->nsrv++;
}

/* Ask the next queued SRV name, or finish. */
static void
locate_next_srv(struct sip_locate *l)
{
	enum sip_proto	 p;

	if (l->next_srv < l->nsrv) {
		l->req = dns_lookup_srv(l->dns, l->srv_names[l->next_srv],
		    locate_srv_cb, l);
		return;
	}
	if (l->nhops == 0) {
		/* RFC 3263 4.2: no records at all, use the host. */
		p = l->proto == SIP_PROTO_ANY ? SIP_PROTO_UDP : l->proto;
		locate_add_hop(l, p, l->host, sip_proto_port(p));
	}
	locate_done(l);
}

static void
locate_naptr_cb(const struct dns_result *res, void *arg)
{
	struct sip_locate	*l = arg;
	enum sip_proto		 p;
	size_t			 i;

	l->req = NULL;
	for (i = 0; res->error == NULL && i < res->nnaptr; i++) {
		if (strcasecmp(res->naptr[i].flags, "s") != 0)
			continue;
		if (strcasecmp(res->naptr[i].service, "SIPS+D2T") == 0)
			p = SIP_PROTO_TLS;
		else if (strcasecmp(res->naptr[i].service, "SIP+D2T") == 0)
			p = SIP_PROTO_TCP;
		else if (strcasecmp(res->naptr[i].service, "SIP+D2U") == 0)
			p = SIP_PROTO_UDP;
		else
			continue;
		if (l->secure && p != SIP_PROTO_TLS)
			continue;
		locate_add_srv(l, p, res->naptr[i].replacement);
	}
	if (l->nsrv == 0) {
		/* RFC 3263 4.1: no NAPTR, ask SRV for every transport. */
		if (!l->secure) {
			locate_add_srv(l, SIP_PROTO_UDP, l->host);
			locate_add_srv(l, SIP_PROTO_TCP, l->host);
		}
		locate_add_srv(l, SIP_PROTO_TLS, l->host);
	}
	locate_next_srv(l);
}

static void
locate_srv_cb(const struct dns_result *res, void *arg)
{
	struct sip_locate	*l = arg;
	enum sip_proto		 p = l->srv_protos[l->next_srv];
	size_t			 i;

	l->req = NULL;
	l->next_srv++;
	if (res->error == NULL)
		for (i = 0; i < res->nsrv; i++)
			locate_add_hop(l, p, res->srv[i].target,
			    res->srv[i].port);
	else if (!res->notfound && l->error == NULL)
		l->error = "DNS lookup failed";
	/* The first name with records decides the transport (NAPTR and
	 * client preference order); later ones are not asked. */
	if (l->nhops > 0)
		l->next_srv = l->nsrv;
	locate_next_srv(l);
}

static void
locate_done(struct sip_locate *l)
{
	event_active(&l->ev, EV_TIMEOUT, 1);
}

static void
locate_ev_cb(evutil_socket_t fd, short what, void *arg)
{
	struct sip_locate	*l = arg;

	l->cb(l->hops, l->nhops, l->nhops == 0 ? (l->error != NULL ?
	    l->error : "no SIP server found") : NULL, l->arg);
	locate_free(l);
}
