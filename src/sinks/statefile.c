/*
 * ewsgw - Exchange calendar presence gateway
 * SPDX-License-Identifier: ISC
 *
 * The file sink's state document, written by a thread of its own (see
 * statefile.h).
 *
 * Hand-over: the loop fills the snapshot fields and sets work under the
 * mutex; from then on the thread owns the snapshot and the result
 * fields until it sets done (under the mutex) and writes a byte to the
 * pipe.  The loop takes them back when it sees done.  Neither side
 * holds the mutex for longer than a flag's change.
 */
#include "config.h"

#include <errno.h>
#include <event2/event.h>
#include <event2/event_struct.h>
#include <fcntl.h>
#include <pthread.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "base/buf.h"
#include "base/xmalloc.h"
#include "sinks/statefile.h"

#define STATEFILE_CHUNK		65536	/* bytes joined per write(2) */

struct statefile {
	/* Set at creation, read-only afterwards. */
	char			*path;
	char			*dir;		/* path's directory */
	statefile_done_cb	 done_cb;
	void			*arg;
	int			 pipe[2];	/* thread -> loop: finished */
	struct event		 ev;		/* pipe[0] readable */
	pthread_t		 thread;
	bool			 running;	/* thread started */

	pthread_mutex_t		 mu;
	pthread_cond_t		 cv;		/* any flag below changed */
	bool			 work;		/* a snapshot for the thread */
	bool			 done;		/* the thread finished it */
	bool			 stop;		/* the thread should end */

	bool			 busy;		/* loop's: a write in flight */

	/* The loop's while idle, the thread's from work to done. */
	const char		**ents;		/* the snapshot */
	size_t			 n, cap;
	bool			 keys_changed;
	const char		***order;	/* slots of ents, sorted
						   by key */
	size_t			 norder;
	int			 error;
	const char		*what;

	struct buf		 out;		/* the thread's */
};

static void	*statefile_main(void *);
static void	 statefile_join_write(struct statefile *);
static void	 statefile_run(struct statefile *);
static int	 statefile_put(int, struct buf *, bool);
static int	 statefile_cmp(const void *, const void *);
static void	 statefile_read_cb(evutil_socket_t, short, void *);
static void	 statefile_collect(struct statefile *);

struct statefile *
statefile_new(struct event_base *base, const char *path,
    statefile_done_cb cb, void *arg)
{
	struct statefile	*sf;
	sigset_t		 all, old;
	char			*slash;
	int			 rc;

	sf = xcalloc(1, sizeof *sf);
	sf->path = xstrdup(path);
	sf->dir = xstrdup(path);
	if ((slash = strrchr(sf->dir, '/')) != NULL)
		slash[slash == sf->dir ? 1 : 0] = '\0';
	sf->done_cb = cb;
	sf->arg = arg;
	buf_init(&sf->out);
	sf->pipe[0] = sf->pipe[1] = -1;
	pthread_mutex_init(&sf->mu, NULL);
	pthread_cond_init(&sf->cv, NULL);
	if (pipe2(sf->pipe, O_CLOEXEC | O_NONBLOCK) == -1) {
		rc = errno;
		goto fail;
	}
	event_assign(&sf->ev, base, sf->pipe[0], EV_READ | EV_PERSIST,
	    statefile_read_cb, sf);
	event_add(&sf->ev, NULL);
	/* Signals stay with the loop's thread: the writer blocks them all. */
	sigfillset(&all);
	pthread_sigmask(SIG_SETMASK, &all, &old);
	rc = pthread_create(&sf->thread, NULL, statefile_main, sf);
	pthread_sigmask(SIG_SETMASK, &old, NULL);
	if (rc != 0)
		goto fail;
	sf->running = true;
	return (sf);

fail:
	statefile_free(sf);
	errno = rc;
	return (NULL);
}

void
statefile_free(struct statefile *sf)
{
	if (sf == NULL)
		return;
	if (sf->running) {
		statefile_join_write(sf);
		pthread_mutex_lock(&sf->mu);
		sf->stop = true;
		pthread_cond_broadcast(&sf->cv);
		pthread_mutex_unlock(&sf->mu);
		pthread_join(sf->thread, NULL);
	}
	if (sf->pipe[0] != -1) {
		event_del(&sf->ev);
		close(sf->pipe[0]);
		close(sf->pipe[1]);
	}
	pthread_cond_destroy(&sf->cv);
	pthread_mutex_destroy(&sf->mu);
	buf_free(&sf->out);
	free(sf->ents);
	free(sf->order);
	free(sf->dir);
	free(sf->path);
	free(sf);
}

/* Block until the thread is done with the write in flight, if any. */
static void
statefile_join_write(struct statefile *sf)
{
	if (!sf->busy)
		return;
	pthread_mutex_lock(&sf->mu);
	while (!sf->done)
		pthread_cond_wait(&sf->cv, &sf->mu);
	pthread_mutex_unlock(&sf->mu);
}

bool
statefile_busy(const struct statefile *sf)
{
	return (sf->busy);
}

