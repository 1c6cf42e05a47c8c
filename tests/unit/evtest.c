/*
 * ewsgw - Exchange calendar presence gateway
 * SPDX-License-Identifier: ISC
 *
 * Test helpers: an in-loop evhttp server and deadline loop runners.
 */
#include "config.h"

#include <sys/socket.h>
#include <netinet/in.h>
#include <arpa/inet.h>

#include <stdlib.h>
#include <string.h>

#include <event2/buffer.h>

#include "evtest.h"
#include "base/xmalloc.h"

struct evhttp *
evtest_server(struct event_base *base,
    void (*cb)(struct evhttp_request *, void *), void *arg, unsigned *port)
{
	struct evhttp			*h;
	struct evhttp_bound_socket	*bs;
	struct sockaddr_in		 sin;
	socklen_t			 slen = sizeof sin;

	h = evhttp_new(base);
	evhttp_set_gencb(h, cb, arg);
	evhttp_set_allowed_methods(h, EVHTTP_REQ_GET | EVHTTP_REQ_POST |
	    EVHTTP_REQ_PUT);
	if ((bs = evhttp_bind_socket_with_handle(h, "127.0.0.1", 0)) == NULL ||
	    getsockname(evhttp_bound_socket_get_fd(bs),
	    (struct sockaddr *)&sin, &slen) != 0) {
		evhttp_free(h);
		return (NULL);
	}
	*port = ntohs(sin.sin_port);
	return (h);
}

static void
evtest_expired(evutil_socket_t fd, short ev, void *arg)
{
	*(bool *)arg = true;
}

bool
evtest_run_until(struct event_base *base, bool *flag, int ms)
{
	struct event	*t;
	struct timeval	 tv = { ms / 1000, (ms % 1000) * 1000 };
	bool		 expired = false;

	t = evtimer_new(base, evtest_expired, &expired);
	evtimer_add(t, &tv);
	while (!*flag && !expired)
		event_base_loop(base, EVLOOP_ONCE);
	event_free(t);
	return (*flag);
}

void
evtest_run_for(struct event_base *base, int ms)
{
	bool	 never = false;

	evtest_run_until(base, &never, ms);
}

char *
evtest_body(struct evhttp_request *req)
{
	struct evbuffer	*in = evhttp_request_get_input_buffer(req);
	size_t		 len = evbuffer_get_length(in);
	char		*s;

	s = xmalloc(len + 1);
	evbuffer_copyout(in, s, len);
	s[len] = '\0';
	return (s);
}

char *
evtest_header(struct evhttp_request *req, const char *name)
{
	const char	*v;

	v = evhttp_find_header(evhttp_request_get_input_headers(req), name);
	return (v != NULL ? xstrdup(v) : NULL);
}

void
evtest_reply(struct evhttp_request *req, int status, const char *body)
{
	struct evbuffer	*out = evbuffer_new();

	if (body != NULL)
		evbuffer_add(out, body, strlen(body));
	evhttp_send_reply(req, status, status == 200 ? "OK" : "Status", out);
	evbuffer_free(out);
}
