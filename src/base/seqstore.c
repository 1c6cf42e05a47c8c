/*
 * ewsgw - Exchange calendar presence gateway
 * SPDX-License-Identifier: ISC
 *
 * Persisted, block-reserved sequence numbers: the state file holds the
 * end of the reserved block; numbers below it are handed out from memory.
 */
#include "config.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "base/seqstore.h"
#include "base/xmalloc.h"

struct seqstore {
	char		*dir;		/* NULL: clock floor only */
	uint64_t	 next;		/* the next number handed out */
	uint64_t	 limit;		/* end of the reserved block */
	char		*warning;	/* state file problem found on open */
	char		*error;		/* last failed reservation */
	uint64_t	 failures;	/* failed reservations */
};

static int	 read_state(const char *, uint64_t *, char **);
static int	 write_state(const char *, uint64_t, char **);
static uint64_t	 clock_floor(int64_t);

/* Microseconds since SEQSTORE_EPOCH_S; 1 before it (a broken clock). */
static uint64_t
clock_floor(int64_t now_wall_ms)
{
	int64_t	 ms = now_wall_ms - SEQSTORE_EPOCH_S * 1000;

	return (ms > 0 ? (uint64_t)ms * 1000 : 1);
}

/*
 * Read dir's state file into *v (0 when there is none).  Returns 0, or
 * -1 with *why (allocated) when it exists but cannot be used.
 */
static int
read_state(const char *dir, uint64_t *v, char **why)
{
	char		 path[4096], buf[64], *end;
	ssize_t		 n;
	int		 fd;

	*v = 0;
	snprintf(path, sizeof path, "%s/%s", dir, SEQSTORE_FILE);
	if ((fd = open(path, O_RDONLY | O_CLOEXEC)) == -1) {
		if (errno == ENOENT)
			return (0);
		xasprintf(why, "%s: %s", path, strerror(errno));
		return (-1);
	}
	n = read(fd, buf, sizeof buf - 1);
	close(fd);
	if (n < 0) {
		xasprintf(why, "%s: %s", path, strerror(errno));
		return (-1);
	}
	buf[n] = '\0';
	errno = 0;
	*v = strtoull(buf, &end, 10);
	if (n == 0 || end == buf || errno != 0 || buf[0] == '-' ||
	    (*end != '\0' && strcmp(end, "\n") != 0)) {
		*v = 0;
		xasprintf(why, "%s: not a sequence number; ignored", path);
		return (-1);
	}
	return (0);
}

/* Durably replace dir's state file with v.  Returns 0 or -1, *why set. */
static int
write_state(const char *dir, uint64_t v, char **why)
{
	char		 path[4096], tmp[4096], line[32];
	const char	*what = "open";
	int		 fd, dfd, len;

	snprintf(path, sizeof path, "%s/%s", dir, SEQSTORE_FILE);
	snprintf(tmp, sizeof tmp, "%s/.%s.tmp", dir, SEQSTORE_FILE);
	len = snprintf(line, sizeof line, "%llu\n", (unsigned long long)v);
	fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
	if (fd == -1)
		goto fail;
	what = "write";
	if (write(fd, line, (size_t)len) != len) {
		if (errno == 0)
			errno = ENOSPC;
		goto fail_fd;
	}
	what = "fsync";
	if (fsync(fd) == -1)
		goto fail_fd;
	close(fd);
	what = "rename";
	if (rename(tmp, path) == -1)
		goto fail_tmp;
	/* The rename itself must survive a crash too. */
	if ((dfd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC)) != -1) {
		(void)fsync(dfd);
		close(dfd);
	}
	return (0);

fail_fd:
	close(fd);
fail_tmp:
	xasprintf(why, "%s %s: %s", what, path, strerror(errno));
	(void)unlink(tmp);
	return (-1);
fail:
	xasprintf(why, "%s %s: %s", what, tmp, strerror(errno));
	return (-1);
}

struct seqstore *
seqstore_open(const char *dir, int64_t now_wall_ms, char **cause)
{
	struct seqstore	*s;
	uint64_t	 stored = 0;

	s = xcalloc(1, sizeof *s);
	s->next = clock_floor(now_wall_ms);
	s->limit = s->next;
	if (dir == NULL)
		return (s);
	if (read_state(dir, &stored, &s->warning) == 0 && stored > s->next)
		s->next = stored;
	s->limit = s->next + SEQSTORE_BLOCK;
	if (write_state(dir, s->limit, cause) == -1) {
		seqstore_free(s);
		return (NULL);
	}
	s->dir = xstrdup(dir);
	return (s);
}

uint64_t
seqstore_next(struct seqstore *s)
{
	char	*why = NULL;

	if (s->dir != NULL && s->next >= s->limit) {
		if (write_state(s->dir, s->next + SEQSTORE_BLOCK, &why) == 0) {
			free(s->error);
			s->error = NULL;
		} else {
			free(s->error);
			s->error = why;
			s->failures++;
		}
		/* Go on either way: within the run numbers stay unique. */
		s->limit = s->next + SEQSTORE_BLOCK;
	}
	return (s->next++);
}

void
seqstore_floor(struct seqstore *s, int64_t now_wall_ms)
{
	uint64_t	 floor = clock_floor(now_wall_ms) + SEQSTORE_BLOCK;

	/* The next seqstore_next() reserves the block if this passes it. */
	if (floor > s->next)
		s->next = floor;
}

int
seqstore_set_dir(struct seqstore *s, const char *dir, char **cause)
{
	uint64_t	 stored = 0, next = s->next;
	char		*warning = NULL;

	if ((dir == NULL && s->dir == NULL) ||
	    (dir != NULL && s->dir != NULL && strcmp(dir, s->dir) == 0))
		return (0);
	if (dir == NULL) {
		free(s->dir);
		s->dir = NULL;
		return (0);
	}
	if (read_state(dir, &stored, &warning) == 0 && stored > next)
		next = stored;
	if (write_state(dir, next + SEQSTORE_BLOCK, cause) == -1) {
		free(warning);
		return (-1);
	}
	free(s->dir);
	s->dir = xstrdup(dir);
	free(s->warning);
	s->warning = warning;
	s->next = next;
	s->limit = next + SEQSTORE_BLOCK;
	return (0);
}

const char *
seqstore_dir(const struct seqstore *s)
{
	return (s->dir);
}

const char *
seqstore_warning(const struct seqstore *s)
{
	return (s->warning);
}

const char *
seqstore_error(const struct seqstore *s)
{
	return (s->error);
}

uint64_t
seqstore_failures(const struct seqstore *s)
{
	return (s->failures);
}

void
seqstore_free(struct seqstore *s)
{
	if (s == NULL)
		return;
	free(s->dir);
	free(s->warning);
	free(s->error);
	free(s);
}
