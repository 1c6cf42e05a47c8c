/*
 * ewsgw - Exchange calendar presence gateway
 * SPDX-License-Identifier: ISC
 *
 * Address patterns and the per-mailbox mapping file of the sip and
 * xmpp sinks.
 */
#include "config.h"

#include <ctype.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <syslog.h>

#include "base/buf.h"
#include "base/hashmap.h"
#include "base/xmalloc.h"
#include "sinks/addrmap.h"

/* The mapping file's "leave it out" marker, stored as this value. */
static char	 addrmap_none[] = "-";

struct addrmap {
	char			*pattern;
	char			*file;		/* or NULL */
	enum addrmap_escape	 esc;
	struct hashmap		*over;		/* mailbox -> address */
	unsigned		 nover;
};

static void	 put_escaped(struct buf *, const char *, size_t,
		    enum addrmap_escape);
static int	 read_file(struct addrmap *, const char *, char **);
static void	 free_value(void *);

int
addrmap_check_pattern(const char *pattern, char **cause)
{
	const char	*p;
	int		 user = 0;

	for (p = pattern; *p != '\0'; p++) {
		if (*p != '%')
			continue;
		switch (p[1]) {
		case 'l':
		case 'm':
			user = 1;
			/* FALLTHROUGH */
		case 'd':
		case '%':
			p++;
			break;
		default:
			xasprintf(cause, "unknown escape '%%%.1s' in '%s' "
			    "(%%l, %%d, %%m and %%%% are known)", p + 1,
			    pattern);
			return (-1);
		}
	}
	if (!user) {
		xasprintf(cause, "'%s' uses neither %%l nor %%m, so every "
		    "mailbox would get the same address", pattern);
		return (-1);
	}
	return (0);
}

/*
 * Append s (n bytes) as the user part of the target protocol.
 * SIP: RFC 3261 user = unreserved / escaped / user-unreserved.
 * JID: XEP-0106 escapes for the characters a localpart may not hold.
 */
static void
put_escaped(struct buf *b, const char *s, size_t n, enum addrmap_escape esc)
{
	static const char	 sip_ok[] = "-_.!~*'()&=+$,;?/";
	static const char	 jid_bad[] = " \"&'/:<>@\\";
	unsigned char		 c;
	size_t			 i;

	for (i = 0; i < n; i++) {
		c = (unsigned char)s[i];
		if (esc == ADDRMAP_SIP) {
			if (isalnum(c) || strchr(sip_ok, c) != NULL)
				buf_putc(b, (char)c);
			else
				buf_printf(b, "%%%02X", c);
		} else {
			if (c != '\0' && strchr(jid_bad, c) != NULL)
				buf_printf(b, "\\%02x", c);
			else
				buf_putc(b, (char)c);
		}
	}
}

static void
free_value(void *v)
{
	if (v != addrmap_none)
		free(v);
}

/* Read "MAILBOX ADDRESS" lines into m->over. */
static int
read_file(struct addrmap *m, const char *path, char **cause)
{
	FILE		*f;
	char		*line = NULL, *p, *mb, *addr, *end;
	size_t		 cap = 0, total = 0;
	ssize_t		 n;
	unsigned	 lineno = 0;
	int		 rc = -1;

	if ((f = fopen(path, "re")) == NULL) {
		xasprintf(cause, "%s: %s", path, strerror(errno));
		return (-1);
	}
	while ((n = getline(&line, &cap, f)) != -1) {
		lineno++;
		total += (size_t)n;
		if (total > ADDRMAP_FILE_MAX) {
			xasprintf(cause, "%s:%u: file larger than %d bytes",
			    path, lineno, ADDRMAP_FILE_MAX);
			goto done;
		}
		if ((p = strchr(line, '#')) != NULL)
			*p = '\0';
		mb = line + strspn(line, " \t\r\n");
		if (*mb == '\0')
			continue;
		end = mb + strcspn(mb, " \t\r\n");
		addr = end + strspn(end, " \t\r\n");
		*end = '\0';
		end = addr + strcspn(addr, " \t\r\n");
		if (*addr == '\0' || end[strspn(end, " \t\r\n")] != '\0') {
			xasprintf(cause, "%s:%u: expected \"MAILBOX ADDRESS\"",
			    path, lineno);
			goto done;
		}
		*end = '\0';
		if (strchr(mb, '@') == NULL) {
			xasprintf(cause, "%s:%u: '%s' is not a mailbox "
			    "address", path, lineno, mb);
			goto done;
		}
		for (p = mb; *p != '\0'; p++)
			*p = (char)tolower((unsigned char)*p);
		if (hashmap_get(m->over, mb) != NULL) {
			xasprintf(cause, "%s:%u: %s is mapped twice", path,
			    lineno, mb);
			goto done;
		}
		hashmap_put(m->over, mb, strcmp(addr, "-") == 0 ?
		    addrmap_none : xstrdup(addr));
		m->nover++;
	}
	if (ferror(f)) {
		xasprintf(cause, "%s: %s", path, strerror(errno));
		goto done;
	}
	rc = 0;
done:
	free(line);
	fclose(f);
	return (rc);
}

