/*
 * ewsgw - Exchange calendar presence gateway
 * SPDX-License-Identifier: ISC
 *
 * Logging to the journal (structured fields) or to stderr.
 */
#include "config.h"

#include <sys/stat.h>
#include <sys/uio.h>

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>
#include <unistd.h>

#ifdef HAVE_LIBSYSTEMD
#include <systemd/sd-journal.h>
#endif

#include "base/buf.h"
#include "base/log.h"
#include "base/xmalloc.h"

static const char	*log_ident = "ewsgw";
static int		 log_level = LOG_INFO;
static bool		 log_journal;
static bool		 log_prefixed;	/* "<N>" prefixes for journald */

static const char *const level_names[] = {
	"emerg", "alert", "crit", "err", "warning", "notice", "info", "debug"
};

static bool
stderr_is_journal(void)
{
	const char	*js;
	struct stat	 st;
	unsigned long	 dev, ino;

	if ((js = getenv("JOURNAL_STREAM")) == NULL)
		return (false);
	if (sscanf(js, "%lu:%lu", &dev, &ino) != 2)
		return (false);
	if (fstat(STDERR_FILENO, &st) == -1)
		return (false);
	return (st.st_dev == (dev_t)dev && st.st_ino == (ino_t)ino);
}

void
log_init(const char *ident, enum log_target target, int level)
{
	bool	 journal_stream;

	if (ident != NULL)
		log_ident = ident;
	log_level = level;
	journal_stream = stderr_is_journal();
	switch (target) {
	case LOG_TARGET_JOURNAL:
		journal_stream = true;
		/* FALLTHROUGH */
	case LOG_TARGET_AUTO:
#ifdef HAVE_LIBSYSTEMD
		log_journal = journal_stream;
		log_prefixed = false;
#else
		log_journal = false;
		log_prefixed = journal_stream;
#endif
		break;
	case LOG_TARGET_STDERR:
		log_journal = log_prefixed = false;
		break;
	}
}

void
log_set_level(int level)
{
	log_level = level;
}

int
log_get_level(void)
{
	return (log_level);
}

bool
log_enabled(int prio)
{
	return (prio <= log_level);
}

int
log_level_parse(const char *s)
{
	size_t	 i;

	if (strcasecmp(s, "error") == 0)
		return (LOG_ERR);
	if (strcasecmp(s, "warn") == 0)
		return (LOG_WARNING);
	for (i = 0; i < sizeof level_names / sizeof level_names[0]; i++)
		if (strcasecmp(s, level_names[i]) == 0)
			return ((int)i);
	return (-1);
}

const char *
log_level_name(int prio)
{
	if (prio < 0 || prio > LOG_DEBUG)
		return ("unknown");
	return (level_names[prio]);
}

#ifdef HAVE_LIBSYSTEMD
/* One journal record with the structured fields that are set. */
static void
journal_send(int prio, const struct log_ctx *ctx, const char *msg)
{
	struct iovec	 iov[7];
	char		*f[7];
	int		 n = 0, i;

	xasprintf(&f[n++], "MESSAGE=%s", msg);
	xasprintf(&f[n++], "PRIORITY=%d", prio);
	xasprintf(&f[n++], "SYSLOG_IDENTIFIER=%s", log_ident);
	if (ctx != NULL && ctx->mailbox != NULL)
		xasprintf(&f[n++], "MAILBOX=%s", ctx->mailbox);
	if (ctx != NULL && ctx->operation != NULL)
		xasprintf(&f[n++], "EWS_OPERATION=%s", ctx->operation);
	if (ctx != NULL && ctx->response_code != NULL)
		xasprintf(&f[n++], "EWS_RESPONSE_CODE=%s", ctx->response_code);
	if (ctx != NULL && ctx->sink != NULL)
		xasprintf(&f[n++], "SINK=%s", ctx->sink);
	for (i = 0; i < n; i++) {
		iov[i].iov_base = f[i];
		iov[i].iov_len = strlen(f[i]);
	}
	sd_journal_sendv(iov, n);
	for (i = 0; i < n; i++)
		free(f[i]);
}
#endif

