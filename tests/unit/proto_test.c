/*
 * ewsgw - Exchange calendar presence gateway
 * SPDX-License-Identifier: ISC
 *
 * Helpers shared by the protocol unit tests.
 */
#include "config.h"

#include <sys/stat.h>

#include <check.h>
#include <dirent.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "proto_test.h"
#include "base/xmalloc.h"

char *
pt_slurp(const char *path, size_t *len)
{
	char	*data;
	FILE	*f;
	long	 n;

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
	*len = (size_t)n;
	return (data);
}

char *
pt_fixture(const char *name, size_t *len)
{
	char	*path, *data;

	xasprintf(&path, "%s/tests/fixtures/%s", EWSGW_TEST_SRCDIR, name);
	data = pt_slurp(path, len);
	free(path);
	return (data);
}

static int
not_hidden(const struct dirent *e)
{
	return (e->d_name[0] != '.');
}

static int
by_name(const struct dirent **a, const struct dirent **b)
{
	return (strcmp((*a)->d_name, (*b)->d_name));
}

unsigned
pt_each_file(const char *const *dirs, size_t ndirs,
    void (*fn)(const char *, const char *, size_t, void *), void *arg)
{
	struct dirent	**ents;
	struct stat	 st;
	char		*dir, *path, *doc;
	size_t		 d, len;
	unsigned	 files = 0;
	int		 n, i;

	for (d = 0; d < ndirs; d++) {
		xasprintf(&dir, "%s/%s", EWSGW_TEST_SRCDIR, dirs[d]);
		n = scandir(dir, &ents, not_hidden, by_name);
		ck_assert_msg(n > 0, "cannot read %s", dir);
		for (i = 0; i < n; i++) {
			xasprintf(&path, "%s/%s", dir, ents[i]->d_name);
			/* Fixtures of other parsers sit in subfolders. */
			if (stat(path, &st) == 0 && S_ISREG(st.st_mode)) {
				doc = pt_slurp(path, &len);
				files++;
				fn(path, doc, len, arg);
				free(doc);
			}
			free(path);
			free(ents[i]);
		}
		free(ents);
		free(dir);
	}
	return (files);
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
