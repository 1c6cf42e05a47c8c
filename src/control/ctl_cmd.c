/*
 * ewsgw - Exchange calendar presence gateway
 * SPDX-License-Identifier: ISC
 *
 * Control command table and dispatch: split a request line into words,
 * check the command, its argument count and the caller's rights, and
 * build the answer from the daemon's provider callbacks.
 */
#include "config.h"

#include <stdarg.h>
#include <stdlib.h>
#include <string.h>

#include "control/ctl_cmd.h"
#include "base/log.h"
#include "base/xmalloc.h"

static int	cmd_status(struct ctl_request *, struct json_writer *, char **);
static int	cmd_mailboxes(struct ctl_request *, struct json_writer *,
		    char **);
static int	cmd_mailbox(struct ctl_request *, struct json_writer *,
		    char **);
static int	cmd_connections(struct ctl_request *, struct json_writer *,
		    char **);
static int	cmd_sinks(struct ctl_request *, struct json_writer *, char **);
static int	cmd_reload(struct ctl_request *, struct json_writer *, char **);
static int	cmd_resync(struct ctl_request *, struct json_writer *, char **);
static int	cmd_rediscover(struct ctl_request *, struct json_writer *,
		    char **);
static int	cmd_verify(struct ctl_request *, struct json_writer *, char **);
static int	cmd_metrics(struct ctl_request *, struct json_writer *,
		    char **);
static int	cmd_help(struct ctl_request *, struct json_writer *, char **);
static int	cmd_cluster(struct ctl_request *, struct json_writer *,
		    char **);
static int	cmd_loglevel(struct ctl_request *, struct json_writer *,
		    char **);
static int	split_words(char *, char **, int);
static int	not_available(const char *, char **);

const struct ctl_cmd_entry ctl_cmds[] = {
	{ "status", 0, 0, 0, cmd_status, "status",
	  "daemon health, mailbox counts by state, throttling budget" },
	{ "mailboxes", 0, 0, 0, cmd_mailboxes, "mailboxes",
	  "every mailbox with its state and presence" },
	{ "mailbox", 1, 1, 0, cmd_mailbox, "mailbox ADDRESS",
	  "one mailbox in detail, with its calendar timeline" },
	{ "connections", 0, 0, 0, cmd_connections, "connections",
	  "open streaming connections and their subscriptions" },
	{ "sinks", 0, 0, 0, cmd_sinks, "sinks",
	  "sinks with queue depth and delivery counters" },
	{ "reload", 0, 0, CTL_MUTATES, cmd_reload, "reload",
	  "reload the configuration file, as SIGHUP does" },
	{ "resync", 1, 1, CTL_MUTATES, cmd_resync, "resync ADDRESS",
	  "fetch one mailbox's calendar again now" },
	{ "rediscover", 0, 1, CTL_MUTATES, cmd_rediscover,
	  "rediscover [ADDRESS]",
	  "ask Autodiscover again now and regroup the mailboxes that moved" },
	{ "loglevel", 0, 1, CTL_MUTATES, cmd_loglevel, "loglevel [LEVEL]",
	  "show or set the log level (err, warning, notice, info, debug)" },
	{ "verify", 0, 0, CTL_MUTATES, cmd_verify, "verify",
	  "preflight checks against Exchange" },
	{ "metrics", 0, 0, 0, cmd_metrics, "metrics",
	  "counters in the Prometheus text format, ending with # EOF" },
	{ "cluster", 0, 0, 0, cmd_cluster, "cluster",
	  "cluster members, mailboxes each owns, budget share, last "
	  "rebalance" },
	{ "help", 0, 0, 0, cmd_help, "help",
	  "this list" },
	{ NULL, 0, 0, 0, NULL, NULL, NULL }
};

const struct ctl_cmd_entry *
ctl_cmd_find(const char *name)
{
	const struct ctl_cmd_entry	*e;

	for (e = ctl_cmds; e->name != NULL; e++)
		if (strcmp(e->name, name) == 0)
			return (e);
	return (NULL);
}

static int
not_available(const char *what, char **cause)
{
	xasprintf(cause, "%s: not available", what);
	return (-1);
}

static int
cmd_status(struct ctl_request *req, struct json_writer *w, char **cause)
{
	if (req->provider->status == NULL)
		return (not_available("status", cause));
	req->provider->status(w, req->provider->arg);
	return (0);
}

