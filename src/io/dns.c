/*
 * ewsgw - Exchange calendar presence gateway
 * SPDX-License-Identifier: ISC
 *
 * c-ares driven by the libevent loop: its sockets become events through
 * the socket-state callback, its timeouts one timer; answers are handed
 * to the caller from a deferred event so no callback ever runs inside a
 * dns_lookup_* call.
 */
#include "config.h"

#include <sys/queue.h>
#include <sys/socket.h>

#include <netinet/in.h>

#include <ares.h>
#include <arpa/nameser.h>
#include <event2/event.h>
#include <event2/event_struct.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>

#include "base/xmalloc.h"
#include "io/dns.h"

enum dns_kind {
	DNS_ADDR,
	DNS_SRV,
	DNS_NAPTR
};

/* One socket c-ares asked us to watch; kept for reuse until the end. */
struct dns_sock {
	TAILQ_ENTRY(dns_sock)	 entry;
	struct dns_resolver	*r;
	ares_socket_t		 fd;		/* ARES_SOCKET_BAD: unused */
	struct event		 ev;
};

struct dns_req {
	TAILQ_ENTRY(dns_req)	 entry;		/* in r->reqs */
	struct dns_resolver	*r;		/* NULL while delivering */
	enum dns_kind		 kind;
	uint16_t		 port;
	dns_cb			 cb;
	void			*arg;
	bool			 in_ares;	/* c-ares still holds it */
	bool			 cancelled;
	struct event		 deliver;
	struct dns_result	 res;		/* owned arrays */
};

struct dns_resolver {
	struct event_base	*base;
	ares_channel		 ch;
	struct event		 timer;
	TAILQ_HEAD(, dns_sock)	 socks;
	TAILQ_HEAD(, dns_req)	 reqs;
	size_t			 npending;
};

static void	 dns_sock_state(void *, ares_socket_t, int, int);
static void	 dns_sock_cb(evutil_socket_t, short, void *);
static void	 dns_timer_cb(evutil_socket_t, short, void *);
static void	 dns_reschedule(struct dns_resolver *);
static struct dns_req *dns_req_new(struct dns_resolver *, enum dns_kind,
		    dns_cb, void *);
static void	 dns_req_free(struct dns_req *);
static void	 dns_req_finish(struct dns_req *, int);
static void	 dns_deliver_cb(evutil_socket_t, short, void *);
static void	 dns_addrinfo_cb(void *, int, int, struct ares_addrinfo *);
static struct dns_req *dns_query(struct dns_resolver *, const char *,
		    enum dns_kind, dns_cb, void *);
static void	 dns_query_cb(void *, int, int, unsigned char *, int);
static void	 dns_fill_srv(struct dns_req *, unsigned char *, int);
static void	 dns_fill_naptr(struct dns_req *, unsigned char *, int);
static int	 dns_srv_cmp(const void *, const void *);
static int	 dns_naptr_cmp(const void *, const void *);

struct dns_resolver *
dns_resolver_new(struct event_base *base, const char *servers,
    int timeout_ms, int tries, char **cause)
{
	struct dns_resolver	*r;
	struct ares_options	 o;
	int			 rc;

	if ((rc = ares_library_init(ARES_LIB_INIT_ALL)) != ARES_SUCCESS) {
		xasprintf(cause, "c-ares: %s", ares_strerror(rc));
		return (NULL);
	}
	r = xcalloc(1, sizeof *r);
	r->base = base;
	TAILQ_INIT(&r->socks);
	TAILQ_INIT(&r->reqs);
	evtimer_assign(&r->timer, base, dns_timer_cb, r);
	memset(&o, 0, sizeof o);
	o.sock_state_cb = dns_sock_state;
	o.sock_state_cb_data = r;
	o.timeout = timeout_ms > 0 ? timeout_ms : 2000;
	o.tries = tries > 0 ? tries : 2;
	if ((rc = ares_init_options(&r->ch, &o, ARES_OPT_SOCK_STATE_CB |
	    ARES_OPT_TIMEOUTMS | ARES_OPT_TRIES)) != ARES_SUCCESS) {
		xasprintf(cause, "c-ares: %s", ares_strerror(rc));
		free(r);
		ares_library_cleanup();
		return (NULL);
	}
	if (servers != NULL &&
	    (rc = ares_set_servers_ports_csv(r->ch, servers)) != ARES_SUCCESS) {
		xasprintf(cause, "DNS servers '%s': %s", servers,
		    ares_strerror(rc));
		dns_resolver_free(r);
		return (NULL);
	}
	return (r);
}

