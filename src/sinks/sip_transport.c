/*
 * ewsgw - Exchange calendar presence gateway
 * SPDX-License-Identifier: ISC
 *
 * The sip sink's transport: locate the server (sip_locate.c), look up
 * the hop's addresses (dns.h), then a connected UDP socket or a TCP/TLS
 * connection (netconn.h); client transactions with RFC 3261 timers on
 * top.  Any failure to reach the server fails the transactions waiting
 * for it and sends the transport back to idle; the next transaction
 * locates the server afresh, so a moved or restarted server is found.
 */
#include "config.h"

#include <sys/queue.h>
#include <sys/socket.h>

#include <errno.h>
#include <event2/buffer.h>
#include <event2/event.h>
#include <event2/event_struct.h>
#include <openssl/rand.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "base/buf.h"
#include "base/hashmap.h"
#include "base/timeutil.h"
#include "base/xmalloc.h"
#include "io/dns.h"
#include "io/netconn.h"
#include "sinks/sip_transport.h"

#define SIP_BRANCH_LEN		(7 + 2 * 12)	/* z9hG4bK + 24 hex */

enum sip_tstate {
	SIP_T_IDLE,		/* nothing open */
	SIP_T_LOCATING,		/* RFC 3263 lookups */
	SIP_T_RESOLVING,	/* addresses of the current hop */
	SIP_T_CONNECTING,	/* TCP/TLS connect and handshake */
	SIP_T_UP,		/* sending */
	SIP_T_STATE_MAX
};

struct sip_tx {
	TAILQ_ENTRY(sip_tx)	 entry;		/* t->txs */
	struct sip_transport	*t;
	char			 branch[SIP_BRANCH_LEN + 1];
	struct buf		 msg;		/* built when sent */
	bool			 sent;
	bool			 provisional;	/* a 1xx arrived */
	int64_t			 interval;	/* Timer E, ms */
	int64_t			 sent_at;	/* mono ms */
	struct event		 timer_e;
	struct event		 timer_f;
	sip_tx_build_cb		 build;
	sip_tx_done_cb		 done;
	void			*arg;
};
TAILQ_HEAD(sip_txs, sip_tx);

struct sip_transport {
	struct event_base	*base;
	struct dns_resolver	*dns;
	struct sip_transport_opts o;		/* strings owned */
	enum sip_tstate		 state;

	struct sip_txs		 txs;
	struct hashmap		*by_branch;	/* branch -> sip_tx */
	size_t			 ntx;

	struct sip_locate	*loc;
	struct sip_hop		*hops;		/* owned copies */
	size_t			 nhops, hop;
	struct dns_req		*req;
	struct dns_addr		*addrs;
	size_t			 naddrs, addr;

	int			 udp_fd;
	struct event		 udp_ev;
	struct netconn		*conn;
	struct buf		 rx;		/* reassembly (streams) */
	struct event		 down_ev;	/* deferred t_down */
	char			 down_why[200];

	char			 via_host[64];
	char			 peer[80];	/* "udp 1.2.3.4:5060" */
	char			 last_error[200];
	int64_t			 last_rx;	/* mono ms */
	bool			 ok;		/* last attempt reached it */
};

static void	 t_set_state(struct sip_transport *, enum sip_tstate);
static void	 t_locate_cb(const struct sip_hop *, size_t, const char *,
		    void *);
static void	 t_resolve(struct sip_transport *);
static void	 t_resolve_cb(const struct dns_result *, void *);
static void	 t_connect(struct sip_transport *);
static void	 t_fail_hop(struct sip_transport *, const char *);
static void	 t_down(struct sip_transport *, const char *, bool);
static void	 t_reset(struct sip_transport *);
static void	 t_close(struct sip_transport *);
static void	 t_send_waiting(struct sip_transport *);
static void	 t_send(struct sip_transport *, struct sip_tx *);
static void	 t_xmit(struct sip_transport *, struct sip_tx *);
static void	 t_down_cb(evutil_socket_t, short, void *);
static void	 t_udp_cb(evutil_socket_t, short, void *);
static void	 t_conn_read(struct netconn *, struct evbuffer *, void *);
static void	 t_conn_event(struct netconn *, enum netconn_event,
		    const char *, void *);
