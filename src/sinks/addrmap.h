/*
 * ewsgw - Exchange calendar presence gateway
 * SPDX-License-Identifier: ISC
 *
 * Mailbox address to protocol address (SIP presentity, XMPP JID): a
 * pattern such as "sip:%l@example.com", overridden per mailbox by a
 * mapping file.  Shared by the sip and xmpp sinks.
 */
#ifndef EWSGW_ADDRMAP_H
#define EWSGW_ADDRMAP_H

#include <stdbool.h>

#include <ewsgw/sink.h>

struct addrmap;

/* How the local part is escaped when it is put into the pattern. */
enum addrmap_escape {
	ADDRMAP_SIP,	/* RFC 3261 user part: %XX outside the user set */
	ADDRMAP_JID	/* XEP-0106 JID escaping (\20, \40, ...) */
};

/* Largest mapping file read (a line per mailbox). */
#define ADDRMAP_FILE_MAX	(64 * 1024 * 1024)

/*
 * Check a pattern: %l (local part of the mailbox), %d (its domain), %m
 * (the whole address) and %% are the only escapes, and at least one of
 * %l or %m is used.  Returns 0, or -1 with *cause set (allocated,
 * caller frees).
 */
int		 addrmap_check_pattern(const char *pattern, char **cause);

/*
 * A map from pattern and, when file is not NULL, the mapping file: one
 * "MAILBOX ADDRESS" per line, '#' comments, ADDRESS "-" to leave that
 * mailbox out.  Returns a new map (free with addrmap_free) or NULL with
 * *cause set ("FILE:LINE: message"; allocated, caller frees).  Both
 * strings are copied.
 */
struct addrmap	*addrmap_new(const char *pattern, enum addrmap_escape,
		    const char *file, char **cause);

/*
 * The address for mailbox (allocated, caller frees), or NULL when the
 * mapping file leaves it out.  mailbox is lower case "local@domain".
 */
char		*addrmap_lookup(const struct addrmap *, const char *mailbox);

/*
 * The section's keys: pattern (already read, NULL when missing, which
 * was reported) checked and "mapping_file" read and checked against it.
 * Returns 0, or -1 after reporting with ewsgw_sink_config_error; *file
 * is the mapping file (borrowed) or NULL.
 */
int		 addrmap_config(const struct ewsgw_sink_config *,
		    const char *pattern_key, const char *pattern,
		    enum addrmap_escape, const char **file);

/*
 * Read the mapping file again (SIGHUP).  A file that no longer reads
 * leaves the map as it was and is logged through host.
 */
void		 addrmap_reopen(struct addrmap *, struct ewsgw_host *);

/* Entries read from the file. */
unsigned	 addrmap_overrides(const struct addrmap *);

void		 addrmap_free(struct addrmap *);

#endif
