/*
 * ewsgw - Exchange calendar presence gateway
 * SPDX-License-Identifier: ISC
 *
 * Logging front end: syslog priorities, journald structured fields
 * (MAILBOX=, EWS_OPERATION=, EWS_RESPONSE_CODE=, SINK=) under systemd,
 * "time level message" lines on stderr otherwise.  Never pass secrets.
 */
#ifndef EWSGW_LOG_H
#define EWSGW_LOG_H

#include <stdarg.h>
#include <stdbool.h>
#include <stdint.h>
#include <syslog.h>

/* Optional structured fields; any member may be NULL. */
struct log_ctx {
	const char	*mailbox;
	const char	*operation;	/* EWS operation, e.g. "Subscribe" */
	const char	*response_code;	/* EWS ResponseCode or HTTP status */
	const char	*sink;		/* sink instance name */
};

enum log_target {
	LOG_TARGET_AUTO,	/* journal if stderr is the journal stream */
	LOG_TARGET_STDERR,
	LOG_TARGET_JOURNAL
};

void	 log_init(const char *ident, enum log_target, int level);
void	 log_set_level(int level);
int	 log_get_level(void);
bool	 log_enabled(int prio);
/* "debug", "info", "notice", "warning", "err"/"error"; -1 if unknown. */
int	 log_level_parse(const char *);
const char *log_level_name(int);

void	 log_emit(int prio, const struct log_ctx *, const char *, ...)
	    __attribute__((format(printf, 3, 4)));
void	 log_vemit(int prio, const struct log_ctx *, const char *, va_list)
	    __attribute__((format(printf, 3, 0)));

#define log_err(...)	log_emit(LOG_ERR, NULL, __VA_ARGS__)
#define log_warnx(...)	log_emit(LOG_WARNING, NULL, __VA_ARGS__)
#define log_notice(...)	log_emit(LOG_NOTICE, NULL, __VA_ARGS__)
#define log_info(...)	log_emit(LOG_INFO, NULL, __VA_ARGS__)
#define log_debug(...)	do {						\
	if (log_enabled(LOG_DEBUG))					\
		log_emit(LOG_DEBUG, NULL, __VA_ARGS__);			\
} while (0)

/* As log_warnx, with ": strerror(errno)" appended. */
void	 log_warn(const char *, ...) __attribute__((format(printf, 1, 2)));

/* Per-mailbox messages carry MAILBOX= and a "mailbox: " prefix. */
#define mlog(prio, mbox, ...)	do {					\
	if (log_enabled(prio)) {					\
		struct log_ctx _lc = { .mailbox = (mbox) };		\
		log_emit((prio), &_lc, __VA_ARGS__);			\
	}								\
} while (0)

/*
 * A rate limit for lines outside input can cause at will (a refused
 * request): at most burst lines per interval_ms, the rest counted and
 * reported as one "N similar lines suppressed" line when the interval is
 * over (by the next line, or by log_rate_flush from a timer).
 */
struct log_rate {
	const char	*what;		/* "push: ", prefix of the summary */
	int64_t		 interval_ms;
	unsigned	 burst;
	int64_t		 window;	/* start of the current interval */
	unsigned	 used;		/* lines logged in it */
	uint64_t	 dropped;	/* not yet reported */
	uint64_t	 dropped_total;
};
#define LOG_RATE_INIT(what, ms, burst)	{ (what), (ms), (burst), 0, 0, 0, 0 }

/*
 * Log through rl at now (monotonic ms), or count the line as
 * suppressed.  Returns true if it was logged.
 */
bool	 log_rate_emit(struct log_rate *, int64_t now, int prio,
	    const char *, ...) __attribute__((format(printf, 4, 5)));
/*
 * Whether a line may be logged through rl at now (it is then counted as
 * logged); false counts it as suppressed.  For callers that build the
 * line only when it will be logged.
 */
bool	 log_rate_allow(struct log_rate *, int64_t now, int prio);
/*
 * Report the lines suppressed in an interval that is over.  Returns the
 * ms until a later call could report something (-1: nothing pending).
 */
int64_t	 log_rate_flush(struct log_rate *, int64_t now, int prio);

/* Start-up failures and broken invariants only. */
void	 fatal(const char *, ...)
	    __attribute__((format(printf, 1, 2), noreturn));
void	 fatalx(const char *, ...)
	    __attribute__((format(printf, 1, 2), noreturn));

#endif
