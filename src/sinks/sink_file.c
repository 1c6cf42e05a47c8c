/*
 * ewsgw - Exchange calendar presence gateway
 * SPDX-License-Identifier: ISC
 *
 * Built-in sink "file": the state of every mailbox as one JSON document,
 * atomically replaced at most once per interval by a writer thread (the
 * event loop never writes, syncs or sorts it), plus an optional
 * append-only change log with one JSON object per line.  The lines of
 * the changes handed over in one pass of the loop (up to max_inflight)
 * go out in one write(2); each of those changes is done when it has.
 */
#include "config.h"

#include <errno.h>
#include <event2/event.h>
#include <event2/event_struct.h>
#include <fcntl.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "base/buf.h"
#include "base/hashmap.h"
#include "base/json.h"
#include "base/log.h"
#include "sinks/sinkset.h"
#include "sinks/sinks.h"
#include "sinks/statefile.h"
#include "base/timeutil.h"
#include "base/xmalloc.h"

#define FILE_INTERVAL_DEFAULT	1000	/* ms */

/*
 * Every mailbox's entry in the state file is kept serialised, after its
 * address and a NUL ("addr\0\"addr\":{...}", the address being the
 * entry's sort key and the index's key: one allocation and one copy of
 * the address per mailbox) in a dense array: a change rewrites one
 * entry, and a
 * state write hands the array to the writer thread (statefile.h), which
 * sorts, joins and writes it.  The loop's part of a write is a copy of
 * the array of pointers, not 100,000 encodings, a sort and an fsync.
 * While a write is in flight the strings it was given are retired,
 * not freed, and go once it is done.  Otherwise a change that fits the
 * entry's string is written over it in place (the address, the index's
 * key, stays where it is): a flip allocates nothing.
 */
struct ewsgw_sink {
	struct ewsgw_host	*host;
	char			*path;		/* state file */
	char			*log_path;	/* change log or NULL */
	int			 log_fd;
	int64_t			 interval;	/* ms */

	struct hashmap		*index;		/* mailbox -> slot (i + 1);
						   keys borrowed from ents */
	char			**ents;		/* owned, as above */
	size_t			 nents, capents;
	bool			 keys_changed;	/* since the last snapshot */
	char			**retired;	/* freed when a write ends */
	size_t			 nretired, capretired;
	struct statefile	*writer;
	bool			 dirty;
	int64_t			 last_write;	/* mono ms, last snapshot */
	struct event		 timer;
	char			*error;		/* last state write failure */
	struct buf		 entry;		/* scratch: one entry */

	/* change log lines not yet written, and their changes' tokens */
	struct buf		 batch;
	uint64_t		*tokens;
	size_t			 ntokens, captokens;
	struct event		 batch_ev;	/* writes the batch */
};

struct file_settings {
	const char	*path;
	const char	*log;
	int64_t		 interval;
};

static int	file_settings(const struct ewsgw_sink_config *,
		    struct file_settings *);
static int	file_check(const struct ewsgw_sink_config *);
static int	file_create(struct ewsgw_host *,
		    const struct ewsgw_sink_config *, struct ewsgw_sink **);
static int	file_publish(struct ewsgw_sink *,
		    const struct ewsgw_presence_change *, uint64_t);
static void	file_flush(struct ewsgw_sink *);
static int	file_health(struct ewsgw_sink *, char *, size_t);
static void	file_destroy(struct ewsgw_sink *);
static void	file_reopen(struct ewsgw_sink *);
static void	file_forget(struct ewsgw_sink *, const char *);
static void	file_takeover(struct ewsgw_sink *, struct ewsgw_sink *);
static int	file_open_log(struct ewsgw_sink *);
static void	file_batch_cb(evutil_socket_t, short, void *);
static void	file_batch_drop(struct ewsgw_sink *);
static void	file_update(struct ewsgw_sink *,
		    const struct ewsgw_presence_change *);
static bool	file_slot(struct ewsgw_sink *, const char *, size_t *);
static void	file_retire(struct ewsgw_sink *, char *);
static void	file_arm(struct ewsgw_sink *);
static void	file_timer_cb(evutil_socket_t, short, void *);
static void	file_snapshot(struct ewsgw_sink *);
static void	file_written(void *, int, const char *);

const struct ewsgw_sink_ops sink_file_ops = {
	.abi_version = EWSGW_SINK_ABI_VERSION,
	.size = sizeof(struct ewsgw_sink_ops),
	.name = "file",
	.check = file_check,
	.create = file_create,
	.publish = file_publish,
	.flush = file_flush,
	.health = file_health,
	.destroy = file_destroy,
	.reopen = file_reopen,
	.forget = file_forget,
	.takeover = file_takeover,
};