void
dns_resolver_free(struct dns_resolver *r)
{
	struct dns_sock	*s;
	struct dns_req	*q;

	if (r == NULL)
		return;
	/* Calls back every query c-ares holds with ARES_EDESTRUCTION. */
	ares_destroy(r->ch);
	while ((q = TAILQ_FIRST(&r->reqs)) != NULL) {
		TAILQ_REMOVE(&r->reqs, q, entry);
		event_del(&q->deliver);
		dns_req_free(q);
	}
	while ((s = TAILQ_FIRST(&r->socks)) != NULL) {
		TAILQ_REMOVE(&r->socks, s, entry);
		event_del(&s->ev);
		free(s);
	}
	evtimer_del(&r->timer);
	free(r);
	ares_library_cleanup();
}

/* ---- c-ares on the loop ---- */

static void
dns_sock_state(void *data, ares_socket_t fd, int readable, int writable)
{
	struct dns_resolver	*r = data;
	struct dns_sock		*s, *spare = NULL;
	short			 what;

	TAILQ_FOREACH(s, &r->socks, entry) {
		if (s->fd == fd)
			break;
		if (s->fd == ARES_SOCKET_BAD && spare == NULL)
			spare = s;
	}
	if (s != NULL)
		event_del(&s->ev);
	if (!readable && !writable) {
		/* Keep the slot: freeing an event from its own callback
		 * (we may be inside dns_sock_cb) is not safe. */
		if (s != NULL)
			s->fd = ARES_SOCKET_BAD;
		return;
	}
	if (s == NULL) {
		if ((s = spare) == NULL) {
			s = xcalloc(1, sizeof *s);
			s->r = r;
			TAILQ_INSERT_TAIL(&r->socks, s, entry);
		}
		s->fd = fd;
	}
	what = EV_PERSIST | (readable ? EV_READ : 0) |
	    (writable ? EV_WRITE : 0);
	event_assign(&s->ev, r->base, fd, what, dns_sock_cb, s);
	event_add(&s->ev, NULL);
}

static void
dns_sock_cb(evutil_socket_t fd, short what, void *arg)
{
	struct dns_sock		*s = arg;
	struct dns_resolver	*r = s->r;

	ares_process_fd(r->ch, (what & EV_READ) ? fd : ARES_SOCKET_BAD,
	    (what & EV_WRITE) ? fd : ARES_SOCKET_BAD);
	dns_reschedule(r);
}

static void
dns_timer_cb(evutil_socket_t fd, short what, void *arg)
{
	struct dns_resolver	*r = arg;

	ares_process_fd(r->ch, ARES_SOCKET_BAD, ARES_SOCKET_BAD);
	dns_reschedule(r);
}

static void
dns_reschedule(struct dns_resolver *r)
{
	struct timeval	 tv, *tvp;

	if ((tvp = ares_timeout(r->ch, NULL, &tv)) != NULL)
		evtimer_add(&r->timer, tvp);
	else
		evtimer_del(&r->timer);
}

/* ---- requests ---- */

static struct dns_req *
dns_req_new(struct dns_resolver *r, enum dns_kind kind, dns_cb cb,
    void *arg)
{
	struct dns_req	*q;

	q = xcalloc(1, sizeof *q);
	q->r = r;
	q->kind = kind;
	q->cb = cb;
	q->arg = arg;
	q->in_ares = true;
	event_assign(&q->deliver, r->base, -1, 0, dns_deliver_cb, q);
	TAILQ_INSERT_TAIL(&r->reqs, q, entry);
	r->npending++;
	return (q);
}

static void
dns_req_free(struct dns_req *q)
{
	size_t	 i;

	for (i = 0; i < q->res.nsrv; i++)
		free(q->res.srv[i].target);
	for (i = 0; i < q->res.nnaptr; i++) {
		free(q->res.naptr[i].flags);
		free(q->res.naptr[i].service);
		free(q->res.naptr[i].replacement);
	}
	free(q->res.srv);
	free(q->res.naptr);
	free(q->res.addrs);
	free(q);
}

