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

/* Start-up failures and broken invariants only. */
void	 fatal(const char *, ...)
	    __attribute__((format(printf, 1, 2), noreturn));
void	 fatalx(const char *, ...)
	    __attribute__((format(printf, 1, 2), noreturn));

#endif
