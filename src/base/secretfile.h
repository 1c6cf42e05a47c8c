/*
 * ewsgw - Exchange calendar presence gateway
 * SPDX-License-Identifier: ISC
 *
 * Who may read a file that holds a secret (the EWS password or client
 * secret, a sink's password, token or component secret): one judgement
 * for all of them, so that every secret file gets the same checks.
 */
#ifndef EWSGW_SECRETFILE_H
#define EWSGW_SECRETFILE_H

#include <stdbool.h>
#include <stddef.h>

#include <sys/stat.h>

enum secret_verdict {
	SECRET_OK,
	SECRET_WARN,	/* usable, but say why (its group may read it) */
	SECRET_REFUSE	/* not a secret any more */
};

/*
 * Judge a secret file from its status: refused when everyone may read
 * it or when it belongs to a user other than root and the daemon's
 * (that user can read or replace it; me is the daemon's, geteuid(); not
 * judged when me is root, who cannot tell the daemon's user); a warning
 * when its group may read it, unless it is a systemd credential
 * (credential: the file lies in $CREDENTIALS_DIRECTORY, which systemd
 * keeps private).  For anything
 * but SECRET_OK, why receives the reason and the fix, to follow the
 * file's name ("is readable by everyone (mode 0644): chmod 0600 it...").
 */
enum secret_verdict secret_file_judge(const struct stat *, bool credential,
		    uid_t me, char *why, size_t whylen);

/* Whether path lies in $CREDENTIALS_DIRECTORY. */
bool		 secret_file_is_credential(const char *path);

#endif