static int
file_settings(const struct ewsgw_sink_config *c, struct file_settings *fs)
{
	int	 rc = 0;

	memset(fs, 0, sizeof *fs);
	if ((fs->path = ewsgw_sink_config_get(c, "path")) == NULL) {
		ewsgw_sink_config_error(c, NULL, "missing required key path");
		rc = -1;
	} else if (*fs->path != '/') {
		ewsgw_sink_config_error(c, "path",
		    "path must be absolute: '%s'", fs->path);
		rc = -1;
	}
	fs->log = ewsgw_sink_config_get(c, "log");
	if (fs->log != NULL && *fs->log != '/') {
		ewsgw_sink_config_error(c, "log",
		    "log must be an absolute path: '%s'", fs->log);
		rc = -1;
	}
	if (sink_config_duration(c, "interval", FILE_INTERVAL_DEFAULT, 1000,
	    &fs->interval) == -1)
		rc = -1;
	return (rc);
}

static int
file_check(const struct ewsgw_sink_config *c)
{
	struct file_settings	 fs;

	return (file_settings(c, &fs));
}

static int
file_create(struct ewsgw_host *host, const struct ewsgw_sink_config *c,
    struct ewsgw_sink **out)
{
	struct file_settings	 fs;
	struct ewsgw_sink	*s;
	char			*dir, *slash;
	int			 ok;

	if (file_settings(c, &fs) == -1)
		return (-1);
	/* Better refuse to start than find out at the first write. */
	dir = xstrdup(fs.path);
	if ((slash = strrchr(dir, '/')) != NULL)
		slash[slash == dir ? 1 : 0] = '\0';
	ok = access(dir, W_OK | X_OK) == 0;
	if (!ok)
		ewsgw_sink_config_error(c, "path", "cannot write to %s: %s",
		    dir, strerror(errno));
	free(dir);
	if (!ok)
		return (-1);
	s = xcalloc(1, sizeof *s);
	s->host = host;
	s->path = xstrdup(fs.path);
	s->log_path = fs.log != NULL ? xstrdup(fs.log) : NULL;
	s->log_fd = -1;
	s->interval = fs.interval;
	/* Keys borrowed from the entries (their leading address). */
	s->index = hashmap_new_borrowing();
	s->last_write = time_mono_ms() - s->interval;
	evtimer_assign(&s->timer, ewsgw_host_event_base(host), file_timer_cb,
	    s);
	event_assign(&s->batch_ev, ewsgw_host_event_base(host), -1, 0,
	    file_batch_cb, s);
	s->writer = statefile_new(ewsgw_host_event_base(host), s->path,
	    file_written, s);
	if (s->writer == NULL) {
		ewsgw_sink_config_error(c, "path",
		    "cannot start the writer of %s: %s", s->path,
		    strerror(errno));
		file_destroy(s);
		return (-1);
	}
	if (s->log_path != NULL && file_open_log(s) == -1) {
		ewsgw_sink_config_error(c, "log", "cannot open %s: %s",
		    s->log_path, strerror(errno));
		file_destroy(s);
		return (-1);
	}
	*out = s;
	return (0);
}

static int
file_open_log(struct ewsgw_sink *s)
{
	int	 fd;

	fd = open(s->log_path, O_WRONLY | O_APPEND | O_CREAT | O_CLOEXEC |
	    O_NOCTTY, 0644);
	if (fd == -1)
		return (-1);
	if (s->log_fd != -1)
		close(s->log_fd);
	s->log_fd = fd;
	return (0);
}

static void
file_reopen(struct ewsgw_sink *s)
{
	if (s->log_path != NULL && file_open_log(s) == -1)
		ewsgw_host_log(s->host, LOG_WARNING, "cannot reopen %s: %s",
		    s->log_path, strerror(errno));
}

/*
 * The batch's lines in one write(2) (O_APPEND keeps concurrent writers'
 * lines whole), then its changes are done: all delivered, or all failed
 * and retried by the host, in order per mailbox.
 */
