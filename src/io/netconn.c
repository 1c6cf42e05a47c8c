/*
 * ewsgw - Exchange calendar presence gateway
 * SPDX-License-Identifier: ISC
 *
 * Client TCP/TLS connections on bufferevents: libevent's OpenSSL
 * filter does the handshake without blocking, tls.c sets the policy and
 * the name to verify, one timer bounds connect plus handshake.
 */
#include "config.h"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <netinet/tcp.h>

#include <errno.h>
#include <event2/buffer.h>
#include <event2/bufferevent.h>
#include <event2/bufferevent_ssl.h>
#include <event2/event.h>
#include <event2/event_struct.h>
#include <openssl/err.h>
#include <openssl/x509.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "base/xmalloc.h"
#include "io/netconn.h"
#include "io/tls.h"

#define NETCONN_TIMEOUT_DEFAULT	10000	/* ms */
#define NETCONN_KEEPIDLE	60	/* s idle before the first probe */
#define NETCONN_KEEPINTVL	15	/* s between probes */
#define NETCONN_KEEPCNT		4	/* unanswered probes: dead */

struct netconn {
	struct bufferevent	*bev;
	SSL			*ssl;		/* owned by bev, or NULL */
	struct event		 timer;		/* connect + handshake */
	struct event		 fail;		/* deferred early failure */
	netconn_read_cb		 read_cb;
	netconn_event_cb	 event_cb;
	void			*arg;
	bool			 connected;
	bool			 finished;	/* CLOSED or ERROR reported */
	char			 why[256];
};

static void	 netconn_bev_read(struct bufferevent *, void *);
static void	 netconn_bev_write(struct bufferevent *, void *);
static void	 netconn_bev_event(struct bufferevent *, short, void *);
static void	 netconn_timer_cb(evutil_socket_t, short, void *);
static void	 netconn_fail_cb(evutil_socket_t, short, void *);
static void	 netconn_finish(struct netconn *, enum netconn_event);
static void	 netconn_error_text(struct netconn *, short);
static void	 netconn_keepalive(evutil_socket_t);

struct netconn *
netconn_connect(struct event_base *base, const struct sockaddr *sa,
    socklen_t salen, const struct netconn_opts *o, netconn_read_cb rcb,
    netconn_event_cb ecb, void *arg, char **cause)
{
	struct netconn	*c;
	struct timeval	 tv;
	int64_t		 ms;
	int		 flags = BEV_OPT_CLOSE_ON_FREE |
	    BEV_OPT_DEFER_CALLBACKS;

	c = xcalloc(1, sizeof *c);
	c->read_cb = rcb;
	c->event_cb = ecb;
	c->arg = arg;
	if (o->ssl_ctx != NULL) {
		if ((c->ssl = tls_client_ssl_new(o->ssl_ctx, o->peer_name !=
		    NULL ? o->peer_name : "", cause)) == NULL) {
			free(c);
			return (NULL);
		}
		c->bev = bufferevent_openssl_socket_new(base, -1, c->ssl,
		    BUFFEREVENT_SSL_CONNECTING, flags);
		if (c->bev != NULL)
			bufferevent_openssl_set_allow_dirty_shutdown(c->bev, 1);
		else
			SSL_free(c->ssl);
	} else
		c->bev = bufferevent_socket_new(base, -1, flags);
	if (c->bev == NULL) {
		*cause = xstrdup("cannot create a bufferevent");
		free(c);
		return (NULL);
	}
	bufferevent_setcb(c->bev, netconn_bev_read, netconn_bev_write,
	    netconn_bev_event, c);
	bufferevent_enable(c->bev, EV_READ | EV_WRITE);
	evtimer_assign(&c->timer, base, netconn_timer_cb, c);
	event_assign(&c->fail, base, -1, 0, netconn_fail_cb, c);
	ms = o->timeout_ms > 0 ? o->timeout_ms : NETCONN_TIMEOUT_DEFAULT;
	tv.tv_sec = ms / 1000;
	tv.tv_usec = (ms % 1000) * 1000;
	evtimer_add(&c->timer, &tv);
	if (bufferevent_socket_connect(c->bev, sa, (int)salen) == -1) {
		/* Reported from the loop, like every other outcome. */
		snprintf(c->why, sizeof c->why, "connect: %s",
		    strerror(errno != 0 ? errno : ECONNREFUSED));
		event_active(&c->fail, EV_TIMEOUT, 1);
	}
	return (c);
}

void
netconn_set_arg(struct netconn *c, void *arg)
{
	c->arg = arg;
}

void
netconn_write(struct netconn *c, const void *data, size_t len)
{
	if (!c->finished)
		bufferevent_write(c->bev, data, len);
}

size_t
netconn_output_len(const struct netconn *c)
{
	return (evbuffer_get_length(bufferevent_get_output(c->bev)));
}

int
netconn_addr_string(const struct sockaddr *sa, char *out, size_t len)
{
	char	 ip[INET6_ADDRSTRLEN];

	if (sa->sa_family == AF_INET) {
		inet_ntop(AF_INET, &((const struct sockaddr_in *)sa)->sin_addr,
		    ip, sizeof ip);
		snprintf(out, len, "%s:%u", ip,
		    ntohs(((const struct sockaddr_in *)sa)->sin_port));
	} else if (sa->sa_family == AF_INET6) {
		inet_ntop(AF_INET6,
		    &((const struct sockaddr_in6 *)sa)->sin6_addr, ip,
		    sizeof ip);
		snprintf(out, len, "[%s]:%u", ip,
		    ntohs(((const struct sockaddr_in6 *)sa)->sin6_port));
	} else
		return (-1);
	return (0);
}

