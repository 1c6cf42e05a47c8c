/*
 * ewsgw - Exchange calendar presence gateway
 * SPDX-License-Identifier: ISC
 *
 * The presence document a PUBLISH carries: PIDF (RFC 3863) with the
 * data model's person element (RFC 4479) holding RPID activities (RFC
 * 4480) and a note.  Pure.
 */
#ifndef EWSGW_SIP_PIDF_H
#define EWSGW_SIP_PIDF_H

#include <stdbool.h>

#include <ewsgw/sink.h>

struct buf;

/*
 * Whether a change is published at all: "unknown" (nothing known yet)
 * removes the publication instead.
 */
bool	 sip_pidf_publishes(const struct ewsgw_presence_change *);

/*
 * Append the document for change c of presentity entity (a SIP URI):
 * basic "open"; activities busy (presence busy) or away (presence away)
 * plus meeting (meeting, tentative), vacation (out-of-office) or
 * other "working elsewhere"; from/until from since/until; the note of
 * sink_text_note() on the tuple, the person and the document.
 */
void	 sip_pidf_write(struct buf *, const char *entity,
	    const struct ewsgw_presence_change *);

#endif