static void
file_batch_cb(evutil_socket_t fd, short what, void *arg)
{
	struct ewsgw_sink	*s = arg;
	size_t			 off = 0, i, n;
	ssize_t			 w = 0;
	int			 result = EWSGW_SINK_OK;

	while (off < s->batch.len) {
		w = write(s->log_fd, s->batch.data + off, s->batch.len - off);
		if (w == -1 && errno == EINTR)
			continue;
		if (w <= 0)
			break;
		off += (size_t)w;
	}
	if (off < s->batch.len) {
		ewsgw_host_log(s->host, LOG_WARNING, "cannot append %zu "
		    "change%s to %s: %s", s->ntokens, s->ntokens == 1 ? "" :
		    "s", s->log_path, w == -1 ? strerror(errno) :
		    "short write");
		result = EWSGW_SINK_ERR;
	}
	n = s->ntokens;
	s->ntokens = 0;
	buf_reset(&s->batch);
	/* done() never calls publish() back: the tokens stay put. */
	for (i = 0; i < n; i++)
		ewsgw_host_done(s->host, s->tokens[i], result);
}

/* Forget the unwritten lines; the host redelivers their changes. */
static void
file_batch_drop(struct ewsgw_sink *s)
{
	event_del(&s->batch_ev);
	s->ntokens = 0;
	buf_reset(&s->batch);
}

/* The mailbox's slot in ents. */
static bool
file_slot(struct ewsgw_sink *s, const char *mailbox, size_t *i)
{
	void	*v;

	if ((v = hashmap_get(s->index, mailbox)) == NULL)
		return (false);
	*i = (size_t)(uintptr_t)v - 1;
	return (true);
}

/* A string a write may still read is freed once the write is done. */
static void
file_retire(struct ewsgw_sink *s, char *p)
{
	if (!statefile_busy(s->writer)) {
		free(p);
		return;
	}
	if (s->nretired == s->capretired) {
		s->capretired = s->capretired * 2 + 64;
		s->retired = xreallocarray(s->retired, s->capretired,
		    sizeof *s->retired);
	}
	s->retired[s->nretired++] = p;
}

static void
file_update(struct ewsgw_sink *s, const struct ewsgw_presence_change *c)
{
	struct buf		*b = &s->entry;
	struct json_writer	 w;
	char			*old = NULL;
	size_t			 i, alen = strlen(c->mailbox);

	/* The sort key, then one member of the "mailboxes" object. */
	buf_reset(b);
	buf_append(b, c->mailbox, alen + 1);
	json_writer_init(&w, b);
	json_key(&w, c->mailbox);
	json_obj_begin(&w);
	json_kv_str(&w, "presence", c->presence);
	json_kv_str(&w, "activity", c->activity);
	json_kv_time(&w, "since", c->since);
	json_kv_time(&w, "until", c->until);
	json_kv_time(&w, "updated", time_wall_ms() / 1000);
	json_obj_end(&w);
	if (file_slot(s, c->mailbox, &i)) {
		old = s->ents[i];
		/* Over the old string when it fits and no write reads it. */
		if (!statefile_busy(s->writer) &&
		    b->len <= alen + 1 + strlen(old + alen + 1)) {
			memcpy(old + alen + 1, b->data + alen + 1,
			    b->len - alen);
			s->dirty = true;
			return;
		}
	} else {
		if (s->nents == s->capents) {
			s->capents = s->capents * 2 + 64;
			s->ents = xreallocarray(s->ents, s->capents,
			    sizeof *s->ents);
		}
		i = s->nents++;
		s->keys_changed = true;
	}
	/* Kept until the next change: exactly its size. */
	s->ents[i] = xmalloc(b->len + 1);
	memcpy(s->ents[i], b->data, b->len + 1);
	/* The index borrows the new copy of the address before the old
	 * one can go. */
	hashmap_put(s->index, s->ents[i], (void *)(uintptr_t)(i + 1));
	if (old != NULL)
		file_retire(s, old);
	s->dirty = true;
}

/* A mailbox removed by a reload leaves the state document. */
static void
file_forget(struct ewsgw_sink *s, const char *mailbox)
{
	size_t	 i, last;

	if (!file_slot(s, mailbox, &i))
		return;
	hashmap_remove(s->index, mailbox);
	file_retire(s, s->ents[i]);
	last = --s->nents;
	if (i != last) {
		s->ents[i] = s->ents[last];
		hashmap_put(s->index, s->ents[i], (void *)(uintptr_t)(i + 1));
	}
	s->keys_changed = true;
	s->dirty = true;
	file_arm(s);
}

/*
 * A reload replaced old by s: s takes over the document (entries and
 * index swap places with s's empty ones), so its first write, at once,
 * holds every mailbox with the time of its last change.  old's last
 * write is finished first, as its destroy would have done.  Nothing
 * goes to the change log: nothing changed.
 */
