/*
 * ewsgw - Exchange calendar presence gateway
 * SPDX-License-Identifier: ISC
 *
 * Polling mode: mailboxes without a subscription (mode = poll, or no
 * room in Exchange's budgets) get their free/busy through
 * GetUserAvailability, up to 100 mailboxes a request, every
 * poll_interval.
 *
 * Not a state machine: a round is a cursor over the registry, each batch
 * in flight is its call's ticket (ews.h), a mailbox's state is the
 * mailbox's (it is read while WATCHING in mode poll), and stopping is a
 * flag that only goes on.
 */
#ifndef EWSGW_POLLER_H
#define EWSGW_POLLER_H

#include <stddef.h>
#include <stdint.h>

struct mailbox;
struct poller;
struct registry;
struct subs_env;

/*
 * A poller over the mailboxes of reg that are in state POLLING; env and
 * reg are borrowed for its life.  Its first round starts on the next
 * loop pass.  Allocated, free with poller_free.
 */
struct poller	*poller_new(const struct subs_env *, struct registry *);
/* Start no more batches (shutdown). */
void		 poller_stop(struct poller *);
void		 poller_free(struct poller *);
/* Read this mailbox in the next batch, soon. */
void		 poller_poll_now(struct poller *, struct mailbox *);
/* The mailbox is going away. */
void		 poller_forget(struct poller *, struct mailbox *);
/* New interval after a reload. */
void		 poller_reload(struct poller *);

#endif