static void	 t_receive(struct sip_transport *, const char *, size_t);
static void	 tx_timer_e(evutil_socket_t, short, void *);
static void	 tx_timer_f(evutil_socket_t, short, void *);
static void	 tx_end(struct sip_tx *, const struct sip_response *,
		    const char *);
static void	 tx_free(struct sip_tx *);
static void	 tv_ms(struct timeval *, int64_t);

static const char *const sip_tstate_names[SIP_T_STATE_MAX] = {
	"idle", "locating", "resolving", "connecting", "up"
};

void
sip_token(char *out, size_t nbytes)
{
	unsigned char	 r[32];
	size_t		 i;

	if (nbytes > sizeof r)
		nbytes = sizeof r;
	if (RAND_bytes(r, (int)nbytes) != 1)
		abort();	/* no randomness: nothing safe to do */
	for (i = 0; i < nbytes; i++)
		snprintf(out + 2 * i, 3, "%02x", r[i]);
	out[2 * nbytes] = '\0';
}

static void
tv_ms(struct timeval *tv, int64_t ms)
{
	tv->tv_sec = ms / 1000;
	tv->tv_usec = (ms % 1000) * 1000;
}

struct sip_transport *
sip_transport_new(struct event_base *base, struct dns_resolver *dns,
    const struct sip_transport_opts *o)
{
	struct sip_transport	*t;

	t = xcalloc(1, sizeof *t);
	t->base = base;
	t->dns = dns;
	t->o = *o;
	t->o.target.host = xstrdup(o->target.host);
	t->o.tls_name = o->tls_name != NULL ? xstrdup(o->tls_name) : NULL;
	if (t->o.t1 <= 0)
		t->o.t1 = SIP_T1_DEFAULT;
	if (t->o.t2 < t->o.t1)
		t->o.t2 = t->o.t1 > SIP_T2_DEFAULT ? t->o.t1 : SIP_T2_DEFAULT;
	TAILQ_INIT(&t->txs);
	t->by_branch = hashmap_new();
	t->udp_fd = -1;
	t->ok = true;
	event_assign(&t->down_ev, base, -1, 0, t_down_cb, t);
	return (t);
}

void
sip_transport_free(struct sip_transport *t)
{
	struct sip_tx	*tx;

	if (t == NULL)
		return;
	while ((tx = TAILQ_FIRST(&t->txs)) != NULL)
		sip_tx_cancel(tx);
	t_reset(t);
	event_del(&t->down_ev);
	hashmap_free(t->by_branch, NULL);
	free((char *)t->o.target.host);
	free((char *)t->o.tls_name);
	free(t);
}

bool
sip_transport_status(const struct sip_transport *t, char *out, size_t len)
{
	if (!t->ok)
		snprintf(out, len, "%s", t->last_error);
	else if (t->state == SIP_T_UP)
		snprintf(out, len, "%s", t->peer);
	else
		snprintf(out, len, "%s", sip_tstate_names[t->state]);
	return (t->ok);
}

/* ---- states ---- */

static void
t_set_state(struct sip_transport *t, enum sip_tstate st)
{
	t->state = st;
	switch (st) {
	case SIP_T_LOCATING:
		t->loc = sip_locate_start(t->dns, t->base, &t->o.target,
		    t_locate_cb, t);
		break;
	case SIP_T_RESOLVING:
		t_resolve(t);
		break;
	case SIP_T_CONNECTING:
		t_connect(t);
		break;
	case SIP_T_UP:
		t->ok = true;
		t_send_waiting(t);
		break;
	default:
		break;
	}
}

static void
t_locate_cb(const struct sip_hop *hops, size_t n, const char *error,
    void *arg)
{
	struct sip_transport	*t = arg;
	size_t			 i;

	t->loc = NULL;
	if (n == 0) {
		t_down(t, error, true);
		return;
	}
	t->hops = xcalloc(n, sizeof *t->hops);
	for (i = 0; i < n; i++) {
		t->hops[i] = hops[i];
		t->hops[i].host = xstrdup(hops[i].host);
	}
	t->nhops = n;
	t->hop = 0;
	t_set_state(t, SIP_T_RESOLVING);
}

