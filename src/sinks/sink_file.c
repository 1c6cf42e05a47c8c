/*
 * ewsgw - Exchange calendar presence gateway
 * SPDX-License-Identifier: ISC
 *
 * Built-in sink "file": the state of every mailbox as one JSON document,
 * atomically replaced at most once per interval, plus an optional
 * append-only change log with one JSON object per line.
 */
#include "config.h"

#include <errno.h>
#include <event2/event.h>
#include <event2/event_struct.h>
#include <fcntl.h>
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
#include "base/timeutil.h"
#include "base/xmalloc.h"

#define FILE_INTERVAL_DEFAULT	1000	/* ms */

/* The last known state of one mailbox (the map holds the address). */
/*
 * A mailbox's entry in the state file, kept serialised ("addr":{...}):
 * a change rewrites one entry, and a state write only concatenates, so
 * 100,000 mailboxes cost a copy a second, not 100,000 encodings.
 */
struct file_state {
	char		*json;
	size_t		 len;
};

struct file_entry;

struct ewsgw_sink {
	struct ewsgw_host	*host;
	char			*path;		/* state file */
	char			*log_path;	/* change log or NULL */
	int			 log_fd;
	int64_t			 interval;	/* ms */

	struct hashmap		*states;	/* mailbox -> file_state */
	struct file_entry	*order;		/* states sorted by mailbox */
	size_t			 norder;
	bool			 order_stale;	/* a mailbox came or went */
	bool			 dirty;
	int64_t			 last_write;	/* mono ms */
	struct event		 timer;
	char			*error;		/* last state write failure */
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
static int	file_open_log(struct ewsgw_sink *);
static int	file_append(struct ewsgw_sink *,
		    const struct ewsgw_presence_change *);
static void	file_update(struct ewsgw_sink *,
		    const struct ewsgw_presence_change *);
static void	file_arm(struct ewsgw_sink *);
static void	file_timer_cb(evutil_socket_t, short, void *);
static int	file_write_state(struct ewsgw_sink *);
static int	file_write_all(int, const char *, size_t);
static int	file_entry_cmp(const void *, const void *);
static void	file_state_free(void *);

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
	s->states = hashmap_new();
	s->last_write = time_mono_ms() - s->interval;
	evtimer_assign(&s->timer, ewsgw_host_event_base(host), file_timer_cb,
	    s);
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

/* One line, one write(2): O_APPEND keeps concurrent lines whole. */
static int
file_append(struct ewsgw_sink *s, const struct ewsgw_presence_change *c)
{
	struct buf		 b = BUF_INIT;
	ssize_t			 n;
	int			 rc = 0;

	sink_change_json(&b, c);
	buf_putc(&b, '\n');
	do
		n = write(s->log_fd, b.data, b.len);
	while (n == -1 && errno == EINTR);
	if (n != (ssize_t)b.len) {
		ewsgw_host_mlog(s->host, LOG_WARNING, c->mailbox,
		    "cannot append to %s: %s", s->log_path,
		    n == -1 ? strerror(errno) : "short write");
		rc = -1;
	}
	buf_free(&b);
	return (rc);
}

static void
file_update(struct ewsgw_sink *s, const struct ewsgw_presence_change *c)
{
	struct file_state	*st;
	struct buf		 b = BUF_INIT;
	struct json_writer	 w;

	if ((st = hashmap_get(s->states, c->mailbox)) != NULL)
		free(st->json);
	else {
		st = xcalloc(1, sizeof *st);
		hashmap_put(s->states, c->mailbox, st);
		s->order_stale = true;
	}
	/* One member of the "mailboxes" object: its key, then its value. */
	json_writer_init(&w, &b);
	json_key(&w, c->mailbox);
	json_obj_begin(&w);
	json_kv_str(&w, "presence", c->presence);
	json_kv_str(&w, "activity", c->activity);
	json_kv_time(&w, "since", c->since);
	json_kv_time(&w, "until", c->until);
	json_kv_time(&w, "updated", time_wall_ms() / 1000);
	json_obj_end(&w);
	/* Kept until the next change: exactly its size, not the buffer's. */
	st->len = b.len;
	st->json = xreallocarray(buf_steal(&b), 1, st->len + 1);
	s->dirty = true;
}

/* A mailbox removed by a reload leaves the state document. */
static void
file_forget(struct ewsgw_sink *s, const char *mailbox)
{
	struct file_state	*st;

	if ((st = hashmap_remove(s->states, mailbox)) == NULL)
		return;
	file_state_free(st);
	s->order_stale = true;
	s->dirty = true;
	file_arm(s);
}

static int
file_publish(struct ewsgw_sink *s, const struct ewsgw_presence_change *c,
    uint64_t token)
{
	if (s->log_fd != -1 && file_append(s, c) == -1)
		return (EWSGW_SINK_ERR);
	file_update(s, c);
	file_arm(s);
	return (EWSGW_SINK_OK);
}

/* Write at most once per interval: changes in between coalesce. */
static void
file_arm(struct ewsgw_sink *s)
{
	struct timeval	 tv;
	int64_t		 wait;

	if (evtimer_pending(&s->timer, NULL))
		return;
	wait = s->last_write + s->interval - time_mono_ms();
	evtimer_add(&s->timer, time_ms_tv(&tv, wait));
}

static void
file_timer_cb(evutil_socket_t fd, short what, void *arg)
{
	struct ewsgw_sink	*s = arg;

	if (s->dirty && file_write_state(s) == -1) {
		/* Try again one interval later. */
		s->last_write = time_mono_ms();
		file_arm(s);
	}
}

static void
file_flush(struct ewsgw_sink *s)
{
	if (s->dirty)
		(void)file_write_state(s);
}

static int
file_write_all(int fd, const char *p, size_t len)
{
	ssize_t	 n;

	while (len > 0) {
		if ((n = write(fd, p, len)) == -1) {
			if (errno == EINTR)
				continue;
			return (-1);
		}
		p += n;
		len -= (size_t)n;
	}
	return (0);
}

struct file_entry {
	const char		*mailbox;
	const struct file_state	*st;
};

static int
file_entry_cmp(const void *a, const void *b)
{
	return (strcmp(((const struct file_entry *)a)->mailbox,
	    ((const struct file_entry *)b)->mailbox));
}

/*
 * Replace the state file atomically: a temporary file in the same
 * directory, fsync, rename over the old one, fsync the directory.  A
 * reader sees the old or the new document, never a partial one.
 */
static int
file_write_state(struct ewsgw_sink *s)
{
	struct buf		 b = BUF_INIT;
	struct hashmap_iter	 it;
	struct file_entry	*e;
	const struct file_state	*st;
	const char		*what, *key;
	void			*v;
	char			*tmp, *dir, *slash;
	size_t			 n = 0, i;
	int			 fd, dfd, saved;

	/*
	 * Sorted by address, so that the document is stable and diffable.
	 * Keys and values stay put while a mailbox is in the map, so the
	 * order is only worked out again when one is added or removed: not
	 * once per write (100,000 strcmp-sorted entries a second).
	 */
	if (s->order_stale) {
		s->order_stale = false;
		free(s->order);
		s->order = xcalloc(hashmap_count(s->states) + 1,
		    sizeof *s->order);
		hashmap_iter_init(&it, s->states);
		while (hashmap_iter_next(&it, &key, &v)) {
			s->order[n].mailbox = key;
			s->order[n++].st = v;
		}
		qsort(s->order, n, sizeof *s->order, file_entry_cmp);
		s->norder = n;
	}
	e = s->order;
	n = s->norder;
	buf_puts(&b, "{\"mailboxes\":{");
	for (i = 0; i < n; i++) {
		st = e[i].st;
		if (i > 0)
			buf_putc(&b, ',');
		buf_append(&b, st->json, st->len);
	}
	buf_puts(&b, "}}\n");

	xasprintf(&tmp, "%s.tmp.XXXXXX", s->path);
	what = "create";
	if ((fd = mkostemp(tmp, O_CLOEXEC)) == -1)
		goto fail;
	what = "write";
	if (file_write_all(fd, b.data, b.len) == -1 || fsync(fd) == -1 ||
	    fchmod(fd, 0644) == -1) {
		saved = errno;
		close(fd);
		unlink(tmp);
		errno = saved;
		goto fail;
	}
	if (close(fd) == -1) {
		saved = errno;
		unlink(tmp);
		errno = saved;
		goto fail;
	}
	what = "rename";
	if (rename(tmp, s->path) == -1) {
		saved = errno;
		unlink(tmp);
		errno = saved;
		goto fail;
	}
	/* Make the rename itself durable. */
	dir = xstrdup(s->path);
	if ((slash = strrchr(dir, '/')) != NULL)
		slash[slash == dir ? 1 : 0] = '\0';
	if ((dfd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC)) != -1) {
		(void)fsync(dfd);
		close(dfd);
	}
	free(dir);
	free(tmp);
	buf_free(&b);
	s->dirty = false;
	s->last_write = time_mono_ms();
	free(s->error);
	s->error = NULL;
	return (0);

fail:
	free(s->error);
	xasprintf(&s->error, "cannot %s %s: %s", what, s->path,
	    strerror(errno));
	ewsgw_host_log(s->host, LOG_WARNING, "%s", s->error);
	free(tmp);
	buf_free(&b);
	return (-1);
}

static int
file_health(struct ewsgw_sink *s, char *detail, size_t len)
{
	if (s->error != NULL) {
		snprintf(detail, len, "%s", s->error);
		return (0);
	}
	snprintf(detail, len, "%zu mailboxes", hashmap_count(s->states));
	return (1);
}

static void
file_state_free(void *p)
{
	struct file_state	*st = p;

	free(st->json);
	free(st);
}

static void
file_destroy(struct ewsgw_sink *s)
{
	evtimer_del(&s->timer);
	if (s->dirty)
		(void)file_write_state(s);
	hashmap_free(s->states, file_state_free);
	free(s->order);
	if (s->log_fd != -1)
		close(s->log_fd);
	free(s->path);
	free(s->log_path);
	free(s->error);
	free(s);
}
