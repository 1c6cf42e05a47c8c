/*
 * ewsgw - Exchange calendar presence gateway
 * SPDX-License-Identifier: ISC
 *
 * The mailbox index: two hash maps and a list sorted at commit.
 */
#include "config.h"

#include <stdbool.h>
#include <stdlib.h>
#include <string.h>

#include "base/hashmap.h"
#include "base/xmalloc.h"
#include "subs/mailbox.h"
#include "subs/registry.h"

struct registry {
	struct hashmap	 *by_address;	/* address -> mailbox */
	struct hashmap	 *by_subid;	/* subscription id -> mailbox */
	struct mailbox	**list;		/* address order after commit */
	size_t		  n;
	size_t		  cap;
	bool		  dirty;	/* added or removed since commit */
};

struct registry *
registry_new(void)
{
	struct registry	*r;

	r = xcalloc(1, sizeof *r);
	/* Keys borrowed from the mailboxes: their address and sub_id. */
	r->by_address = hashmap_new_borrowing();
	r->by_subid = hashmap_new_borrowing();
	return (r);
}

void
registry_free(struct registry *r)
{
	if (r == NULL)
		return;
	hashmap_free(r->by_address, NULL);
	hashmap_free(r->by_subid, NULL);
	free(r->list);
	free(r);
}

void
registry_add(struct registry *r, struct mailbox *mb)
{
	hashmap_put(r->by_address, mailbox_address(mb), mb);
	if (r->n == r->cap) {
		r->cap = r->cap ? r->cap * 2 : 64;
		r->list = xreallocarray(r->list, r->cap, sizeof *r->list);
	}
	r->list[r->n++] = mb;
	r->dirty = true;
}

void
registry_remove(struct registry *r, struct mailbox *mb)
{
	if (hashmap_get(r->by_address, mailbox_address(mb)) == mb)
		hashmap_remove(r->by_address, mailbox_address(mb));
	if (mailbox_sub_id(mb) != NULL)
		registry_unbind(r, mailbox_sub_id(mb), mb);
	r->dirty = true;
}

static int
cmp_address(const void *a, const void *b)
{
	struct mailbox *const	*x = a, *const *y = b;

	return (strcmp(mailbox_address(*x), mailbox_address(*y)));
}

void
registry_commit(struct registry *r)
{
	size_t	 i, j;

	if (!r->dirty)
		return;
	for (i = j = 0; i < r->n; i++)
		if (hashmap_get(r->by_address, mailbox_address(r->list[i])) ==
		    r->list[i])
			r->list[j++] = r->list[i];
	r->n = j;
	qsort(r->list, r->n, sizeof *r->list, cmp_address);
	/* A batch is over: no slack kept for 100,000 mailboxes. */
	r->cap = r->n;
	r->list = xreallocarray(r->list, r->cap ? r->cap : 1,
	    sizeof *r->list);
	r->dirty = false;
}

struct mailbox *
registry_find(const struct registry *r, const char *address)
{
	struct mailbox	*mb;
	char		*lower, *p;

	lower = xstrdup(address);
	for (p = lower; *p != '\0'; p++)
		if (*p >= 'A' && *p <= 'Z')
			*p = (char)(*p - 'A' + 'a');
	mb = hashmap_get(r->by_address, lower);
	free(lower);
	return (mb);
}

size_t
registry_count(const struct registry *r)
{
	return (r->n);
}

struct mailbox *
registry_at(const struct registry *r, size_t i)
{
	return (i < r->n ? r->list[i] : NULL);
}

void
registry_bind(struct registry *r, const char *id, struct mailbox *mb)
{
	hashmap_put(r->by_subid, id, mb);
}

void
registry_unbind(struct registry *r, const char *id, struct mailbox *mb)
{
	if (hashmap_get(r->by_subid, id) == mb)
		hashmap_remove(r->by_subid, id);
}

struct mailbox *
registry_by_subid(const struct registry *r, const char *id)
{
	return (id != NULL ? hashmap_get(r->by_subid, id) : NULL);
}
