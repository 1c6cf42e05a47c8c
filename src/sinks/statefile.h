/*
 * ewsgw - Exchange calendar presence gateway
 * SPDX-License-Identifier: ISC
 *
 * The file sink's state document, written off the event loop by a
 * thread of its own.
 *
 * The loop offers a snapshot: the members of the document's
 * "mailboxes" object, each one string holding its sort key, a NUL, then
 * the serialised member ("addr":{...}).  statefile_write() copies the
 * array of pointers (not the text) and returns at once; the thread
 * sorts the members by key (again only when the set of keys changed),
 * joins them into {"mailboxes":{...}} and replaces the file atomically:
 * a temporary file in the same directory, fsync, rename over the old
 * one, fsync of the directory.  A reader sees the old or the new
 * document, never a partial one.  The result comes back to the loop
 * through a pipe, as a call of the done callback.
 *
 * At most one write is in flight.  The caller offers its next snapshot
 * after the done callback (changes made meanwhile coalesce into it),
 * and keeps every string of a snapshot unchanged and allocated until
 * then.
 *
 * The loop never waits for the thread, except in statefile_wait() and
 * statefile_free(), which are for shutdown and reload.
 */
#ifndef EWSGW_STATEFILE_H
#define EWSGW_STATEFILE_H

#include <stdbool.h>
#include <stddef.h>

struct event_base;
struct statefile;

/*
 * A write finished: error 0, or the errno of the step named by what
 * ("create", "write", "rename"; a static string).  The callback may
 * offer the next snapshot.
 */
typedef void	(*statefile_done_cb)(void *, int error, const char *what);

/*
 * Start the writer thread for path (copied).  Returns NULL with errno
 * set if the thread or its pipe cannot be had.
 */
struct statefile	*statefile_new(struct event_base *, const char *path,
			    statefile_done_cb, void *);
/*
 * Wait for a write in flight (its callback is not called), stop the
 * thread, free everything.  NULL is fine.
 */
void			 statefile_free(struct statefile *);
/* A write is in flight: its done callback has not been called yet. */
bool			 statefile_busy(const struct statefile *);
/*
 * Write the document made of the n entries, each "key\0member" as
 * above (the array is copied; the strings are borrowed until the done
 * callback).  keys_changed: an
 * entry came or went since the last snapshot, or one moved in the
 * array; otherwise the thread keeps the order it sorted last time.
 * Not while busy.
 */
void			 statefile_write(struct statefile *,
			    const char *const *, size_t n, bool keys_changed);
/*
 * Block until the write in flight (if any) has finished, then call its
 * done callback.  For shutdown, when the document must be on disk.
 */
void			 statefile_wait(struct statefile *);

#endif
