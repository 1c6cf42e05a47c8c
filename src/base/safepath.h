/*
 * ewsgw - Exchange calendar presence gateway
 * SPDX-License-Identifier: ISC
 *
 * Whether code loaded from a path (a sink plugin) can only have been
 * put there by root or the daemon's user, as sshd checks the files and
 * directories of its keys.
 */
#ifndef EWSGW_SAFEPATH_H
#define EWSGW_SAFEPATH_H

#include <stddef.h>
#include <sys/types.h>

/*
 * Check path (resolved through symbolic links) and every directory
 * above it up to /: each must belong to root or to me (the daemon's
 * user, geteuid()) and must not be writable by group or others; a
 * directory writable by everyone with the sticky bit (/tmp) passes, as
 * nobody else may replace what is in it.  The file itself must be a
 * regular file.  Returns 0; -1 when a name cannot be resolved or
 * examined (why: the path and strerror); -2 when one is not to be
 * trusted (why: the path, the reason and its fix).
 */
int	 safe_path_check(const char *path, uid_t me, char *why,
	    size_t whylen);

#endif