static void
t_resolve(struct sip_transport *t)
{
	const struct sip_hop	*h = &t->hops[t->hop];

	free(t->addrs);
	t->addrs = NULL;
	t->naddrs = t->addr = 0;
	t->req = dns_lookup_addr(t->dns, h->host, h->port, t_resolve_cb, t);
}

static void
t_resolve_cb(const struct dns_result *res, void *arg)
{
	struct sip_transport	*t = arg;
	char			 why[200];

	t->req = NULL;
	if (res->error != NULL) {
		snprintf(why, sizeof why, "%s: %s", t->hops[t->hop].host,
		    res->error);
		t_fail_hop(t, why);
		return;
	}
	t->addrs = xcalloc(res->naddrs, sizeof *t->addrs);
	memcpy(t->addrs, res->addrs, res->naddrs * sizeof *t->addrs);
	t->naddrs = res->naddrs;
	t->addr = 0;
	t_set_state(t, SIP_T_CONNECTING);
}

/* Open the socket or connection to the current address. */
static void
t_connect(struct sip_transport *t)
{
	const struct sip_hop	*h = &t->hops[t->hop];
	const struct dns_addr	*a = &t->addrs[t->addr];
	struct netconn_opts	 no;
	struct sockaddr_storage	 ss;
	socklen_t		 sl = sizeof ss;
	char			 why[200], addr[INET6_ADDRSTRLEN + 8];
	char			*cause = NULL;

	netconn_addr_string((const struct sockaddr *)&a->ss, addr, sizeof addr);
	snprintf(t->peer, sizeof t->peer, "%s %s", sip_proto_name(h->proto),
	    addr);
	if (h->proto == SIP_PROTO_UDP) {
		t->udp_fd = socket(a->ss.ss_family, SOCK_DGRAM | SOCK_NONBLOCK |
		    SOCK_CLOEXEC, 0);
		if (t->udp_fd == -1 || connect(t->udp_fd,
		    (const struct sockaddr *)&a->ss, a->len) == -1 ||
		    getsockname(t->udp_fd, (struct sockaddr *)&ss, &sl) == -1) {
			snprintf(why, sizeof why, "udp %s: %s", addr,
			    strerror(errno));
			t_fail_hop(t, why);
			return;
		}
		netconn_addr_string((struct sockaddr *)&ss, t->via_host,
		    sizeof t->via_host);
		event_assign(&t->udp_ev, t->base, t->udp_fd,
		    EV_READ | EV_PERSIST, t_udp_cb, t);
		event_add(&t->udp_ev, NULL);
		t_set_state(t, SIP_T_UP);
		return;
	}
	if (h->proto == SIP_PROTO_TLS && t->o.ssl_ctx == NULL) {
		t_fail_hop(t, "TLS hop but no TLS context");
		return;
	}
	memset(&no, 0, sizeof no);
	no.ssl_ctx = h->proto == SIP_PROTO_TLS ? t->o.ssl_ctx : NULL;
	no.peer_name = t->o.tls_name != NULL ? t->o.tls_name :
	    t->o.target.host;
	no.timeout_ms = t->o.connect_timeout;
	t->conn = netconn_connect(t->base, (const struct sockaddr *)&a->ss,
	    a->len, &no, t_conn_read, t_conn_event, t, &cause);
	if (t->conn == NULL) {
		snprintf(why, sizeof why, "%s: %s", t->peer, cause);
		free(cause);
		t_fail_hop(t, why);
	}
}

/* The current address failed: the next address, the next hop, or down. */
static void
t_fail_hop(struct sip_transport *t, const char *why)
{
	snprintf(t->last_error, sizeof t->last_error, "%s", why);
	t_close(t);
	if (t->naddrs > 0 && ++t->addr < t->naddrs) {
		t_set_state(t, SIP_T_CONNECTING);
		return;
	}
	if (++t->hop < t->nhops) {
		t_set_state(t, SIP_T_RESOLVING);
		return;
	}
	t_down(t, why, true);
}

