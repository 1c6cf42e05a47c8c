/*
 * ewsgw - Exchange calendar presence gateway
 * SPDX-License-Identifier: ISC
 *
 * A change as text for the protocol sinks (sip, xmpp): the human note
 * shown next to the presence, and XML character escaping for the
 * documents and stanzas they write.
 */
#ifndef EWSGW_SINK_TEXT_H
#define EWSGW_SINK_TEXT_H

#include <ewsgw/sink.h>

struct buf;

/*
 * "In a meeting", "Tentatively in a meeting", "Out of office", "Working
 * elsewhere", "Busy", "Away", "Available" or "Unknown", from the
 * activity first, then the presence.  Static.
 */
const char	*sink_text_note(const struct ewsgw_presence_change *);

/* Append s with &, <, >, " and ' escaped, other control bytes
 * (invalid in XML 1.0) dropped. */
void		 sink_text_xml(struct buf *, const char *s);

#endif
