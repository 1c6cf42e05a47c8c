/*
 * ewsgw - Exchange calendar presence gateway
 * SPDX-License-Identifier: ISC
 *
 * Test helpers for loop-driven tests: an evhttp server on 127.0.0.1 in
 * the test's own event loop, and loop runners with a deadline.
 */
#ifndef EWSGW_EVTEST_H
#define EWSGW_EVTEST_H

#include <stdbool.h>

#include <event2/event.h>
#include <event2/http.h>

/* An evhttp server on 127.0.0.1:0 calling cb; sets *port.  Caller frees
 * with evhttp_free. */
struct evhttp	*evtest_server(struct event_base *,
		    void (*)(struct evhttp_request *, void *), void *,
		    unsigned *port);
/* Run the loop until *flag is true or ms passed; returns *flag. */
bool		 evtest_run_until(struct event_base *, bool *, int ms);
/* Run the loop for ms. */
void		 evtest_run_for(struct event_base *, int ms);
/* The request body as a string (allocated, caller frees). */
char		*evtest_body(struct evhttp_request *);
/* A request header (allocated, caller frees) or NULL. */
char		*evtest_header(struct evhttp_request *, const char *);
/* Reply with status and a string body (NULL = empty). */
void		 evtest_reply(struct evhttp_request *, int, const char *);

#endif