void
log_vemit(int prio, const struct log_ctx *ctx, const char *fmt, va_list ap)
{
	struct buf	 msg = BUF_INIT;
	int		 saved_errno = errno;

	if (!log_enabled(prio))
		return;
	if (ctx != NULL && ctx->mailbox != NULL)
		buf_printf(&msg, "%s: ", ctx->mailbox);
	else if (ctx != NULL && ctx->sink != NULL)
		buf_printf(&msg, "sink %s: ", ctx->sink);
	buf_vprintf(&msg, fmt, ap);
	/* One record, one line. */
	for (size_t i = 0; i < msg.len; i++)
		if (msg.data[i] == '\n' || msg.data[i] == '\r')
			msg.data[i] = ' ';

#ifdef HAVE_LIBSYSTEMD
	if (log_journal) {
		journal_send(prio, ctx, buf_str(&msg));
		buf_free(&msg);
		errno = saved_errno;
		return;
	}
#endif
	if (log_prefixed) {
		fprintf(stderr, "<%d>%s\n", prio, buf_str(&msg));
	} else {
		char		 ts[40];
		struct timespec	 now;
		struct tm	 tm;

		clock_gettime(CLOCK_REALTIME, &now);
		gmtime_r(&now.tv_sec, &tm);
		strftime(ts, sizeof ts, "%Y-%m-%dT%H:%M:%S", &tm);
		fprintf(stderr, "%s.%03ldZ %s[%ld] %s: %s\n", ts,
		    now.tv_nsec / 1000000, log_ident, (long)getpid(),
		    log_level_name(prio), buf_str(&msg));
	}
	fflush(stderr);
	buf_free(&msg);
	errno = saved_errno;
}

void
log_emit(int prio, const struct log_ctx *ctx, const char *fmt, ...)
{
	va_list	 ap;

	va_start(ap, fmt);
	log_vemit(prio, ctx, fmt, ap);
	va_end(ap);
}

void
log_warn(const char *fmt, ...)
{
	struct buf	 b = BUF_INIT;
	va_list		 ap;
	int		 saved_errno = errno;

	va_start(ap, fmt);
	buf_vprintf(&b, fmt, ap);
	va_end(ap);
	log_emit(LOG_WARNING, NULL, "%s: %s", buf_str(&b),
	    strerror(saved_errno));
	buf_free(&b);
}

static void __attribute__((noreturn))
vfatal(const char *fmt, va_list ap, const char *reason)
{
	struct buf	 b = BUF_INIT;

	buf_vprintf(&b, fmt, ap);
	if (reason != NULL)
		log_emit(LOG_CRIT, NULL, "fatal: %s: %s", buf_str(&b), reason);
	else
		log_emit(LOG_CRIT, NULL, "fatal: %s", buf_str(&b));
	exit(1);
}

int64_t
log_rate_flush(struct log_rate *rl, int64_t now, int prio)
{
	if (rl->window != 0 && now - rl->window < rl->interval_ms)
		return (rl->dropped > 0 ? rl->window + rl->interval_ms - now :
		    -1);
	if (rl->dropped > 0)
		log_emit(prio, NULL,
		    "%s%llu similar lines suppressed in %lld s",
		    rl->what, (unsigned long long)rl->dropped,
		    (long long)((now - rl->window) / 1000));
	rl->dropped = 0;
	rl->used = 0;
	rl->window = now;
	return (-1);
}

bool
log_rate_allow(struct log_rate *rl, int64_t now, int prio)
{
	log_rate_flush(rl, now, prio);
	if (rl->used >= rl->burst) {
		rl->dropped++;
		rl->dropped_total++;
		return (false);
	}
	rl->used++;
	return (true);
}

bool
log_rate_emit(struct log_rate *rl, int64_t now, int prio, const char *fmt,
    ...)
{
	va_list	 ap;

	if (!log_rate_allow(rl, now, prio))
		return (false);
	va_start(ap, fmt);
	log_vemit(prio, NULL, fmt, ap);
	va_end(ap);
	return (true);
}

void
fatal(const char *fmt, ...)
{
	va_list	 ap;
	int	 saved_errno = errno;

	va_start(ap, fmt);
	vfatal(fmt, ap, strerror(saved_errno));
}

void
fatalx(const char *fmt, ...)
{
	va_list	 ap;

	va_start(ap, fmt);
	vfatal(fmt, ap, NULL);
}
