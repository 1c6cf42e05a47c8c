/*
 * ewsgw - Exchange calendar presence gateway
 * SPDX-License-Identifier: ISC
 *
 * Helpers shared by the protocol unit tests.
 */
#include "config.h"

#include <check.h>
#include <stdio.h>
#include <stdlib.h>

#include "proto_test.h"
#include "base/xmalloc.h"

char *
pt_fixture(const char *name, size_t *len)
{
	char	*path, *data;
	FILE	*f;
	long	 n;

	xasprintf(&path, "%s/tests/fixtures/%s", EWSGW_TEST_SRCDIR, name);
	f = fopen(path, "rb");
	ck_assert_msg(f != NULL, "cannot open %s", path);
	ck_assert_int_eq(fseek(f, 0, SEEK_END), 0);
	n = ftell(f);
	ck_assert_int_ge(n, 0);
	rewind(f);
	data = xmalloc((size_t)n + 1);
	ck_assert_uint_eq(fread(data, 1, (size_t)n, f), (size_t)n);
	data[n] = '\0';
	fclose(f);
	free(path);
	*len = (size_t)n;
	return (data);
}

static const char *
nz(const char *s)
{
	return (s != NULL ? s : "-");
}

void
pt_fmt_notification(struct buf *b, const struct ews_notification *n)
{
	const struct ews_event	*ev;
	size_t			 i;

	buf_printf(b, "N %s prev=%s more=%d\n", n->subscription_id,
	    nz(n->previous_watermark), n->more_events);
	for (i = 0; i < n->nevents; i++) {
		ev = &n->events[i];
		buf_printf(b, "  %s wm=%s ts=%lld %s=%s parent=%s old=%s "
		    "oldparent=%s\n", ews_event_name(ev->type),
		    nz(ev->watermark), (long long)ev->timestamp,
		    ev->folder ? "folder" : "item", nz(ev->id),
		    nz(ev->parent_id), nz(ev->old_id),
		    nz(ev->old_parent_id));
	}
}

void
pt_fmt_status(struct buf *b, const struct ews_status *st)
{
	buf_printf(b, "%s %s backoff=%lld msg=%s", ews_class_name(st->class),
	    st->code, (long long)st->backoff_ms, nz(st->message));
}
