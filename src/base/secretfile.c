/*
 * ewsgw - Exchange calendar presence gateway
 * SPDX-License-Identifier: ISC
 *
 * One judgement of who may read a secret file.
 */
#include "config.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "base/secretfile.h"

enum secret_verdict
secret_file_judge(const struct stat *sb, bool credential, uid_t me,
    char *why, size_t whylen)
{
	unsigned	 mode = (unsigned)(sb->st_mode & 07777);

	if (sb->st_mode & S_IROTH) {
		snprintf(why, whylen, "is readable by everyone (mode %04o): "
		    "chmod 0600 it, or load it as a systemd credential", mode);
		return (SECRET_REFUSE);
	}
	/* Root (a shell's --check-config) cannot tell the daemon's user. */
	if (me != 0 && sb->st_uid != 0 && sb->st_uid != me) {
		snprintf(why, whylen, "belongs to uid %u, neither root nor "
		    "the daemon's user (uid %u), who can read or replace it: "
		    "chown it to one of them", (unsigned)sb->st_uid,
		    (unsigned)me);
		return (SECRET_REFUSE);
	}
	if ((sb->st_mode & S_IRGRP) && !credential) {
		snprintf(why, whylen, "is readable by its group (mode %04o): "
		    "chmod 0600 it, or load it as a systemd credential", mode);
		return (SECRET_WARN);
	}
	return (SECRET_OK);
}

bool
secret_file_is_credential(const char *path)
{
	const char	*dir = getenv("CREDENTIALS_DIRECTORY");
	size_t		 n = dir != NULL ? strlen(dir) : 0;

	return (n > 0 && strncmp(path, dir, n) == 0 && path[n] == '/');
}
