/*
 * ewsgw - Exchange calendar presence gateway
 * SPDX-License-Identifier: ISC
 *
 * Who could have replaced a file: its owner and the directories above.
 */
#include "config.h"

#include <sys/stat.h>

#include <errno.h>
#include <limits.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "base/safepath.h"

/* One file or directory; 0 or -1 with why. */
static int
safe_one(const char *p, bool dir, uid_t me, char *why, size_t whylen)
{
	struct stat	 sb;
	unsigned	 mode;

	if (stat(p, &sb) == -1) {
		snprintf(why, whylen, "%s: %s", p, strerror(errno));
		return (-1);
	}
	/* From here on: there, but not to be trusted. */
	mode = (unsigned)(sb.st_mode & 07777);
	if (!dir && !S_ISREG(sb.st_mode)) {
		snprintf(why, whylen, "%s is not a regular file", p);
		return (-2);
	}
	if (sb.st_uid != 0 && sb.st_uid != me) {
		snprintf(why, whylen, "%s belongs to uid %u, neither root nor "
		    "the daemon's user (uid %u): chown it", p,
		    (unsigned)sb.st_uid, (unsigned)me);
		return (-2);
	}
	/* A sticky directory keeps others from replacing our entries. */
	if (dir && (sb.st_mode & S_ISVTX) && (sb.st_mode & S_IWOTH))
		return (0);
	if (sb.st_mode & (S_IWGRP | S_IWOTH)) {
		snprintf(why, whylen, "%s is writable by %s (mode %04o): "
		    "chmod go-w it", p, (sb.st_mode & S_IWOTH) ? "everyone" :
		    "its group", mode);
		return (-2);
	}
	return (0);
}

int
safe_path_check(const char *path, uid_t me, char *why, size_t whylen)
{
	char	 real[PATH_MAX], *slash;
	int	 rv;

	if (realpath(path, real) == NULL) {
		snprintf(why, whylen, "%s: %s", path, strerror(errno));
		return (-1);
	}
	if ((rv = safe_one(real, false, me, why, whylen)) != 0)
		return (rv);
	while ((slash = strrchr(real, '/')) != NULL) {
		if (slash == real) {
			/* The root directory. */
			real[1] = '\0';
			return (safe_one(real, true, me, why, whylen));
		}
		*slash = '\0';
		if ((rv = safe_one(real, true, me, why, whylen)) != 0)
			return (rv);
	}
	return (0);
}