/*
 * The server cannot be reached (or was lost): close, back to idle, and
 * fail the transactions (all, or only those not yet answered that were
 * sent when the link broke).  A later transaction starts over.
 */
static void
t_down(struct sip_transport *t, const char *why, bool all)
{
	struct sip_txs	 failed;
	struct sip_tx	*tx, *next;

	/* Collect first (closing forgets what was sent), call back last:
	 * a done callback may start new transactions. */
	TAILQ_INIT(&failed);
	for (tx = TAILQ_FIRST(&t->txs); tx != NULL; tx = next) {
		next = TAILQ_NEXT(tx, entry);
		if (!all && !tx->sent)
			continue;
		TAILQ_REMOVE(&t->txs, tx, entry);
		TAILQ_INSERT_TAIL(&failed, tx, entry);
	}
	snprintf(t->last_error, sizeof t->last_error, "%s", why);
	t->ok = false;
	t_reset(t);
	/* Those not sent yet try again from scratch. */
	if (!TAILQ_EMPTY(&t->txs))
		t_set_state(t, SIP_T_LOCATING);
	while ((tx = TAILQ_FIRST(&failed)) != NULL) {
		TAILQ_REMOVE(&failed, tx, entry);
		TAILQ_INSERT_TAIL(&t->txs, tx, entry);
		tx_end(tx, NULL, why);
	}
}

/* Close and forget the located hops: back to idle. */
static void
t_reset(struct sip_transport *t)
{
	size_t	 i;

	t_close(t);
	sip_locate_cancel(t->loc);
	t->loc = NULL;
	for (i = 0; i < t->nhops; i++)
		free(t->hops[i].host);
	free(t->hops);
	t->hops = NULL;
	t->nhops = t->hop = 0;
	free(t->addrs);
	t->addrs = NULL;
	t->naddrs = t->addr = 0;
	t_set_state(t, SIP_T_IDLE);
}

/* Close the socket or connection, keep located hops. */
static void
t_close(struct sip_transport *t)
{
	struct sip_tx	*tx;

	dns_cancel(t->req);
	t->req = NULL;
	if (t->udp_fd != -1) {
		event_del(&t->udp_ev);
		close(t->udp_fd);
		t->udp_fd = -1;
	}
	netconn_free(t->conn);
	t->conn = NULL;
	buf_free(&t->rx);
	/* Nothing was sent on the new link yet. */
	TAILQ_FOREACH(tx, &t->txs, entry) {
		evtimer_del(&tx->timer_e);
		tx->sent = false;
		buf_free(&tx->msg);
	}
}

/* ---- transactions ---- */

struct sip_tx *
sip_tx_start(struct sip_transport *t, sip_tx_build_cb build,
    sip_tx_done_cb done, void *arg)
{
	struct sip_tx	*tx;
	struct timeval	 tv;

	tx = xcalloc(1, sizeof *tx);
	tx->t = t;
	tx->build = build;
	tx->done = done;
	tx->arg = arg;
	memcpy(tx->branch, "z9hG4bK", 7);
	sip_token(tx->branch + 7, 12);
	evtimer_assign(&tx->timer_e, t->base, tx_timer_e, tx);
	evtimer_assign(&tx->timer_f, t->base, tx_timer_f, tx);
	tv_ms(&tv, 64 * t->o.t1);
	evtimer_add(&tx->timer_f, &tv);
	TAILQ_INSERT_TAIL(&t->txs, tx, entry);
	hashmap_put(t->by_branch, tx->branch, tx);
	t->ntx++;
	if (t->state == SIP_T_IDLE)
		t_set_state(t, SIP_T_LOCATING);
	else if (t->state == SIP_T_UP)
		t_send(t, tx);
	return (tx);
}

void
sip_tx_cancel(struct sip_tx *tx)
{
	if (tx == NULL)
		return;
	TAILQ_REMOVE(&tx->t->txs, tx, entry);
	tx_free(tx);
}