struct addrmap *
addrmap_new(const char *pattern, enum addrmap_escape esc, const char *file,
    char **cause)
{
	struct addrmap	*m;

	if (addrmap_check_pattern(pattern, cause) == -1)
		return (NULL);
	m = xcalloc(1, sizeof *m);
	m->pattern = xstrdup(pattern);
	m->file = file != NULL ? xstrdup(file) : NULL;
	m->esc = esc;
	m->over = hashmap_new();
	if (file != NULL && read_file(m, file, cause) == -1) {
		addrmap_free(m);
		return (NULL);
	}
	return (m);
}

int
addrmap_config(const struct ewsgw_sink_config *c, const char *pattern_key,
    const char *pattern, enum addrmap_escape esc, const char **file)
{
	struct addrmap	*m;
	char		*cause = NULL;

	*file = ewsgw_sink_config_get(c, "mapping_file");
	if (pattern == NULL)
		return (-1);
	if (addrmap_check_pattern(pattern, &cause) == -1) {
		ewsgw_sink_config_error(c, pattern_key, "%s", cause);
		free(cause);
		return (-1);
	}
	if (*file == NULL)
		return (0);
	if ((m = addrmap_new(pattern, esc, *file, &cause)) == NULL) {
		ewsgw_sink_config_error(c, "mapping_file", "%s", cause);
		free(cause);
		return (-1);
	}
	addrmap_free(m);
	return (0);
}

void
addrmap_reopen(struct addrmap *m, struct ewsgw_host *host)
{
	struct addrmap	*fresh;
	struct hashmap	*h;
	unsigned	 n;
	char		*cause = NULL;

	if (m->file == NULL)
		return;
	if ((fresh = addrmap_new(m->pattern, m->esc, m->file,
	    &cause)) == NULL) {
		ewsgw_host_log(host, LOG_WARNING, "keeping the old mapping: "
		    "%s", cause);
		free(cause);
		return;
	}
	h = m->over;
	n = m->nover;
	m->over = fresh->over;
	m->nover = fresh->nover;
	fresh->over = h;
	fresh->nover = n;
	addrmap_free(fresh);
}

char *
addrmap_lookup(const struct addrmap *m, const char *mailbox)
{
	struct buf	 b = BUF_INIT;
	const char	*p, *at, *v;

	if ((v = hashmap_get(m->over, mailbox)) != NULL)
		return (v == addrmap_none ? NULL : xstrdup(v));
	if ((at = strrchr(mailbox, '@')) == NULL)
		at = mailbox + strlen(mailbox);
	for (p = m->pattern; *p != '\0'; p++) {
		if (*p != '%' || p[1] == '\0') {
			buf_putc(&b, *p);
			continue;
		}
		switch (*++p) {
		case 'l':
			put_escaped(&b, mailbox, (size_t)(at - mailbox),
			    m->esc);
			break;
		case 'd':
			buf_puts(&b, *at == '@' ? at + 1 : "");
			break;
		case 'm':
			put_escaped(&b, mailbox, strlen(mailbox), m->esc);
			break;
		default:
			buf_putc(&b, *p);
			break;
		}
	}
	return (buf_steal(&b));
}

unsigned
addrmap_overrides(const struct addrmap *m)
{
	return (m->nover);
}

void
addrmap_free(struct addrmap *m)
{
	if (m == NULL)
		return;
	hashmap_free(m->over, free_value);
	free(m->pattern);
	free(m->file);
	free(m);
}