/*
 * c-ares is done with q: drop it if it was cancelled or the resolver is
 * going away, otherwise hand the result over from the loop.
 */
static void
dns_req_finish(struct dns_req *q, int status)
{
	struct dns_resolver	*r = q->r;

	q->in_ares = false;
	if (status == ARES_EDESTRUCTION || q->cancelled) {
		TAILQ_REMOVE(&r->reqs, q, entry);
		if (!q->cancelled)
			r->npending--;
		dns_req_free(q);
		return;
	}
	if (status != ARES_SUCCESS && q->res.error == NULL) {
		q->res.error = ares_strerror(status);
		q->res.notfound = status == ARES_ENOTFOUND ||
		    status == ARES_ENODATA;
	}
	event_active(&q->deliver, EV_TIMEOUT, 1);
}

static void
dns_deliver_cb(evutil_socket_t fd, short what, void *arg)
{
	struct dns_req		*q = arg;
	struct dns_resolver	*r = q->r;

	TAILQ_REMOVE(&r->reqs, q, entry);
	r->npending--;
	q->r = NULL;		/* dns_cancel from the callback: ignored */
	q->cb(&q->res, q->arg);
	dns_req_free(q);
}

void
dns_cancel(struct dns_req *q)
{
	if (q == NULL || q->r == NULL || q->cancelled)
		return;
	q->r->npending--;
	if (q->in_ares) {
		q->cancelled = true;	/* freed when c-ares lets go */
		return;
	}
	event_del(&q->deliver);
	TAILQ_REMOVE(&q->r->reqs, q, entry);
	dns_req_free(q);
}

struct dns_req *
dns_lookup_addr(struct dns_resolver *r, const char *host, uint16_t port,
    dns_cb cb, void *arg)
{
	struct ares_addrinfo_hints	 hints;
	struct dns_req			*q;

	q = dns_req_new(r, DNS_ADDR, cb, arg);
	q->port = port;
	memset(&hints, 0, sizeof hints);
	hints.ai_family = AF_UNSPEC;
	hints.ai_socktype = SOCK_STREAM;	/* one entry per address */
	ares_getaddrinfo(r->ch, host, NULL, &hints, dns_addrinfo_cb, q);
	dns_reschedule(r);
	return (q);
}

/* An SRV or NAPTR query of name. */
static struct dns_req *
dns_query(struct dns_resolver *r, const char *name, enum dns_kind kind,
    dns_cb cb, void *arg)
{
	struct dns_req	*q;

	q = dns_req_new(r, kind, cb, arg);
	ares_query(r->ch, name, ns_c_in, kind == DNS_SRV ? ns_t_srv :
	    ns_t_naptr, dns_query_cb, q);
	dns_reschedule(r);
	return (q);
}

struct dns_req *
dns_lookup_srv(struct dns_resolver *r, const char *name, dns_cb cb,
    void *arg)
{
	return (dns_query(r, name, DNS_SRV, cb, arg));
}

struct dns_req *
dns_lookup_naptr(struct dns_resolver *r, const char *name, dns_cb cb,
    void *arg)
{
	return (dns_query(r, name, DNS_NAPTR, cb, arg));
}

static void
dns_addrinfo_cb(void *arg, int status, int timeouts,
    struct ares_addrinfo *ai)
{
	struct dns_req			*q = arg;
	struct ares_addrinfo_node	*n;
	struct dns_addr			*a;
	size_t				 count = 0;

	if (status == ARES_SUCCESS && ai != NULL && !q->cancelled) {
		for (n = ai->nodes; n != NULL; n = n->ai_next)
			count++;
		q->res.addrs = xcalloc(count + 1, sizeof *q->res.addrs);
		for (n = ai->nodes; n != NULL; n = n->ai_next) {
			if ((n->ai_family != AF_INET &&
			    n->ai_family != AF_INET6) ||
			    n->ai_addrlen > sizeof a->ss)
				continue;
			a = &q->res.addrs[q->res.naddrs++];
			memcpy(&a->ss, n->ai_addr, n->ai_addrlen);
			a->len = n->ai_addrlen;
			if (n->ai_family == AF_INET)
				((struct sockaddr_in *)&a->ss)->sin_port =
				    htons(q->port);
			else
				((struct sockaddr_in6 *)&a->ss)->sin6_port =
				    htons(q->port);
		}
		if (q->res.naddrs == 0) {
			q->res.error = "no IPv4 or IPv6 address";
			q->res.notfound = 1;
		}
	}
	if (ai != NULL)
		ares_freeaddrinfo(ai);
	dns_req_finish(q, status);
}

