/*
 * ewsgw - Exchange calendar presence gateway
 * SPDX-License-Identifier: ISC
 *
 * PIDF + RPID documents for the sip sink.  Element order follows the
 * schemas: presence holds tuple, note, then other namespaces (the
 * person); rpid:activities holds its activities after any note.
 */
#include "config.h"

#include <string.h>

#include "base/buf.h"
#include "base/timeutil.h"
#include "sinks/sink_text.h"
#include "sinks/sip_pidf.h"

static void	 put_time_attr(struct buf *, const char *, int64_t);

bool
sip_pidf_publishes(const struct ewsgw_presence_change *c)
{
	return (c->presence != NULL && strcmp(c->presence, "unknown") != 0);
}

static void
put_time_attr(struct buf *b, const char *name, int64_t t)
{
	char	 ts[TIME_ISO8601_LEN];

	if (t <= 0)
		return;
	time_format_iso8601(t, ts);
	buf_printf(b, " %s=\"%s\"", name, ts);
}

void
sip_pidf_write(struct buf *b, const char *entity,
    const struct ewsgw_presence_change *c)
{
	const char	*note = sink_text_note(c);
	const char	*act = c->activity != NULL ? c->activity : "";
	struct buf	 acts = BUF_INIT;

	if (strcmp(c->presence, "busy") == 0)
		buf_puts(&acts, "<rpid:busy/>");
	else if (strcmp(c->presence, "away") == 0)
		buf_puts(&acts, "<rpid:away/>");
	if (strcmp(act, "meeting") == 0 || strcmp(act, "tentative") == 0)
		buf_puts(&acts, "<rpid:meeting/>");
	else if (strcmp(act, "out-of-office") == 0)
		buf_puts(&acts, "<rpid:vacation/>");
	else if (strcmp(act, "working-elsewhere") == 0)
		buf_puts(&acts, "<rpid:other>working elsewhere</rpid:other>");

	buf_puts(b, "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n"
	    "<presence xmlns=\"urn:ietf:params:xml:ns:pidf\"\n"
	    "    xmlns:dm=\"urn:ietf:params:xml:ns:pidf:data-model\"\n"
	    "    xmlns:rpid=\"urn:ietf:params:xml:ns:pidf:rpid\"\n"
	    "    entity=\"");
	sink_text_xml(b, entity);
	buf_puts(b, "\">\n  <tuple id=\"ewsgw\">\n"
	    "    <status><basic>open</basic></status>\n    <note>");
	sink_text_xml(b, note);
	buf_puts(b, "</note>\n  </tuple>\n  <note>");
	sink_text_xml(b, note);
	buf_puts(b, "</note>\n  <dm:person id=\"ewsgw-person\">\n");
	if (acts.len > 0) {
		buf_puts(b, "    <rpid:activities");
		put_time_attr(b, "from", c->since);
		put_time_attr(b, "until", c->until);
		buf_printf(b, ">%s</rpid:activities>\n", buf_str(&acts));
	}
	buf_puts(b, "    <dm:note>");
	sink_text_xml(b, note);
	buf_puts(b, "</dm:note>\n  </dm:person>\n</presence>\n");
	buf_free(&acts);
}