/* Unlink-free: tx is already off t->txs. */
static void
tx_free(struct sip_tx *tx)
{
	hashmap_remove(tx->t->by_branch, tx->branch);
	tx->t->ntx--;
	evtimer_del(&tx->timer_e);
	evtimer_del(&tx->timer_f);
	buf_free(&tx->msg);
	free(tx);
}

/* Finish tx (on t->txs) with resp or why; the callback comes last. */
static void
tx_end(struct sip_tx *tx, const struct sip_response *resp, const char *why)
{
	sip_tx_done_cb	 done = tx->done;
	void		*arg = tx->arg;

	TAILQ_REMOVE(&tx->t->txs, tx, entry);
	tx_free(tx);
	done(resp, why, arg);
}

static void
t_send_waiting(struct sip_transport *t)
{
	struct sip_tx	*tx;

	TAILQ_FOREACH(tx, &t->txs, entry)
		if (!tx->sent)
			t_send(t, tx);
}

static void
t_send(struct sip_transport *t, struct sip_tx *tx)
{
	struct timeval	 tv;

	buf_reset(&tx->msg);
	tx->build(&tx->msg, sip_proto_via(t->hops[t->hop].proto), t->via_host,
	    tx->branch, tx->arg);
	tx->sent = true;
	tx->sent_at = time_mono_ms();
	t_xmit(t, tx);
	if (t->udp_fd != -1) {
		tx->interval = t->o.t1;
		tv_ms(&tv, tx->interval);
		evtimer_add(&tx->timer_e, &tv);
	}
}

/* Put tx's bytes on the wire (again). */
static void
t_xmit(struct sip_transport *t, struct sip_tx *tx)
{
	if (t->conn != NULL) {
		netconn_write(t->conn, tx->msg.data, tx->msg.len);
		return;
	}
	if (send(t->udp_fd, tx->msg.data, tx->msg.len, MSG_NOSIGNAL) == -1 &&
	    errno != EAGAIN && errno != EWOULDBLOCK && errno != ENOBUFS) {
		/* ICMP port unreachable from an earlier datagram.  Not now:
		 * the caller may be walking the transaction list. */
		snprintf(t->down_why, sizeof t->down_why, "%s: %s", t->peer,
		    strerror(errno));
		event_active(&t->down_ev, EV_TIMEOUT, 1);
	}
}

static void
t_down_cb(evutil_socket_t fd, short what, void *arg)
{
	struct sip_transport	*t = arg;
	char			 why[sizeof t->down_why];

	memcpy(why, t->down_why, sizeof why);
	if (t->state == SIP_T_UP)
		t_down(t, why, false);
}

/* Timer E: retransmit over UDP, doubling up to T2 (T2 after a 1xx). */
static void
tx_timer_e(evutil_socket_t fd, short what, void *arg)
{
	struct sip_tx		*tx = arg;
	struct sip_transport	*t = tx->t;
	struct timeval		 tv;

	if (t->state != SIP_T_UP || t->udp_fd == -1)
		return;
	tx->interval = tx->provisional ? t->o.t2 :
	    (tx->interval * 2 < t->o.t2 ? tx->interval * 2 : t->o.t2);
	tv_ms(&tv, tx->interval);
	evtimer_add(&tx->timer_e, &tv);
	t_xmit(t, tx);
}

/* Timer F: the transaction timed out. */
static void
tx_timer_f(evutil_socket_t fd, short what, void *arg)
{
	struct sip_tx		*tx = arg;
	struct sip_transport	*t = tx->t;
	char			 why[200];
	bool			 silent;

	snprintf(why, sizeof why, "no response from %s in %lld ms",
	    t->state == SIP_T_UP ? t->peer : sip_tstate_names[t->state],
	    (long long)(64 * t->o.t1));
	/* Nothing at all heard since it went out: the server is gone. */
	silent = !tx->sent || t->last_rx < tx->sent_at;
	if (silent) {
		t->ok = false;
		snprintf(t->last_error, sizeof t->last_error, "%s", why);
	}
	tx_end(tx, NULL, why);
	if (silent && t->state != SIP_T_IDLE && TAILQ_EMPTY(&t->txs))
		t_reset(t);
}

