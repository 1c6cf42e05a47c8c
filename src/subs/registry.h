/*
 * ewsgw - Exchange calendar presence gateway
 * SPDX-License-Identifier: ISC
 *
 * The set of configured mailboxes: by address, by subscription id, and
 * as a list in address order (groups fill and the poller reads in that
 * order).  An index only: it borrows the mailboxes and never frees them.
 * Adding and removing are O(1); the list follows at registry_commit(),
 * so a batch (start-up, reload) sorts once.
 */
#ifndef EWSGW_REGISTRY_H
#define EWSGW_REGISTRY_H

#include <stddef.h>

struct mailbox;
struct registry;

/* Allocated, free with registry_free (which leaves the mailboxes). */
struct registry	*registry_new(void);
void		 registry_free(struct registry *);

/*
 * Index mb (borrowed) under its address (borrowed from mb, no copy:
 * 100,000 of them), which must be new.  It is in
 * the list after the next registry_commit.
 */
void		 registry_add(struct registry *, struct mailbox *);
/*
 * Take mb out: out of both maps at once, out of the list at the next
 * registry_commit (until then the list may still name it, so the owner
 * commits before mb can be freed).
 */
void		 registry_remove(struct registry *, struct mailbox *);
/* Bring the list up to date: removed mailboxes out, sorted by address. */
void		 registry_commit(struct registry *);

/* A mailbox by address in any case; NULL if unknown.  Borrowed. */
struct mailbox	*registry_find(const struct registry *, const char *address);
/* The list (as of the last commit): count and i-th in address order. */
size_t		 registry_count(const struct registry *);
struct mailbox	*registry_at(const struct registry *, size_t);

/*
 * mb holds subscription id now / no longer holds it.  The registry
 * borrows id (as it does addresses): it must stay alive and unchanged
 * until unbound or replaced by another mailbox's bind of the same id.
 */
void		 registry_bind(struct registry *, const char *id,
		    struct mailbox *);
void		 registry_unbind(struct registry *, const char *id,
		    struct mailbox *);
/* The mailbox holding subscription id, or NULL.  Borrowed. */
struct mailbox	*registry_by_subid(const struct registry *, const char *id);

#endif
