/*
 * ewsgw - Exchange calendar presence gateway
 * SPDX-License-Identifier: ISC
 *
 * Sequence numbers for presence changes that stay unique and increasing
 * across restarts and reloads without a disk write per change: numbers
 * come from a block reserved in the state directory, one durable write
 * per SEQSTORE_BLOCK numbers.
 */
#ifndef EWSGW_SEQSTORE_H
#define EWSGW_SEQSTORE_H

#include <stdint.h>

/* Numbers reserved by one write of the state file. */
#define SEQSTORE_BLOCK		(1ULL << 20)
/* Name of the state file inside the state directory. */
#define SEQSTORE_FILE		"seq"
/* The wall clock floor counts microseconds from 2020-01-01T00:00:00Z. */
#define SEQSTORE_EPOCH_S	1577836800LL

/*
 * Every number handed out is larger than every number handed out
 * before, by this process or an earlier one using the same directory:
 *
 *   - the state file holds the end of the reserved block, written (to a
 *     temporary file, fsync, rename, fsync of the directory) before the
 *     first number of the block is used; a new run starts at that end;
 *   - a run never starts below the wall clock in microseconds since
 *     2020-01-01, so without a state directory (or with a lost state
 *     file) a restart still continues above the last run as long as the
 *     clock did not go back.
 *
 * The numbers stay below 2^53 until the 23rd century, so JSON consumers
 * that parse numbers as doubles keep them exact.
 */
struct seqstore;

/*
 * Open the store in dir (borrowed; NULL: no state directory, the clock
 * alone).  now_wall_ms is the wall clock.  Returns NULL with *cause
 * (allocated, caller frees) when dir is set but the first block cannot
 * be reserved there; an unreadable or malformed state file is only
 * reported through seqstore_warning().
 */
struct seqstore	*seqstore_open(const char *dir, int64_t now_wall_ms,
		    char **cause);
/*
 * The next number.  Crossing into a new block writes the state file;
 * if that fails the numbers keep increasing in memory and
 * seqstore_error() says why (the clock floor still covers a restart).
 */
uint64_t	 seqstore_next(struct seqstore *);
/*
 * Taking over mailboxes from another node (cluster mode): continue at
 * no less than the wall clock plus one block.  The other node's numbers
 * stay below that as long as both clocks agree to within the hand-over
 * time: its run started at no more than its clock plus a block (the
 * state file's reservation) and advances by one per change, far slower
 * than the clock's microseconds.
 */
void		 seqstore_floor(struct seqstore *, int64_t now_wall_ms);
/*
 * Move to another directory (reload): continue above both the numbers
 * already used and what the new directory's file holds.  Returns 0, or
 * -1 with *cause (allocated) and the store unchanged.
 */
int		 seqstore_set_dir(struct seqstore *, const char *dir,
		    char **cause);
/* The directory in use (borrowed) or NULL. */
const char	*seqstore_dir(const struct seqstore *);
/*
 * A problem with the state file found on open (borrowed, NULL: none);
 * the last failed block write (borrowed, NULL: none).
 */
const char	*seqstore_warning(const struct seqstore *);
const char	*seqstore_error(const struct seqstore *);
/* Failed block reservations so far. */
uint64_t	 seqstore_failures(const struct seqstore *);
void		 seqstore_free(struct seqstore *);

#endif