/* ---- receiving ---- */

static void
t_udp_cb(evutil_socket_t fd, short what, void *arg)
{
	struct sip_transport	*t = arg;
	char			 data[SIP_MSG_MAX + 1], why[200];
	ssize_t			 n;
	int			 i;

	for (i = 0; i < 64 && t->udp_fd == fd; i++) {
		n = recv(fd, data, sizeof data, 0);
		if (n == -1) {
			if (errno == EAGAIN || errno == EWOULDBLOCK ||
			    errno == EINTR)
				return;
			snprintf(why, sizeof why, "%s: %s", t->peer,
			    strerror(errno));
			t_down(t, why, false);
			return;
		}
		if ((size_t)n > SIP_MSG_MAX)
			continue;	/* truncated: cannot be ours */
		t_receive(t, data, (size_t)n);
	}
}

static void
t_conn_read(struct netconn *c, struct evbuffer *in, void *arg)
{
	struct sip_transport	*t = arg;
	size_t			 skip, len, n;
	char			*cause = NULL, why[200];
	unsigned char		*p;
	int			 rc;

	while ((n = evbuffer_get_length(in)) > 0 && t->conn == c) {
		p = evbuffer_pullup(in, (ssize_t)(n < 2 * SIP_MSG_MAX ? n :
		    2 * SIP_MSG_MAX));
		rc = sip_frame((const char *)p, n < 2 * SIP_MSG_MAX ? n :
		    2 * SIP_MSG_MAX, SIP_MSG_MAX, &skip, &len, &cause);
		if (rc == -1) {
			snprintf(why, sizeof why, "%s: %s", t->peer, cause);
			free(cause);
			t_down(t, why, false);
			return;
		}
		evbuffer_drain(in, skip);
		if (rc == 0)
			return;
		/* t_receive may close the connection: copy first. */
		buf_reset(&t->rx);
		buf_append(&t->rx, p + skip, len);
		evbuffer_drain(in, len);
		t_receive(t, t->rx.data, t->rx.len);
	}
}

static void
t_conn_event(struct netconn *c, enum netconn_event ev, const char *why,
    void *arg)
{
	struct sip_transport	*t = arg;
	char			 msg[240];

	switch (ev) {
	case NETCONN_CONNECTED:
		if (netconn_local(c, t->via_host, sizeof t->via_host) == -1)
			snprintf(t->via_host, sizeof t->via_host,
			    "ewsgw.invalid");
		t_set_state(t, SIP_T_UP);
		break;
	case NETCONN_DRAINED:
		break;
	case NETCONN_CLOSED:
		/* Servers close idle connections: only a loss if
		 * something was waiting for an answer on it. */
		snprintf(msg, sizeof msg, "%s closed the connection",
		    t->peer);
		if (TAILQ_EMPTY(&t->txs))
			t_reset(t);
		else
			t_down(t, msg, false);
		break;
	case NETCONN_ERROR:
		snprintf(msg, sizeof msg, "%s: %s", t->peer, why);
		if (t->state == SIP_T_CONNECTING)
			t_fail_hop(t, msg);
		else
			t_down(t, msg, false);
		break;
	}
}

/* One message from the server. */
static void
t_receive(struct sip_transport *t, const char *data, size_t len)
{
	struct sip_response	 r;
	struct sip_tx		*tx;
	char			*cause = NULL;

	t->last_rx = time_mono_ms();
	t->ok = true;
	if (sip_response_parse(data, len, &r, &cause) != 1) {
		/* Requests (OPTIONS pings and the like) and garbage are
		 * not for a publisher; retransmission copes with loss. */
		free(cause);
		return;
	}
	tx = hashmap_get(t->by_branch, r.branch);
	if (tx == NULL || !tx->sent ||
	    strcmp(r.cseq_method, "PUBLISH") != 0) {
		sip_response_clear(&r);
		return;		/* late retransmission or not ours */
	}
	if (r.status < 200) {
		tx->provisional = true;
		sip_response_clear(&r);
		return;
	}
	tx_end(tx, &r, NULL);
	sip_response_clear(&r);
}