static void
dns_query_cb(void *arg, int status, int timeouts, unsigned char *abuf,
    int alen)
{
	struct dns_req	*q = arg;

	if (status == ARES_SUCCESS && !q->cancelled) {
		if (q->kind == DNS_SRV)
			dns_fill_srv(q, abuf, alen);
		else
			dns_fill_naptr(q, abuf, alen);
	}
	dns_req_finish(q, status);
}

static void
dns_fill_srv(struct dns_req *q, unsigned char *abuf, int alen)
{
	struct ares_srv_reply	*list = NULL, *s;
	size_t			 n = 0;
	int			 rc;

	if ((rc = ares_parse_srv_reply(abuf, alen, &list)) != ARES_SUCCESS) {
		q->res.error = ares_strerror(rc);
		q->res.notfound = rc == ARES_ENODATA;
		return;
	}
	for (s = list; s != NULL; s = s->next)
		n++;
	q->res.srv = xcalloc(n + 1, sizeof *q->res.srv);
	for (s = list; s != NULL; s = s->next) {
		/* RFC 2782: a lone "." target means "not offered here". */
		if (s->host == NULL || s->host[0] == '\0' ||
		    strcmp(s->host, ".") == 0)
			continue;
		q->res.srv[q->res.nsrv].target = xstrdup(s->host);
		q->res.srv[q->res.nsrv].priority = s->priority;
		q->res.srv[q->res.nsrv].weight = s->weight;
		q->res.srv[q->res.nsrv].port = s->port;
		q->res.nsrv++;
	}
	ares_free_data(list);
	qsort(q->res.srv, q->res.nsrv, sizeof *q->res.srv, dns_srv_cmp);
	if (q->res.nsrv == 0) {
		q->res.error = "no usable SRV record";
		q->res.notfound = 1;
	}
}

static void
dns_fill_naptr(struct dns_req *q, unsigned char *abuf, int alen)
{
	struct ares_naptr_reply	*list = NULL, *p;
	struct dns_naptr	*d;
	size_t			 n = 0;
	int			 rc;

	if ((rc = ares_parse_naptr_reply(abuf, alen, &list)) !=
	    ARES_SUCCESS) {
		q->res.error = ares_strerror(rc);
		q->res.notfound = rc == ARES_ENODATA;
		return;
	}
	for (p = list; p != NULL; p = p->next)
		n++;
	q->res.naptr = xcalloc(n + 1, sizeof *q->res.naptr);
	for (p = list; p != NULL; p = p->next) {
		d = &q->res.naptr[q->res.nnaptr++];
		d->flags = xstrdup(p->flags != NULL ?
		    (const char *)p->flags : "");
		d->service = xstrdup(p->service != NULL ?
		    (const char *)p->service : "");
		d->replacement = xstrdup(p->replacement != NULL ?
		    p->replacement : "");
		d->order = p->order;
		d->preference = p->preference;
	}
	ares_free_data(list);
	qsort(q->res.naptr, q->res.nnaptr, sizeof *q->res.naptr,
	    dns_naptr_cmp);
}

/* Priority ascending; within one, the heavier first (a fixed stand-in
 * for RFC 2782's weighted draw, so the order is reproducible). */
static int
dns_srv_cmp(const void *a, const void *b)
{
	const struct dns_srv	*x = a, *y = b;

	if (x->priority != y->priority)
		return (x->priority < y->priority ? -1 : 1);
	if (x->weight != y->weight)
		return (x->weight > y->weight ? -1 : 1);
	return (0);
}

static int
dns_naptr_cmp(const void *a, const void *b)
{
	const struct dns_naptr	*x = a, *y = b;

	if (x->order != y->order)
		return (x->order < y->order ? -1 : 1);
	if (x->preference != y->preference)
		return (x->preference < y->preference ? -1 : 1);
	return (0);
}
