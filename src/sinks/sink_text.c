/*
 * ewsgw - Exchange calendar presence gateway
 * SPDX-License-Identifier: ISC
 *
 * Human notes and XML escaping shared by the sip and xmpp sinks.
 */
#include "config.h"

#include <string.h>

#include "base/buf.h"
#include "sinks/sink_text.h"

const char *
sink_text_note(const struct ewsgw_presence_change *c)
{
	static const struct {
		const char	*key;
		const char	*note;
	} act[] = {
		{ "meeting", "In a meeting" },
		{ "tentative", "Tentatively in a meeting" },
		{ "out-of-office", "Out of office" },
		{ "working-elsewhere", "Working elsewhere" },
	}, pres[] = {
		{ "available", "Available" },
		{ "busy", "Busy" },
		{ "away", "Away" },
	};
	size_t	 i;

	for (i = 0; c->activity != NULL && i < sizeof act / sizeof act[0];
	    i++)
		if (strcmp(c->activity, act[i].key) == 0)
			return (act[i].note);
	for (i = 0; c->presence != NULL && i < sizeof pres / sizeof pres[0];
	    i++)
		if (strcmp(c->presence, pres[i].key) == 0)
			return (pres[i].note);
	return ("Unknown");
}

void
sink_text_xml(struct buf *b, const char *s)
{
	const unsigned char	*p;

	for (p = (const unsigned char *)s; *p != '\0'; p++) {
		switch (*p) {
		case '&':
			buf_puts(b, "&amp;");
			break;
		case '<':
			buf_puts(b, "&lt;");
			break;
		case '>':
			buf_puts(b, "&gt;");
			break;
		case '"':
			buf_puts(b, "&quot;");
			break;
		case '\'':
			buf_puts(b, "&apos;");
			break;
		default:
			if (*p >= 0x20 || *p == '\t' || *p == '\n' ||
			    *p == '\r')
				buf_putc(b, (char)*p);
			break;
		}
	}
}
