/*
 * ewsgw - Exchange calendar presence gateway
 * SPDX-License-Identifier: ISC
 *
 * Non-blocking DNS on the libevent loop: c-ares for addresses (with
 * /etc/hosts), SRV and NAPTR records, as the sip and xmpp sinks need
 * them (RFC 3263).  getaddrinfo() would block the loop, and libevent's
 * evdns has no SRV or NAPTR queries.
 */
#ifndef EWSGW_DNS_H
#define EWSGW_DNS_H

#include <sys/socket.h>

#include <stddef.h>
#include <stdint.h>

struct event_base;
struct dns_resolver;
struct dns_req;

struct dns_addr {
	struct sockaddr_storage	 ss;		/* port already set */
	socklen_t		 len;
};

struct dns_srv {
	char		*target;
	uint16_t	 priority;
	uint16_t	 weight;
	uint16_t	 port;
};

struct dns_naptr {
	char		*flags;
	char		*service;	/* e.g. "SIP+D2T" */
	char		*replacement;	/* e.g. "_sip._tcp.example.com" */
	uint16_t	 order;
	uint16_t	 preference;
};

/* What a lookup found; everything borrowed for the callback only. */
struct dns_result {
	const char		*error;		/* NULL: success */
	int			 notfound;	/* no such records */
	struct dns_addr		*addrs;
	size_t			 naddrs;
	struct dns_srv		*srv;		/* by priority, then weight */
	size_t			 nsrv;
	struct dns_naptr	*naptr;		/* by order, then preference */
	size_t			 nnaptr;
};

/* Called once per lookup, always from the loop (never from inside a
 * dns_lookup_* call); not called after dns_cancel. */
typedef void	(*dns_cb)(const struct dns_result *, void *arg);

/*
 * A resolver on base.  servers is NULL (use /etc/resolv.conf) or a
 * comma-separated list "IP[:PORT],...".  timeout_ms bounds each try,
 * tries the attempts per server.  Returns a new resolver (free with
 * dns_resolver_free) or NULL with *cause set (allocated, caller frees).
 */
struct dns_resolver *dns_resolver_new(struct event_base *,
		    const char *servers, int timeout_ms, int tries,
		    char **cause);

/* Cancel every lookup (their callbacks are not called) and free. */
void		 dns_resolver_free(struct dns_resolver *);

/*
 * Addresses of host (a name or an IP literal), IPv4 and IPv6, with port
 * set in each.  Returns a handle valid until the callback ran or
 * dns_cancel; name is copied.
 */
struct dns_req	*dns_lookup_addr(struct dns_resolver *, const char *host,
		    uint16_t port, dns_cb, void *arg);

/* SRV records of name (e.g. "_sip._udp.example.com"). */
struct dns_req	*dns_lookup_srv(struct dns_resolver *, const char *name,
		    dns_cb, void *arg);

/* NAPTR records of name. */
struct dns_req	*dns_lookup_naptr(struct dns_resolver *, const char *name,
		    dns_cb, void *arg);

/* Forget a lookup: its callback is never called.  NULL is fine. */
void		 dns_cancel(struct dns_req *);


#endif