void
statefile_write(struct statefile *sf, const char *const *e, size_t n,
    bool keys_changed)
{
	if (sf->busy)
		abort();
	if (n > sf->cap) {
		/* The sorted order points into ents: sort again. */
		free(sf->ents);
		sf->cap = n + n / 4 + 16;
		sf->ents = xreallocarray(NULL, sf->cap, sizeof *sf->ents);
		keys_changed = true;
	}
	if (n > 0)
		memcpy(sf->ents, e, n * sizeof *e);
	sf->n = n;
	sf->keys_changed = keys_changed || sf->norder != n;
	sf->busy = true;
	pthread_mutex_lock(&sf->mu);
	sf->work = true;
	pthread_cond_broadcast(&sf->cv);
	pthread_mutex_unlock(&sf->mu);
}

void
statefile_wait(struct statefile *sf)
{
	statefile_join_write(sf);
	statefile_collect(sf);
}

static void
statefile_read_cb(evutil_socket_t fd, short what, void *arg)
{
	struct statefile	*sf = arg;
	char			 junk[16];

	while (read(fd, junk, sizeof junk) > 0)
		continue;
	statefile_collect(sf);
}

/* Take the snapshot back from the thread if it is done with it. */
static void
statefile_collect(struct statefile *sf)
{
	bool	 done;

	pthread_mutex_lock(&sf->mu);
	done = sf->done;
	sf->done = false;
	pthread_mutex_unlock(&sf->mu);
	if (!done || !sf->busy)
		return;
	sf->busy = false;
	sf->done_cb(sf->arg, sf->error, sf->what);
}

static void *
statefile_main(void *arg)
{
	struct statefile	*sf = arg;
	ssize_t			 n;

	pthread_mutex_lock(&sf->mu);
	for (;;) {
		while (!sf->work && !sf->stop)
			pthread_cond_wait(&sf->cv, &sf->mu);
		if (sf->stop)
			break;
		sf->work = false;
		pthread_mutex_unlock(&sf->mu);
		statefile_run(sf);
		pthread_mutex_lock(&sf->mu);
		sf->done = true;
		pthread_cond_broadcast(&sf->cv);
		pthread_mutex_unlock(&sf->mu);
		/* Full means a wake-up is already waiting. */
		do
			n = write(sf->pipe[1], "", 1);
		while (n == -1 && errno == EINTR);
		pthread_mutex_lock(&sf->mu);
	}
	pthread_mutex_unlock(&sf->mu);
	return (NULL);
}

static int
statefile_cmp(const void *a, const void *b)
{
	const char *const	*ea = *(const char **const *)a;
	const char *const	*eb = *(const char **const *)b;

	/* Each string starts with its key and a NUL. */
	return (strcmp(*ea, *eb));
}

/* Write out what is joined in b once it is big enough, or finally. */
static int
statefile_put(int fd, struct buf *b, bool last)
{
	const char	*p = b->data;
	size_t		 len = b->len;
	ssize_t		 n;

	if (!last && len < STATEFILE_CHUNK)
		return (0);
	while (len > 0) {
		if ((n = write(fd, p, len)) == -1) {
			if (errno == EINTR)
				continue;
			return (-1);
		}
		p += n;
		len -= (size_t)n;
	}
	buf_reset(b);
	return (0);
}

/* On the thread: the snapshot to the file, the outcome in error/what. */
static void
statefile_run(struct statefile *sf)
{
	struct buf	*b = &sf->out;
	const char	*member;
	char		*tmp;
	size_t		 i;
	int		 fd, dfd, rc;

	/* Sorted by key, so that the document is stable and diffable. */
	if (sf->keys_changed) {
		free(sf->order);
		sf->order = xreallocarray(NULL, sf->n + 1, sizeof *sf->order);
		for (i = 0; i < sf->n; i++)
			sf->order[i] = &sf->ents[i];
		qsort(sf->order, sf->n, sizeof *sf->order, statefile_cmp);
		sf->norder = sf->n;
	}
	sf->error = 0;
	xasprintf(&tmp, "%s.tmp.XXXXXX", sf->path);
	if ((fd = mkostemp(tmp, O_CLOEXEC)) == -1) {
		sf->error = errno;
		sf->what = "create";
		free(tmp);
		return;
	}
	buf_reset(b);
	buf_puts(b, "{\"mailboxes\":{");
	rc = 0;
	for (i = 0; i < sf->norder && rc == 0; i++) {
		if (i > 0)
			buf_putc(b, ',');
		member = *sf->order[i];
		member += strlen(member) + 1;
		buf_puts(b, member);
		rc = statefile_put(fd, b, false);
	}
	if (rc == 0) {
		buf_puts(b, "}}\n");
		rc = statefile_put(fd, b, true);
	}
	if (rc == -1 || fsync(fd) == -1 || fchmod(fd, 0644) == -1) {
		sf->error = errno;
		sf->what = "write";
		close(fd);
	} else if (close(fd) == -1) {
		sf->error = errno;
		sf->what = "write";
	} else if (rename(tmp, sf->path) == -1) {
		sf->error = errno;
		sf->what = "rename";
	}
	if (sf->error != 0) {
		unlink(tmp);
		free(tmp);
		return;
	}
	free(tmp);
	/* Make the rename itself durable. */
	if ((dfd = open(sf->dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC)) != -1) {
		(void)fsync(dfd);
		close(dfd);
	}
}