static void
file_takeover(struct ewsgw_sink *s, struct ewsgw_sink *old)
{
	char			**ents = s->ents;
	struct hashmap		*index = s->index;
	size_t			 n = s->nents, cap = s->capents;

	file_flush(old);
	/* Its unwritten changes come to s next, line and all. */
	file_batch_drop(old);
	s->ents = old->ents;
	s->nents = old->nents;
	s->capents = old->capents;
	s->index = old->index;
	old->ents = ents;
	old->nents = n;
	old->capents = cap;
	old->index = index;
	old->keys_changed = old->dirty = false;
	s->keys_changed = s->dirty = true;
	file_arm(s);
}

/*
 * The state entry at once; the change log's line joins the batch, and
 * the change is pending until the batch is written (file_batch_cb).  A
 * change whose line fails is retried: its entry is simply written
 * again.
 */
static int
file_publish(struct ewsgw_sink *s, const struct ewsgw_presence_change *c,
    uint64_t token)
{
	file_update(s, c);
	file_arm(s);
	if (s->log_fd == -1)
		return (EWSGW_SINK_OK);
	sink_change_json(&s->batch, c);
	buf_putc(&s->batch, '\n');
	if (s->ntokens == s->captokens) {
		s->captokens = s->captokens * 2 + 64;
		s->tokens = xreallocarray(s->tokens, s->captokens,
		    sizeof *s->tokens);
	}
	s->tokens[s->ntokens++] = token;
	/* After the dispatch pass that is handing changes over now. */
	if (s->ntokens == 1)
		event_active(&s->batch_ev, EV_TIMEOUT, 1);
	return (EWSGW_SINK_PENDING);
}

/*
 * Write at most once per interval, and one write at a time: changes in
 * between coalesce into the next snapshot.
 */
static void
file_arm(struct ewsgw_sink *s)
{
	struct timeval	 tv;
	int64_t		 wait;

	if (evtimer_pending(&s->timer, NULL) || statefile_busy(s->writer))
		return;
	wait = s->last_write + s->interval - time_mono_ms();
	evtimer_add(&s->timer, time_ms_tv(&tv, wait));
}

static void
file_timer_cb(evutil_socket_t fd, short what, void *arg)
{
	struct ewsgw_sink	*s = arg;

	if (s->dirty)
		file_snapshot(s);
}

/* Hand the entries to the writer; file_written() follows. */
static void
file_snapshot(struct ewsgw_sink *s)
{
	if (statefile_busy(s->writer))
		return;
	statefile_write(s->writer, (const char *const *)s->ents, s->nents,
	    s->keys_changed);
	s->keys_changed = false;
	s->dirty = false;
	s->last_write = time_mono_ms();
}

static void
file_written(void *arg, int error, const char *what)
{
	struct ewsgw_sink	*s = arg;
	size_t			 i;

	for (i = 0; i < s->nretired; i++)
		free(s->retired[i]);
	s->nretired = 0;
	free(s->error);
	s->error = NULL;
	if (error != 0) {
		xasprintf(&s->error, "cannot %s %s: %s", what, s->path,
		    strerror(error));
		ewsgw_host_log(s->host, LOG_WARNING, "%s", s->error);
		/* Try again one interval after this attempt. */
		s->dirty = true;
	}
	if (s->dirty)
		file_arm(s);
}

/* Shutdown: the document on disk as it stands, waiting for it. */
static void
file_flush(struct ewsgw_sink *s)
{
	statefile_wait(s->writer);
	if (s->dirty) {
		file_snapshot(s);
		statefile_wait(s->writer);
	}
	evtimer_del(&s->timer);
}

static int
file_health(struct ewsgw_sink *s, char *detail, size_t len)
{
	if (s->error != NULL) {
		snprintf(detail, len, "%s", s->error);
		return (0);
	}
	snprintf(detail, len, "%zu mailboxes", s->nents);
	return (1);
}

static void
file_destroy(struct ewsgw_sink *s)
{
	size_t	 i;

	if (s->writer != NULL)
		file_flush(s);
	evtimer_del(&s->timer);
	file_batch_drop(s);
	buf_free(&s->batch);
	buf_free(&s->entry);
	free(s->tokens);
	statefile_free(s->writer);
	for (i = 0; i < s->nretired; i++)
		free(s->retired[i]);
	free(s->retired);
	for (i = 0; i < s->nents; i++)
		free(s->ents[i]);
	free(s->ents);
	hashmap_free(s->index, NULL);
	if (s->log_fd != -1)
		close(s->log_fd);
	free(s->path);
	free(s->log_path);
	free(s->error);
	free(s);
}