int
netconn_local(const struct netconn *c, char *out, size_t len)
{
	struct sockaddr_storage	 ss;
	socklen_t		 sl = sizeof ss;
	evutil_socket_t		 fd = bufferevent_getfd(c->bev);

	if (fd < 0 || getsockname(fd, (struct sockaddr *)&ss, &sl) == -1)
		return (-1);
	return (netconn_addr_string((struct sockaddr *)&ss, out, len));
}

void
netconn_free(struct netconn *c)
{
	if (c == NULL)
		return;
	evtimer_del(&c->timer);
	event_del(&c->fail);
	/* Frees the SSL too (BEV_OPT_CLOSE_ON_FREE); deferred callbacks
	 * still queued are dropped with it. */
	bufferevent_free(c->bev);
	free(c);
}

static void
netconn_bev_read(struct bufferevent *bev, void *arg)
{
	struct netconn	*c = arg;

	if (!c->finished)
		c->read_cb(c, bufferevent_get_input(bev), c->arg);
}

static void
netconn_bev_write(struct bufferevent *bev, void *arg)
{
	struct netconn	*c = arg;

	/* The write callback runs when the output drained to 0. */
	if (c->connected && !c->finished)
		c->event_cb(c, NETCONN_DRAINED, NULL, c->arg);
}

static void
netconn_bev_event(struct bufferevent *bev, short what, void *arg)
{
	struct netconn	*c = arg;

	if (c->finished)
		return;
	if (what & BEV_EVENT_CONNECTED) {
		evtimer_del(&c->timer);
		c->connected = true;
		netconn_keepalive(bufferevent_getfd(bev));
		c->event_cb(c, NETCONN_CONNECTED, NULL, c->arg);
		return;
	}
	if ((what & BEV_EVENT_EOF) && c->connected) {
		netconn_finish(c, NETCONN_CLOSED);
		return;
	}
	netconn_error_text(c, what);
	netconn_finish(c, NETCONN_ERROR);
}

static void
netconn_timer_cb(evutil_socket_t fd, short what, void *arg)
{
	struct netconn	*c = arg;

	snprintf(c->why, sizeof c->why, "%s timed out",
	    c->ssl != NULL ? "connect and TLS handshake" : "connect");
	netconn_finish(c, NETCONN_ERROR);
}

static void
netconn_fail_cb(evutil_socket_t fd, short what, void *arg)
{
	netconn_finish(arg, NETCONN_ERROR);
}

/* Report the end once; the callback may free c. */
static void
netconn_finish(struct netconn *c, enum netconn_event ev)
{
	if (c->finished)
		return;
	c->finished = true;
	evtimer_del(&c->timer);
	bufferevent_disable(c->bev, EV_READ | EV_WRITE);
	c->event_cb(c, ev, ev == NETCONN_ERROR ? c->why : NULL, c->arg);
}

/*
 * TCP keep-alives: a peer that vanished without a reset (power loss, a
 * dropped NAT entry) shows as an error within about two minutes even on
 * a connection that has nothing to send.
 */
static void
netconn_keepalive(evutil_socket_t fd)
{
	int	 on = 1, idle = NETCONN_KEEPIDLE, intvl = NETCONN_KEEPINTVL;
	int	 cnt = NETCONN_KEEPCNT;

	if (fd < 0)
		return;
	(void)setsockopt(fd, SOL_SOCKET, SO_KEEPALIVE, &on, sizeof on);
	(void)setsockopt(fd, IPPROTO_TCP, TCP_KEEPIDLE, &idle, sizeof idle);
	(void)setsockopt(fd, IPPROTO_TCP, TCP_KEEPINTVL, &intvl,
	    sizeof intvl);
	(void)setsockopt(fd, IPPROTO_TCP, TCP_KEEPCNT, &cnt, sizeof cnt);
}

/* Why the bufferevent failed, certificate problems spelled out. */
static void
netconn_error_text(struct netconn *c, short what)
{
	unsigned long	 e, last = 0;
	long		 vr;
	char		 reason[160];
	int		 err = EVUTIL_SOCKET_ERROR();

	while ((e = bufferevent_get_openssl_error(c->bev)) != 0)
		last = e;
	if (c->ssl != NULL && (vr = SSL_get_verify_result(c->ssl)) !=
	    X509_V_OK) {
		snprintf(c->why, sizeof c->why,
		    "TLS certificate verification failed: %s",
		    X509_verify_cert_error_string(vr));
	} else if (last != 0) {
		ERR_error_string_n(last, reason, sizeof reason);
		snprintf(c->why, sizeof c->why, "TLS: %s", reason);
	} else if (what & BEV_EVENT_EOF) {
		snprintf(c->why, sizeof c->why, "%s",
		    c->ssl != NULL ? "closed during the TLS handshake" :
		    "closed while connecting");
	} else if (err != 0)
		snprintf(c->why, sizeof c->why, "%s",
		    evutil_socket_error_to_string(err));
	else
		snprintf(c->why, sizeof c->why, "connection error");
	ERR_clear_error();
}