static int
cmd_mailboxes(struct ctl_request *req, struct json_writer *w, char **cause)
{
	if (req->provider->mailboxes == NULL)
		return (not_available("mailboxes", cause));
	req->provider->mailboxes(w, req->provider->arg);
	return (0);
}

static int
cmd_mailbox(struct ctl_request *req, struct json_writer *w, char **cause)
{
	if (req->provider->mailbox == NULL)
		return (not_available("mailbox", cause));
	return (req->provider->mailbox(w, req->argv[1], cause,
	    req->provider->arg));
}

static int
cmd_connections(struct ctl_request *req, struct json_writer *w,
    char **cause)
{
	if (req->provider->connections == NULL)
		return (not_available("connections", cause));
	req->provider->connections(w, req->provider->arg);
	return (0);
}

static int
cmd_cluster(struct ctl_request *req, struct json_writer *w, char **cause)
{
	if (req->provider->cluster == NULL)
		return (not_available("cluster", cause));
	return (req->provider->cluster(w, cause, req->provider->arg));
}

static int
cmd_sinks(struct ctl_request *req, struct json_writer *w, char **cause)
{
	if (req->provider->sinks == NULL)
		return (not_available("sinks", cause));
	req->provider->sinks(w, req->provider->arg);
	return (0);
}

static int
cmd_reload(struct ctl_request *req, struct json_writer *w, char **cause)
{
	if (req->provider->reload == NULL)
		return (not_available("reload", cause));
	return (req->provider->reload(w, cause, req->provider->arg));
}

static int
cmd_resync(struct ctl_request *req, struct json_writer *w, char **cause)
{
	if (req->provider->resync == NULL)
		return (not_available("resync", cause));
	return (req->provider->resync(req->argv[1], cause,
	    req->provider->arg));
}

static int
cmd_rediscover(struct ctl_request *req, struct json_writer *w, char **cause)
{
	if (req->provider->rediscover == NULL)
		return (not_available("rediscover", cause));
	return (req->provider->rediscover(w, req->argc > 1 ? req->argv[1] :
	    NULL, cause, req->provider->arg));
}

static int
cmd_verify(struct ctl_request *req, struct json_writer *w, char **cause)
{
	if (req->provider->verify == NULL || req->reply == NULL)
		return (not_available("verify", cause));
	if (req->provider->verify(req->reply, cause,
	    req->provider->arg) == -1)
		return (-1);
	return (CTL_DEFERRED);
}

/*
 * The process-wide log level, without a provider: raising it to debug on
 * a live daemon is the point.  A reload sets it back from the file.
 */
static int
cmd_loglevel(struct ctl_request *req, struct json_writer *w, char **cause)
{
	int	 old = log_get_level(), level;

	if (req->argc == 2) {
		level = log_level_parse(req->argv[1]);
		if (level < LOG_ERR || level > LOG_DEBUG) {
			xasprintf(cause, "loglevel: unknown level %.32s; use "
			    "err, warning, notice, info or debug",
			    req->argv[1]);
			return (-1);
		}
		log_set_level(level);
		if (level != old)
			log_notice("log level %s (was %s), set over the "
			    "status socket", log_level_name(level),
			    log_level_name(old));
		json_kv_str(w, "previous", log_level_name(old));
	}
	json_kv_str(w, "level", log_level_name(log_get_level()));
	return (CTL_ANSWER);
}

static int
cmd_metrics(struct ctl_request *req, struct json_writer *w, char **cause)
{
	size_t	 start = req->out->len;

	if (req->provider->metrics == NULL)
		return (not_available("metrics", cause));
	req->provider->metrics(req->out, req->provider->arg);
	/* The terminator must start a line of its own. */
	if (req->out->len > start && req->out->data[req->out->len - 1] != '\n')
		buf_putc(req->out, '\n');
	buf_puts(req->out, CTL_METRICS_EOF);
	return (CTL_TEXT);
}

static int
cmd_help(struct ctl_request *req, struct json_writer *w, char **cause)
{
	const struct ctl_cmd_entry	*e;

	json_key(w, "commands");
	json_arr_begin(w);
	for (e = ctl_cmds; e->name != NULL; e++) {
		json_obj_begin(w);
		json_kv_str(w, "name", e->name);
		json_kv_str(w, "usage", e->usage);
		json_kv_str(w, "help", e->help);
		json_kv_bool(w, "mutates", (e->flags & CTL_MUTATES) != 0);
		json_obj_end(w);
	}
	json_arr_end(w);
	return (0);
}

