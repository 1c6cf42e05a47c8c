/*
 * ewsgw - Exchange calendar presence gateway
 * SPDX-License-Identifier: ISC
 *
 * A binary min-heap of deadlines for 100,000+ per-mailbox timers.  The
 * owner embeds a struct timerheap_entry (no allocation per timer) that
 * remembers its heap position: add, remove and update are O(log n), the
 * earliest deadline O(1).  Pure: the caller says what "now" is and in
 * which clock the deadlines are; src/boundary.c puts it on the loop.
 */
#ifndef EWSGW_TIMERHEAP_H
#define EWSGW_TIMERHEAP_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/*
 * Embedded in the owner.  16 bytes: the scheduling order is 32 bits;
 * before it would wrap, the heap numbers its entries again from 0 in
 * the same order (timerheap_set), so ties stay first-set first.
 */
struct timerheap_entry {
	int64_t		 deadline;	/* milliseconds */
	uint32_t	 seq;		/* scheduling order, breaks ties */
	uint32_t	 index;		/* heap slot + 1; 0 = not scheduled */
};

struct timerheap {
	struct timerheap_entry	**heap;		/* owned; entries borrowed */
	uint32_t		  n;
	uint32_t		  cap;
	uint32_t		  seq;		/* next scheduling number */
	uint32_t		  renumbered;	/* times seq started again */
};

/* The owner of an embedded entry: container_of. */
#define timerheap_owner(e, type, member) \
	((type *)(void *)((char *)(e) - offsetof(type, member)))

typedef void	(*timerheap_cb)(struct timerheap_entry *, void *);

void	 timerheap_init(struct timerheap *);
/* Free the array; entries still in it are marked unscheduled. */
void	 timerheap_free(struct timerheap *);
/* An unscheduled entry. */
void	 timerheap_entry_init(struct timerheap_entry *);

/*
 * Schedule e (borrowed until it fires or is removed) at deadline, or
 * move it there if it is already scheduled.  Equal deadlines fire in
 * the order they were set.
 */
void	 timerheap_set(struct timerheap *, struct timerheap_entry *,
	    int64_t deadline);
/* Unschedule e; nothing if it is not scheduled. */
void	 timerheap_remove(struct timerheap *, struct timerheap_entry *);
bool	 timerheap_scheduled(const struct timerheap_entry *);

size_t	 timerheap_count(const struct timerheap *);
/* The earliest entry (still scheduled), or NULL. */
struct timerheap_entry *timerheap_peek(const struct timerheap *);
/* Remove and return the earliest entry, or NULL. */
struct timerheap_entry *timerheap_pop(struct timerheap *);

/*
 * Fire the entries with deadline <= now, earliest first, at most max of
 * them (SIZE_MAX: all): each is removed before cb(entry, arg) runs, so
 * the callback may set it again, remove others or free its owner.
 * Entries set during this call are left for the next call even if
 * already due, so a callback that re-arms at now cannot loop forever
 * (and so is every entry once the heap numbers its entries again during
 * the call).  Returns how many fired.
 */
size_t	 timerheap_pop_due(struct timerheap *, int64_t now, size_t max,
	    timerheap_cb, void *);

#endif
