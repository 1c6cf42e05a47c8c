/*
 * ewsgw - Exchange calendar presence gateway
 * SPDX-License-Identifier: ISC
 *
 * Push mode: the listener Exchange POSTs SendNotification to, tied to
 * the mailboxes whose subscriptions it names.
 */
#ifndef EWSGW_PUSHRECV_H
#define EWSGW_PUSHRECV_H

#include <stdint.h>

struct json_writer;
struct manager;
struct pushrecv;

/* Listen on [push] listen; NULL with *cause on failure. */
struct pushrecv	*pushrecv_new(struct manager *, char **cause);
/* Stop accepting (shutdown); answers Unsubscribe meanwhile. */
void		 pushrecv_stop(struct pushrecv *);
void		 pushrecv_free(struct pushrecv *);
uint64_t	 pushrecv_received(const struct pushrecv *);
/*
 * The notification URL to register with Subscribe: [push] url with the
 * listener's secret token (borrowed; never log it).
 */
const char	*pushrecv_url(const struct pushrecv *);
/* The listener's counters as one JSON object value (status). */
void		 pushrecv_json(const struct pushrecv *, struct json_writer *);

#endif