/*
 * Split s in place at blanks.  Returns the number of words, or -1 if
 * there are more than max.
 */
static int
split_words(char *s, char **words, int max)
{
	int	 n = 0;

	for (;;) {
		s += strspn(s, " \t\r\n\v\f");
		if (*s == '\0')
			return (n);
		if (n == max)
			return (-1);
		words[n++] = s;
		s += strcspn(s, " \t\r\n\v\f");
		if (*s != '\0')
			*s++ = '\0';
	}
}

void
ctl_cmd_error(struct buf *out, const char *fmt, ...)
{
	struct json_writer	 w;
	va_list			 ap;
	char			*msg;

	va_start(ap, fmt);
	xvasprintf(&msg, fmt, ap);
	va_end(ap);
	json_writer_init(&w, out);
	json_obj_begin(&w);
	json_kv_bool(&w, "ok", false);
	json_kv_str(&w, "error", msg);
	json_obj_end(&w);
	buf_putc(out, '\n');
	free(msg);
}

bool
ctl_cmd_exec(const struct control_provider *provider, bool admin,
    const char *line, size_t len, struct buf *out, struct ctl_reply *reply)
{
	const struct ctl_cmd_entry	*e;
	struct ctl_request		 req;
	struct json_writer		 w;
	struct buf			 answer = BUF_INIT;
	struct buf			 text = BUF_INIT;
	char				*copy, *words[CTL_MAX_WORDS];
	char				*cause = NULL;
	int				 n, rc = -1;

	/* A NUL inside the line would silently cut it; refuse it. */
	if (memchr(line, '\0', len) != NULL) {
		ctl_cmd_error(out, "invalid request");
		return (false);
	}
	copy = xstrndup(line, len);
	n = split_words(copy, words, CTL_MAX_WORDS);
	if (n == -1) {
		ctl_cmd_error(out, "too many words");
		goto done;
	}
	if (n == 0) {
		ctl_cmd_error(out, "empty request; try help");
		goto done;
	}
	if ((e = ctl_cmd_find(words[0])) == NULL) {
		/* Echo a bounded prefix only: the name came from outside. */
		ctl_cmd_error(out, "unknown command: %.64s; try help",
		    words[0]);
		goto done;
	}
	if (n - 1 < e->min_args || n - 1 > e->max_args) {
		ctl_cmd_error(out, "usage: %s", e->usage);
		goto done;
	}
	if ((e->flags & CTL_MUTATES) && !admin) {
		ctl_cmd_error(out, "%s: permission denied", e->name);
		goto done;
	}

	/*
	 * Build the answer aside so that a failing handler leaves nothing
	 * half-written behind.
	 */
	memset(&req, 0, sizeof req);
	req.provider = provider;
	req.admin = admin;
	req.argc = n;
	req.argv = words;
	req.out = &text;
	req.reply = reply;
	json_writer_init(&w, &answer);
	json_obj_begin(&w);
	json_kv_bool(&w, "ok", true);
	rc = e->handler(&req, &w, &cause);
	if (rc == -1) {
		ctl_cmd_error(out, "%s", cause != NULL ? cause :
		    "command failed");
		goto done;
	}
	if (rc == CTL_ANSWER) {
		json_obj_end(&w);
		buf_putc(&answer, '\n');
		buf_append(out, answer.data, answer.len);
	} else if (rc == CTL_TEXT)
		buf_append(out, text.data, text.len);
done:
	free(cause);
	buf_free(&text);
	buf_free(&answer);
	free(copy);
	return (rc == CTL_DEFERRED);
}

size_t
ctl_answer_complete(const char *s, size_t len, bool metrics)
{
	const char	*nl;
	size_t		 eof = sizeof CTL_METRICS_EOF - 1;

	if (len == 0)
		return (0);
	/* A JSON answer, including a failed metrics request. */
	if (!metrics || s[0] == '{') {
		if ((nl = memchr(s, '\n', len)) == NULL)
			return (0);
		return ((size_t)(nl - s) + 1);
	}
	/*
	 * Metrics: the terminator is the last thing the server sends, so
	 * only the tail needs a look, however large the answer grows.
	 */
	if (len == eof && memcmp(s, CTL_METRICS_EOF, eof) == 0)
		return (len);
	if (len > eof && s[len - eof - 1] == '\n' &&
	    memcmp(s + len - eof, CTL_METRICS_EOF, eof) == 0)
		return (len);
	return (0);
}
