/*
 * ewsgw - Exchange calendar presence gateway
 * SPDX-License-Identifier: ISC
 *
 * Unit tests: the status socket server and its command table, driven by
 * real client sockets against a fake provider on a private event loop.
 */
#include "config.h"

#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <sys/wait.h>

#include <check.h>
#include <errno.h>
#include <fcntl.h>
#include <grp.h>
#include <pwd.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <event2/event.h>

#include "base/buf.h"
#include "control/control.h"
#include "control/ctl_cmd.h"
#include "base/json.h"
#include "base/log.h"
#include "base/timeutil.h"
#include "base/xmalloc.h"

/* ---- the fake daemon ---- */

struct fake {
	int	 status_calls;
	int	 metrics_calls;
	int	 reload_calls;
	int	 resync_calls;
	int	 rediscover_calls;
	char	 rediscover_addr[32];	/* "" for every mailbox */
	size_t	 metrics_size;	/* bytes of sample lines to produce */
	enum { VERIFY_LATER, VERIFY_AT_ONCE, VERIFY_REFUSE } verify_mode;
	struct ctl_reply *reply;	/* a verify answer to come */
	int	 cancel_calls;
};

static void
fake_status(struct json_writer *w, void *arg)
{
	struct fake	*f = arg;

	f->status_calls++;
	json_kv_str(w, "version", "0.1.0");
	json_kv_int(w, "pid", 123);
	json_kv_bool(w, "healthy", true);
	json_key(w, "problems");
	json_arr_begin(w);
	json_arr_end(w);
}

static void
fake_mailbox_obj(struct json_writer *w, const char *addr)
{
	json_obj_begin(w);
	json_kv_str(w, "address", addr);
	json_kv_str(w, "state", "streaming");
	json_kv_str(w, "presence", "busy");
	json_obj_end(w);
}

static void
fake_mailboxes(struct json_writer *w, void *arg)
{
	json_key(w, "mailboxes");
	json_arr_begin(w);
	fake_mailbox_obj(w, "a@x");
	fake_mailbox_obj(w, "b@x");
	json_arr_end(w);
}

static int
fake_mailbox(struct json_writer *w, const char *addr, char **cause,
    void *arg)
{
	if (strcmp(addr, "a@x") != 0) {
		/* Half an answer, to prove it is discarded. */
		json_kv_str(w, "partial", "junk");
		xasprintf(cause, "unknown mailbox: %s", addr);
		return (-1);
	}
	json_key(w, "mailbox");
	fake_mailbox_obj(w, addr);
	return (0);
}

static void
fake_connections(struct json_writer *w, void *arg)
{
	json_key(w, "connections");
	json_arr_begin(w);
	json_obj_begin(w);
	json_kv_int(w, "id", 3);
	json_kv_str(w, "anchor", "a@x");
	json_obj_end(w);
	json_arr_end(w);
}

static void
fake_sinks(struct json_writer *w, void *arg)
{
	json_key(w, "sinks");
	json_arr_begin(w);
	json_obj_begin(w);
	json_kv_str(w, "name", "file");
	json_kv_bool(w, "healthy", true);
	json_obj_end(w);
	json_arr_end(w);
}

static int
fake_reload(struct json_writer *w, char **cause, void *arg)
{
	struct fake	*f = arg;

	f->reload_calls++;
	json_key(w, "restart_required");
	json_arr_begin(w);
	json_str(w, "exchange.url");
	json_arr_end(w);
	return (0);
}

static int
fake_rediscover(struct json_writer *w, const char *addr, char **cause,
    void *arg)
{
	struct fake	*f = arg;

	f->rediscover_calls++;
	snprintf(f->rediscover_addr, sizeof f->rediscover_addr, "%s",
	    addr != NULL ? addr : "");
	if (addr != NULL && strcmp(addr, "a@x") != 0) {
		xasprintf(cause, "unknown mailbox %s", addr);
		return (-1);
	}
	json_kv_int(w, "queued", addr != NULL ? 1 : 2);
	return (0);
}

static int
fake_resync(const char *addr, char **cause, void *arg)
{
	struct fake	*f = arg;

	f->resync_calls++;
	if (strcmp(addr, "a@x") != 0) {
		xasprintf(cause, "unknown mailbox: %s", addr);
		return (-1);
	}
	return (0);
}

static void
fake_metrics(struct buf *b, void *arg)
{
	struct fake	*f = arg;
	size_t		 start = b->len;
	int		 i = 0;

	f->metrics_calls++;
	buf_puts(b, "# TYPE ewsgw_mailboxes gauge\newsgw_mailboxes 2\n");
	while (b->len - start < f->metrics_size)
		buf_printf(b, "ewsgw_filler{n=\"%d\"} %d\n", i, i), i++;
}

static void
fake_cancel(void *arg)
{
	struct fake	*f = arg;

	f->cancel_calls++;
	f->reply = NULL;
}

static int
fake_verify(struct ctl_reply *r, char **cause, void *arg)
{
	struct fake	*f = arg;

	switch (f->verify_mode) {
	case VERIFY_AT_ONCE:
		json_kv_int(control_reply_writer(r), "checks", 7);
		control_reply_done(r);
		return (0);
	case VERIFY_REFUSE:
		xasprintf(cause, "cannot start");
		return (-1);
	case VERIFY_LATER:
		break;
	}
	f->reply = r;
	control_reply_on_cancel(r, fake_cancel, f);
	return (0);
}

static struct fake fake;
static const struct control_provider provider = {
	.status = fake_status,
	.mailboxes = fake_mailboxes,
	.mailbox = fake_mailbox,
	.connections = fake_connections,
	.sinks = fake_sinks,
	.reload = fake_reload,
	.resync = fake_resync,
	.rediscover = fake_rediscover,
	.verify = NULL,
	.metrics = fake_metrics,
	.arg = &fake,
};

/* ---- a server in a temporary directory ---- */

static struct event_base	*base;
static struct control		*ctl;
static char			 dir[64];
static char			 path[96];

static void
server_setup(void)
{
	memset(&fake, 0, sizeof fake);
	base = event_base_new();
	ck_assert_ptr_nonnull(base);
	snprintf(dir, sizeof dir, "/tmp/ewsgw-ctl.XXXXXX");
	ck_assert_ptr_nonnull(mkdtemp(dir));
	snprintf(path, sizeof path, "%s/status.sock", dir);
	ctl = NULL;
}

static void
server_start(mode_t mode, const char *group)
{
	char	*cause = NULL;

	ctl = control_open(base, path, mode, group, &provider, &cause);
	if (ctl == NULL)
		ck_abort_msg("control_open: %s", cause);
}

/* A server with default mode, no group, and the given limits. */
static void
server_up(const struct control_limits *lim)
{
	server_setup();
	server_start(0660, NULL);
	if (lim != NULL)
		control_set_limits(ctl, lim);
}

static void
server_teardown(void)
{
	control_close(ctl);
	ctl = NULL;
	unlink(path);
	rmdir(dir);
	event_base_free(base);
	base = NULL;
}

static void
fill_sun(struct sockaddr_un *sun)
{
	memset(sun, 0, sizeof *sun);
	sun->sun_family = AF_UNIX;
	snprintf(sun->sun_path, sizeof sun->sun_path, "%s", path);
}

/* Run the loop for about ms milliseconds. */
static void
pump(int ms)
{
	int64_t	 end = time_mono_ms() + ms;

	do {
		event_base_loop(base, EVLOOP_NONBLOCK);
		usleep(500);
	} while (time_mono_ms() < end);
}

static int
client_connect(void)
{
	struct sockaddr_un	 sun;
	int			 fd;

	fill_sun(&sun);
	fd = socket(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK, 0);
	ck_assert_int_ne(fd, -1);
	ck_assert_int_eq(connect(fd, (struct sockaddr *)&sun, sizeof sun), 0);
	return (fd);
}

static void
client_send(int fd, const char *s, size_t len)
{
	size_t	 off = 0;
	ssize_t	 n;

	while (off < len) {
		n = send(fd, s + off, len - off, MSG_NOSIGNAL);
		if (n == -1 && errno == EAGAIN) {
			pump(1);
			continue;
		}
		ck_assert_int_gt(n, 0);
		off += (size_t)n;
	}
}

/*
 * Read one complete answer (or up to EOF), running the loop meanwhile.
 * Returns it allocated; *eof says whether the server closed.
 */
static char *
client_read(int fd, bool metrics, bool *eof)
{
	struct buf	 b = BUF_INIT;
	int64_t		 end = time_mono_ms() + 5000;
	ssize_t		 n;
	char		 tmp[65536];

	*eof = false;
	while (time_mono_ms() < end) {
		event_base_loop(base, EVLOOP_NONBLOCK);
		n = recv(fd, tmp, sizeof tmp, MSG_DONTWAIT);
		if (n > 0) {
			buf_append(&b, tmp, (size_t)n);
			if (ctl_answer_complete(buf_str(&b), b.len,
			    metrics) != 0)
				break;
			continue;
		}
		if (n == 0 || (n == -1 && errno != EAGAIN)) {
			*eof = true;
			break;
		}
		usleep(500);
	}
	buf_putc(&b, '\0');	/* never NULL */
	return (buf_steal(&b));
}

/* True if the server has closed fd (after any pending data). */
static bool
client_sees_eof(int fd)
{
	bool	 eof;
	char	*s = client_read(fd, false, &eof);

	free(s);
	return (eof);
}

static char *
ask(int fd, const char *req)
{
	bool	 eof;
	char	*s;

	client_send(fd, req, strlen(req));
	s = client_read(fd, strncmp(req, "metrics", 7) == 0, &eof);
	return (s);
}

/* The JSON answer to req, parsed. */
static struct json_value *
ask_json(int fd, const char *req)
{
	struct json_value	*v;
	char			*s, *cause = NULL;

	s = ask(fd, req);
	ck_assert_msg(s[0] == '{', "answer to %s: %s", req, s);
	ck_assert_msg(strchr(s, '\n') == s + strlen(s) - 1,
	    "answer to %s is not one line", req);
	v = json_parse(s, strlen(s), &cause);
	ck_assert_msg(v != NULL, "answer to %s: %s", req, cause);
	free(s);
	return (v);
}

static void
assert_error(struct json_value *v, const char *want)
{
	const char	*e;

	ck_assert(!json_get_bool(v, "ok", true));
	e = json_get_str(v, "error", NULL);
	ck_assert_ptr_nonnull(e);
	ck_assert_msg(strstr(e, want) != NULL, "error \"%s\" lacks \"%s\"", e,
	    want);
	json_free(v);
}

static size_t
array_len(const struct json_value *a)
{
	const struct json_value	*c;
	size_t			 n = 0;

	ck_assert_ptr_nonnull(a);
	ck_assert_int_eq(a->type, JSON_ARRAY);
	for (c = a->child; c != NULL; c = c->next)
		n++;
	return (n);
}

/* ---- tests ---- */

START_TEST(test_commands)
{
	struct json_value	*v;
	const struct json_value	*c;
	char			*s;
	int			 fd;

	server_up(NULL);
	fd = client_connect();

	v = ask_json(fd, "status\n");
	ck_assert(json_get_bool(v, "ok", false));
	ck_assert_str_eq(json_get_str(v, "version", ""), "0.1.0");
	ck_assert(json_get_bool(v, "healthy", false));
	json_free(v);

	v = ask_json(fd, "mailboxes\n");
	ck_assert(json_get_bool(v, "ok", false));
	ck_assert_uint_eq(array_len(json_get(v, "mailboxes")), 2);
	json_free(v);

	/* Blanks around and between words, CRLF. */
	v = ask_json(fd, "  mailbox \t a@x \r\n");
	ck_assert(json_get_bool(v, "ok", false));
	ck_assert_str_eq(json_get_str(json_get(v, "mailbox"), "address", ""),
	    "a@x");
	json_free(v);

	v = ask_json(fd, "mailbox nobody@x\n");
	ck_assert_ptr_null(json_get(v, "partial"));
	assert_error(v, "unknown mailbox: nobody@x");

	v = ask_json(fd, "connections\n");
	ck_assert_uint_eq(array_len(json_get(v, "connections")), 1);
	json_free(v);

	v = ask_json(fd, "sinks\n");
	ck_assert_uint_eq(array_len(json_get(v, "sinks")), 1);
	json_free(v);

	/* We are the daemon's own uid: mutating commands are allowed. */
	v = ask_json(fd, "reload\n");
	ck_assert(json_get_bool(v, "ok", false));
	ck_assert_uint_eq(array_len(json_get(v, "restart_required")), 1);
	json_free(v);
	ck_assert_int_eq(fake.reload_calls, 1);
	v = ask_json(fd, "resync a@x\n");
	ck_assert(json_get_bool(v, "ok", false));
	json_free(v);
	assert_error(ask_json(fd, "resync b@x\n"), "unknown mailbox: b@x");
	ck_assert_int_eq(fake.resync_calls, 2);
	v = ask_json(fd, "rediscover\n");
	ck_assert(json_get_bool(v, "ok", false));
	ck_assert(json_get_num(v, "queued", -1) == 2);
	json_free(v);
	ck_assert_str_eq(fake.rediscover_addr, "");
	v = ask_json(fd, "rediscover a@x\n");
	ck_assert(json_get_num(v, "queued", -1) == 1);
	json_free(v);
	ck_assert_str_eq(fake.rediscover_addr, "a@x");
	assert_error(ask_json(fd, "rediscover b@x\n"), "unknown mailbox b@x");
	assert_error(ask_json(fd, "rediscover a@x b@x\n"),
	    "usage: rediscover [ADDRESS]");
	ck_assert_int_eq(fake.rediscover_calls, 3);

	assert_error(ask_json(fd, "verify\n"), "verify: not available");
	assert_error(ask_json(fd, "cluster\n"), "cluster: not available");

	s = ask(fd, "metrics\n");
	ck_assert_msg(strstr(s, "\newsgw_mailboxes 2\n") != NULL, "%s", s);
	ck_assert_uint_gt(strlen(s), 6);
	ck_assert_str_eq(s + strlen(s) - 6, "# EOF\n");
	free(s);

	v = ask_json(fd, "help\n");
	c = json_get(v, "commands");
	ck_assert_uint_eq(array_len(c), 13);
	for (c = c->child; c != NULL; c = c->next) {
		ck_assert_ptr_nonnull(ctl_cmd_find(json_get_str(c, "name",
		    "")));
		ck_assert_ptr_nonnull(json_get_str(c, "usage", NULL));
	}
	json_free(v);

	assert_error(ask_json(fd, "frobnicate\n"),
	    "unknown command: frobnicate");
	assert_error(ask_json(fd, "mailbox\n"), "usage: mailbox ADDRESS");
	assert_error(ask_json(fd, "status now\n"), "usage: status");
	assert_error(ask_json(fd, "resync a@x b@x\n"),
	    "usage: resync ADDRESS");
	assert_error(ask_json(fd, "\n"), "empty request");
	assert_error(ask_json(fd, "a b c d e f g h i j k l m n o p q\n"),
	    "too many words");

	/* Still the same connection, still served. */
	v = ask_json(fd, "status\n");
	ck_assert(json_get_bool(v, "ok", false));
	json_free(v);
	ck_assert_uint_eq(control_nclients(ctl), 1);
	close(fd);
	pump(20);
	ck_assert_uint_eq(control_nclients(ctl), 0);
	server_teardown();
}
END_TEST

/* A new provider (after a reload) serves the very next request. */
START_TEST(test_set_provider)
{
	struct control_provider	 p2 = provider;
	struct json_value	*v;
	int			 fd;

	server_up(NULL);
	fd = client_connect();
	assert_error(ask_json(fd, "verify\n"), "verify: not available");
	p2.status = NULL;
	p2.verify = fake_verify;
	fake.verify_mode = VERIFY_AT_ONCE;
	control_set_provider(ctl, &p2);
	v = ask_json(fd, "verify\n");
	ck_assert(json_get_bool(v, "ok", false));
	ck_assert(json_get_num(v, "checks", 0) == 7);
	json_free(v);
	assert_error(ask_json(fd, "status\n"), "status: not available");
	close(fd);
	server_teardown();
}
END_TEST

/* Read until n complete lines have arrived; allocated. */
static char *
client_read_lines(int fd, int n)
{
	struct buf	 b = BUF_INIT;
	int64_t		 end = time_mono_ms() + 5000;
	ssize_t		 got;
	char		 tmp[4096];
	const char	*p;
	int		 lines = 0;

	while (lines < n && time_mono_ms() < end) {
		event_base_loop(base, EVLOOP_NONBLOCK);
		if ((got = recv(fd, tmp, sizeof tmp, MSG_DONTWAIT)) <= 0) {
			usleep(500);
			continue;
		}
		buf_append(&b, tmp, (size_t)got);
		for (lines = 0, p = b.data; (p = memchr(p, '\n',
		    b.len - (size_t)(p - b.data))) != NULL; p++)
			lines++;
	}
	ck_assert_int_eq(lines, n);
	return (buf_steal(&b));
}

START_TEST(test_deferred)
{
	struct control_provider	 p2 = provider;
	struct json_value	*v;
	char			*s, tmp[16];
	int			 fd;

	server_up(NULL);
	p2.verify = fake_verify;
	control_set_provider(ctl, &p2);
	fd = client_connect();

	/* The answer waits, and so does the request behind it. */
	client_send(fd, "verify\nstatus\n", 14);
	pump(50);
	ck_assert_ptr_nonnull(fake.reply);
	ck_assert_int_eq(fake.status_calls, 0);
	ck_assert_int_eq(recv(fd, tmp, sizeof tmp, MSG_DONTWAIT), -1);
	json_kv_int(control_reply_writer(fake.reply), "checks", 3);
	control_reply_done(fake.reply);
	fake.reply = NULL;
	s = client_read_lines(fd, 2);
	ck_assert_ptr_nonnull(strstr(s, "{\"ok\":true,\"checks\":3}\n"
	    "{\"ok\":true,\"version\":"));
	free(s);
	ck_assert_int_eq(fake.status_calls, 1);

	/* Failing later replaces whatever was written. */
	client_send(fd, "verify\n", 7);
	pump(20);
	ck_assert_ptr_nonnull(fake.reply);
	json_kv_int(control_reply_writer(fake.reply), "checks", 1);
	control_reply_fail(fake.reply, "Exchange %s", "unreachable");
	fake.reply = NULL;
	v = ask_json(fd, "");
	ck_assert_ptr_null(json_get(v, "checks"));
	assert_error(v, "Exchange unreachable");

	/* Refusing at once. */
	fake.verify_mode = VERIFY_REFUSE;
	assert_error(ask_json(fd, "verify\n"), "cannot start");

	/* A client that leaves before its answer: answering is harmless. */
	fake.verify_mode = VERIFY_LATER;
	client_send(fd, "verify\n", 7);
	pump(20);
	ck_assert_ptr_nonnull(fake.reply);
	close(fd);
	pump(20);
	control_reply_done(fake.reply);
	fake.reply = NULL;
	pump(20);
	ck_assert_uint_eq(control_nclients(ctl), 0);
	ck_assert_int_eq(fake.cancel_calls, 0);

	/* Closing the server cancels an answer to come, once. */
	fd = client_connect();
	client_send(fd, "verify\n", 7);
	pump(20);
	ck_assert_ptr_nonnull(fake.reply);
	server_teardown();
	ck_assert_int_eq(fake.cancel_calls, 1);
	ck_assert_ptr_null(fake.reply);
	close(fd);
}
END_TEST

/* Several requests in one write are answered in order, one by one. */
START_TEST(test_pipelined)
{
	struct buf	 all = BUF_INIT;
	int64_t		 end;
	ssize_t		 n;
	char		 tmp[4096], *s;
	int		 fd;

	server_up(NULL);
	fd = client_connect();
	client_send(fd, "status\nsinks\nmetrics\nhelp\n", 26);
	/* Until the last answer (help) is complete. */
	end = time_mono_ms() + 5000;
	while (time_mono_ms() < end && (strstr(buf_str(&all),
	    "\"commands\"") == NULL || all.data[all.len - 1] != '\n')) {
		event_base_loop(base, EVLOOP_NONBLOCK);
		if ((n = recv(fd, tmp, sizeof tmp, MSG_DONTWAIT)) > 0)
			buf_append(&all, tmp, (size_t)n);
		else
			usleep(500);
	}
	s = all.data;
	ck_assert_ptr_nonnull(s);
	ck_assert(strncmp(s, "{\"ok\":true,\"version\"", 20) == 0);
	ck_assert_ptr_nonnull(strstr(s, "}\n{\"ok\":true,\"sinks\""));
	ck_assert_ptr_nonnull(strstr(s, "}\n# TYPE ewsgw_mailboxes"));
	ck_assert_ptr_nonnull(strstr(s, "\n# EOF\n{\"ok\":true,\"commands\""));
	buf_free(&all);
	close(fd);
	server_teardown();
}
END_TEST

START_TEST(test_loglevel)
{
	struct buf		 out = BUF_INIT;
	struct json_value	*v;

	log_set_level(LOG_INFO);
	ctl_cmd_exec(&provider, true, "loglevel", 8, &out, NULL);
	ck_assert_str_eq(buf_str(&out), "{\"ok\":true,\"level\":\"info\"}\n");
	buf_reset(&out);
	ctl_cmd_exec(&provider, true, "loglevel debug", 14, &out, NULL);
	ck_assert_str_eq(buf_str(&out), "{\"ok\":true,\"previous\":\"info\","
	    "\"level\":\"debug\"}\n");
	ck_assert_int_eq(log_get_level(), LOG_DEBUG);
	buf_reset(&out);
	/* Silencing errors is not a log level. */
	ctl_cmd_exec(&provider, true, "loglevel emerg", 14, &out, NULL);
	v = json_parse(out.data, out.len, NULL);
	assert_error(v, "unknown level emerg");
	ck_assert_int_eq(log_get_level(), LOG_DEBUG);
	buf_reset(&out);
	/* Readers may not change it. */
	ctl_cmd_exec(&provider, false, "loglevel err", 12, &out, NULL);
	ck_assert_ptr_nonnull(strstr(buf_str(&out), "permission denied"));
	ck_assert_int_eq(log_get_level(), LOG_DEBUG);
	log_set_level(LOG_INFO);
	buf_free(&out);
}
END_TEST

/* The table applies rights before calling the provider. */
START_TEST(test_exec_rights)
{
	struct buf		 out = BUF_INIT;
	struct json_value	*v;

	memset(&fake, 0, sizeof fake);
	ctl_cmd_exec(&provider, false, "reload", 6, &out, NULL);
	v = json_parse(out.data, out.len, NULL);
	ck_assert_ptr_nonnull(v);
	assert_error(v, "reload: permission denied");
	ck_assert_int_eq(fake.reload_calls, 0);
	buf_reset(&out);
	ctl_cmd_exec(&provider, false, "resync a@x", 10, &out, NULL);
	ck_assert_ptr_nonnull(strstr(buf_str(&out), "permission denied"));
	ck_assert_int_eq(fake.resync_calls, 0);
	buf_reset(&out);
	/* rediscover asks Autodiscover on the account's budget. */
	ctl_cmd_exec(&provider, false, "rediscover", 10, &out, NULL);
	ck_assert_ptr_nonnull(strstr(buf_str(&out), "rediscover: permission "
	    "denied"));
	ck_assert_int_eq(fake.rediscover_calls, 0);
	buf_reset(&out);
	/* verify sends requests to Exchange: not for readers either. */
	ctl_cmd_exec(&provider, false, "verify", 6, &out, NULL);
	ck_assert_ptr_nonnull(strstr(buf_str(&out), "verify: permission "
	    "denied"));
	buf_reset(&out);
	ctl_cmd_exec(&provider, false, "status", 6, &out, NULL);
	ck_assert(strncmp(buf_str(&out), "{\"ok\":true,", 11) == 0);
	buf_reset(&out);
	/* An embedded NUL must not cut "reload\0junk" down to "reload". */
	ctl_cmd_exec(&provider, true, "reload\0junk", 11, &out, NULL);
	ck_assert_ptr_nonnull(strstr(buf_str(&out), "invalid request"));
	ck_assert_int_eq(fake.reload_calls, 0);
	buf_free(&out);
}
END_TEST

START_TEST(test_exec_no_provider)
{
	struct control_provider	 none;
	const struct ctl_cmd_entry *e;
	struct buf		 out = BUF_INIT;
	char			*line;

	memset(&none, 0, sizeof none);
	for (e = ctl_cmds; e->name != NULL; e++) {
		/* These two need nothing from the daemon. */
		if (strcmp(e->name, "help") == 0 ||
		    strcmp(e->name, "loglevel") == 0)
			continue;
		xasprintf(&line, "%s%s", e->name, e->min_args > 0 ?
		    " a@x" : "");
		buf_reset(&out);
		ctl_cmd_exec(&none, true, line, strlen(line), &out, NULL);
		ck_assert_msg(strstr(buf_str(&out), "not available") != NULL,
		    "%s: %s", line, buf_str(&out));
		ck_assert(strncmp(buf_str(&out), "{\"ok\":false", 11) == 0);
		free(line);
	}
	buf_free(&out);
}
END_TEST

START_TEST(test_answer_complete)
{
	ck_assert_uint_eq(ctl_answer_complete("", 0, true), 0);
	ck_assert_uint_eq(ctl_answer_complete("{\"ok\":true}", 11, false), 0);
	ck_assert_uint_eq(ctl_answer_complete("{\"ok\":true}\n{", 13, false),
	    12);
	ck_assert_uint_eq(ctl_answer_complete("# EOF\n", 6, true), 6);
	ck_assert_uint_eq(ctl_answer_complete("a 1\n# EOF", 9, true), 0);
	ck_assert_uint_eq(ctl_answer_complete("a 1\n# EOF\n", 10, true), 10);
	ck_assert_uint_eq(ctl_answer_complete("a 1 # EOF\n", 10, true), 0);
	/* A failed metrics request answers JSON. */
	ck_assert_uint_eq(ctl_answer_complete("{\"ok\":false}\n", 13, true),
	    13);
	/* Anything else: one line, whatever it holds. */
	ck_assert_uint_eq(ctl_answer_complete("garbage\nmore", 12, false), 8);
	ck_assert_uint_eq(ctl_answer_complete("garbage", 7, false), 0);
	ck_assert_uint_eq(ctl_answer_complete("a 1\n# EOF\n", 10, false), 4);
}
END_TEST

START_TEST(test_line_too_long)
{
	struct control_limits	 lim = { .max_line = 100 };
	struct json_value	*v;
	char			 big[400], *s;
	bool			 eof;
	int			 fd;

	server_up(&lim);

	/* Exactly at the limit is fine. */
	fd = client_connect();
	memset(big, ' ', 101);
	memcpy(big + 96, "help\n", 5);
	client_send(fd, big, 101);
	s = client_read(fd, false, &eof);
	ck_assert(strncmp(s, "{\"ok\":true,\"commands\"", 21) == 0);
	free(s);
	close(fd);

	/* No newline at all: refused as soon as the limit is passed. */
	fd = client_connect();
	memset(big, 'x', sizeof big);
	client_send(fd, big, sizeof big);
	v = ask_json(fd, "");
	assert_error(v, "too long");
	ck_assert(client_sees_eof(fd));
	close(fd);

	/* One line over the limit with its newline. */
	fd = client_connect();
	memset(big, ' ', 101);
	big[101] = '\n';
	client_send(fd, big, 102);
	s = client_read(fd, false, &eof);
	ck_assert_ptr_nonnull(strstr(s, "too long"));
	free(s);
	ck_assert(client_sees_eof(fd));
	close(fd);
	pump(10);
	ck_assert_uint_eq(control_nclients(ctl), 0);
	ck_assert_int_eq(fake.status_calls, 0);
	server_teardown();
}
END_TEST

START_TEST(test_max_clients)
{
	/* We are root or the daemon's uid: the reserve is ours too. */
	struct control_limits	 lim = { .max_clients = 3 };
	struct json_value	*v;
	int			 fd[3 + CONTROL_ADMIN_RESERVE + 2], i;
	int			 n = 3 + CONTROL_ADMIN_RESERVE;

	server_up(&lim);
	for (i = 0; i < n + 2; i++) {
		fd[i] = client_connect();
		pump(5);
	}
	ck_assert_uint_eq(control_nclients(ctl), n);
	for (i = n; i < n + 2; i++) {
		v = ask_json(fd[i], "");
		assert_error(v, "too many clients");
		ck_assert(client_sees_eof(fd[i]));
		close(fd[i]);
	}
	for (i = 0; i < n; i++) {
		v = ask_json(fd[i], "status\n");
		ck_assert(json_get_bool(v, "ok", false));
		json_free(v);
	}
	/* A slot freed is a slot available. */
	close(fd[0]);
	pump(10);
	ck_assert_uint_eq(control_nclients(ctl), n - 1);
	fd[0] = client_connect();
	v = ask_json(fd[0], "status\n");
	ck_assert(json_get_bool(v, "ok", false));
	json_free(v);
	for (i = 0; i < n; i++)
		close(fd[i]);
	server_teardown();
}
END_TEST

/*
 * A client that pipelines requests for a large answer and never reads:
 * the server holds one answer for it, serves others meanwhile, and drops
 * it after the idle timeout.
 */
START_TEST(test_slow_reader)
{
	/* Generous: under valgrind, building the answer takes a while. */
	struct control_limits	 lim = { .idle_timeout_ms = 1500 };
	struct json_value	*v;
	size_t			 answer_size;
	int			 slow, other, i, rcv = 4096;

	server_up(&lim);
	/* Far more than the socket buffers on both sides hold. */
	fake.metrics_size = 4u << 20;

	slow = client_connect();
	setsockopt(slow, SOL_SOCKET, SO_RCVBUF, &rcv, sizeof rcv);
	for (i = 0; i < 50; i++)
		client_send(slow, "metrics\n", 8);
	pump(100);
	ck_assert_int_eq(fake.metrics_calls, 1);
	answer_size = (4u << 20) + 1024;
	ck_assert_uint_gt(control_queued(ctl), 0);
	ck_assert_uint_le(control_queued(ctl), answer_size);

	/* The loop is not blocked: another client is served at once. */
	other = client_connect();
	v = ask_json(other, "status\n");
	ck_assert(json_get_bool(v, "ok", false));
	json_free(v);
	close(other);

	pump(100);
	ck_assert_int_eq(fake.metrics_calls, 1);
	ck_assert_uint_le(control_queued(ctl), answer_size);

	/* No progress for the idle timeout: dropped, memory released. */
	pump(3000);
	ck_assert_uint_eq(control_nclients(ctl), 0);
	ck_assert_uint_eq(control_queued(ctl), 0);
	ck_assert_int_eq(fake.metrics_calls, 1);
	close(slow);
	server_teardown();
}
END_TEST

START_TEST(test_answer_limit)
{
	struct control_limits	 lim = { .max_answer = 1000 };
	struct json_value	*v;
	int			 fd;

	server_up(&lim);
	fake.metrics_size = 5000;
	fd = client_connect();
	assert_error(ask_json(fd, "metrics\n"), "answer too large");
	v = ask_json(fd, "status\n");
	ck_assert(json_get_bool(v, "ok", false));
	json_free(v);
	close(fd);
	server_teardown();
}
END_TEST

START_TEST(test_idle_timeout)
{
	/* Wide margins: the machine running the tests may be busy. */
	struct control_limits	 lim = { .idle_timeout_ms = 1000 };
	struct json_value	*v;
	int			 fd;

	server_up(&lim);
	fd = client_connect();
	/* Activity restarts the clock: 1.2 s in all, but never 1 s idle. */
	pump(600);
	v = ask_json(fd, "status\n");
	json_free(v);
	pump(600);
	ck_assert_uint_eq(control_nclients(ctl), 1);
	/* A partial line is no activity after it arrived. */
	client_send(fd, "sta", 3);
	pump(2500);
	ck_assert_uint_eq(control_nclients(ctl), 0);
	ck_assert(client_sees_eof(fd));
	close(fd);
	server_teardown();
}
END_TEST

START_TEST(test_half_close)
{
	struct json_value	*v;
	bool			 eof;
	char			*s;
	int			 fd;

	server_up(NULL);
	fd = client_connect();
	client_send(fd, "status\n", 7);
	shutdown(fd, SHUT_WR);
	s = client_read(fd, false, &eof);
	v = json_parse(s, strlen(s), NULL);
	ck_assert_ptr_nonnull(v);
	ck_assert(json_get_bool(v, "ok", false));
	json_free(v);
	free(s);
	ck_assert(client_sees_eof(fd));
	close(fd);
	pump(10);
	ck_assert_uint_eq(control_nclients(ctl), 0);
	server_teardown();
}
END_TEST

START_TEST(test_socket_file)
{
	struct stat	 st;
	struct group	*gr;
	char		*cause = NULL;
	char		 gname[64];

	server_setup();
	gr = getgrgid(getegid());
	ck_assert_ptr_nonnull(gr);
	snprintf(gname, sizeof gname, "%s", gr->gr_name);
	server_start(0640, gname);
	ck_assert_int_eq(lstat(path, &st), 0);
	ck_assert(S_ISSOCK(st.st_mode));
	ck_assert_uint_eq(st.st_mode & 07777, 0640);
	ck_assert_uint_eq(st.st_gid, getegid());
	ck_assert_str_eq(control_path(ctl), path);

	/* Closing removes the socket. */
	control_close(ctl);
	ctl = NULL;
	ck_assert_int_eq(lstat(path, &st), -1);

	/* An unknown group is refused before anything is created. */
	ck_assert_ptr_null(control_open(base, path, 0660,
	    "no-such-group-ewsgw", &provider, &cause));
	ck_assert_ptr_nonnull(strstr(cause, "no-such-group-ewsgw"));
	free(cause);
	ck_assert_int_eq(lstat(path, &st), -1);

	/* So is a path that does not fit in sun_path. */
	cause = NULL;
	memset(gname, 'x', sizeof gname - 1);
	gname[sizeof gname - 1] = '\0';
	{
		char long_path[300];

		snprintf(long_path, sizeof long_path, "%s/%s%s", dir, gname,
		    gname);
		ck_assert_ptr_null(control_open(base, long_path, 0660, NULL,
		    &provider, &cause));
		ck_assert_ptr_nonnull(strstr(cause, "too long"));
		free(cause);
	}
	server_teardown();
}
END_TEST

START_TEST(test_stale_socket)
{
	struct sockaddr_un	 sun;
	struct json_value	*v;
	int			 s, fd;

	server_setup();
	/* What a crashed daemon leaves behind: a socket nobody serves. */
	s = socket(AF_UNIX, SOCK_STREAM, 0);
	fill_sun(&sun);
	ck_assert_int_eq(bind(s, (struct sockaddr *)&sun, sizeof sun), 0);
	close(s);
	ck_assert_int_eq(access(path, F_OK), 0);

	server_start(0660, NULL);
	fd = client_connect();
	v = ask_json(fd, "status\n");
	ck_assert(json_get_bool(v, "ok", false));
	json_free(v);
	close(fd);
	server_teardown();
}
END_TEST

START_TEST(test_running_instance)
{
	struct control		*second;
	struct json_value	*v;
	struct stat		 st;
	char			*cause = NULL;
	int			 fd;

	server_up(NULL);
	ck_assert_ptr_null(second = control_open(base, path, 0660, NULL,
	    &provider, &cause));
	ck_assert_msg(strstr(cause, "running") != NULL, "%s", cause);
	free(cause);
	/* The first instance is untouched and still serves. */
	fd = client_connect();
	v = ask_json(fd, "status\n");
	ck_assert(json_get_bool(v, "ok", false));
	json_free(v);
	close(fd);
	control_close(ctl);
	ctl = NULL;

	/* Not a socket: refused, and the file is left alone. */
	fd = open(path, O_WRONLY | O_CREAT | O_EXCL, 0600);
	ck_assert_int_ne(fd, -1);
	close(fd);
	cause = NULL;
	ck_assert_ptr_null(control_open(base, path, 0660, NULL, &provider,
	    &cause));
	ck_assert_msg(strstr(cause, "not a socket") != NULL, "%s", cause);
	free(cause);
	ck_assert_int_eq(lstat(path, &st), 0);
	ck_assert(S_ISREG(st.st_mode));
	server_teardown();
}
END_TEST

/* control_close() leaves alone a socket that replaced ours. */
START_TEST(test_close_foreign_socket)
{
	struct stat	 st;
	int		 fd;

	server_up(NULL);
	ck_assert_int_eq(unlink(path), 0);
	fd = open(path, O_WRONLY | O_CREAT | O_EXCL, 0600);
	close(fd);
	control_close(ctl);
	ctl = NULL;
	ck_assert_int_eq(lstat(path, &st), 0);
	server_teardown();
}
END_TEST

START_TEST(test_peer_access)
{
	struct group	*gr;
	struct passwd	*pw;
	char		**m;
	bool		 tried = false;

	ck_assert_int_eq(control_peer_access(0, 0, 1000, false, 0),
	    CONTROL_ADMIN);
	ck_assert_int_eq(control_peer_access(1000, 1000, 1000, false, 0),
	    CONTROL_ADMIN);
	ck_assert_int_eq(control_peer_access(0, 0, 1000, true, 4242),
	    CONTROL_ADMIN);
	/* Not in any group we name. */
	ck_assert_int_eq(control_peer_access(65534, 65534, 1000, false, 0),
	    CONTROL_DENY);
	ck_assert_int_eq(control_peer_access(65534, 65534, 1000, true, 4242),
	    CONTROL_DENY);
	/* Primary group. */
	ck_assert_int_eq(control_peer_access(65534, 65534, 1000, true, 65534),
	    CONTROL_READ);
	/* A uid without a passwd entry has no supplementary groups. */
	ck_assert_int_eq(control_peer_access(3999999, 3999999, 1000, true,
	    4242), CONTROL_DENY);

	/* Supplementary groups, where the system has any. */
	setgrent();
	while (!tried && (gr = getgrent()) != NULL) {
		for (m = gr->gr_mem; *m != NULL; m++) {
			if ((pw = getpwnam(*m)) == NULL || pw->pw_uid == 0 ||
			    pw->pw_gid == gr->gr_gid)
				continue;
			ck_assert_int_eq(control_peer_access(pw->pw_uid,
			    pw->pw_gid, 0xfffffff0u, true, gr->gr_gid),
			    CONTROL_READ);
			tried = true;
			break;
		}
	}
	endgrent();
	if (!tried)
		fprintf(stderr, "check_control: no supplementary group "
		    "member on this system; that case not exercised\n");
}
END_TEST

/*
 * Real peers with other credentials, as root: a child switches to
 * nobody and talks to the server while the parent runs the loop.
 */
static int
child_talk(uid_t uid, gid_t gid, const char *req, const char *want)
{
	struct sockaddr_un	 sun;
	struct timeval		 tv = { 5, 0 };
	char			 ans[512];
	ssize_t			 n;
	size_t			 off = 0;
	int			 fd;

	if (setgroups(0, NULL) == -1 || setgid(gid) == -1 ||
	    setuid(uid) == -1)
		return (10);
	fill_sun(&sun);
	if ((fd = socket(AF_UNIX, SOCK_STREAM, 0)) == -1 ||
	    connect(fd, (struct sockaddr *)&sun, sizeof sun) == -1)
		return (11);
	setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
	/* The server may refuse and close first: read its reason anyway. */
	if (req != NULL && send(fd, req, strlen(req), MSG_NOSIGNAL) == -1 &&
	    errno != EPIPE && errno != ECONNRESET)
		return (12);
	while (off < sizeof ans - 1 &&
	    (n = recv(fd, ans + off, sizeof ans - 1 - off, 0)) > 0) {
		off += (size_t)n;
		if (memchr(ans, '\n', off) != NULL)
			break;
	}
	ans[off] = '\0';
	return (strstr(ans, want) != NULL ? 0 : 13);
}

/* The verdict travels through a pipe: under valgrind, the child's own
 * exit status reports on the heap it inherited, not on the test. */
static void
run_child(uid_t uid, gid_t gid, const char *req, const char *want)
{
	pid_t		 pid;
	int		 status, p[2];
	unsigned char	 verdict = 255;
	int64_t		 end = time_mono_ms() + 10000;

	ck_assert_int_eq(pipe(p), 0);
	if ((pid = fork()) == 0) {
		close(p[0]);
		verdict = (unsigned char)child_talk(uid, gid, req, want);
		if (write(p[1], &verdict, 1) != 1)
			_exit(1);
		_exit(0);
	}
	ck_assert_int_ne(pid, -1);
	close(p[1]);
	while (waitpid(pid, &status, WNOHANG) == 0) {
		ck_assert_msg(time_mono_ms() < end, "child hangs");
		pump(2);
	}
	ck_assert_int_eq(read(p[0], &verdict, 1), 1);
	close(p[0]);
	ck_assert_msg(verdict == 0, "uid %u \"%s\": child verdict %d",
	    (unsigned)uid, req != NULL ? req : "", verdict);
}

START_TEST(test_real_peers)
{
	struct control_limits	 lim = { .max_clients = 1 };
	struct json_value	*v;
	int			 fd, fd2;

	if (geteuid() != 0) {
		fprintf(stderr, "check_control: not root, peer credential "
		    "test skipped\n");
		return;
	}
	server_setup();
	ck_assert_int_eq(chmod(dir, 0755), 0);
	/* Group nogroup (65534); the file mode lets anyone connect, so
	 * only the credential check stands in the way. */
	server_start(0666, "nogroup");

	/* A stranger: one error line, then closed. */
	run_child(65533, 65533, NULL, "\"error\":\"permission denied\"");
	/* A group member may read ... */
	run_child(65534, 65534, "status\n", "\"ok\":true");
	/* ... but not mutate. */
	run_child(65534, 65534, "reload\n", "reload: permission denied");
	ck_assert_int_eq(fake.reload_calls, 0);
	pump(20);
	ck_assert_uint_eq(control_nclients(ctl), 0);

	/* With the regular slots taken, a reader is refused, root is not. */
	control_set_limits(ctl, &lim);
	fd = client_connect();
	pump(10);
	ck_assert_uint_eq(control_nclients(ctl), 1);
	run_child(65534, 65534, "status\n", "too many clients");
	fd2 = client_connect();
	v = ask_json(fd2, "reload\n");
	ck_assert(json_get_bool(v, "ok", false));
	json_free(v);
	ck_assert_uint_eq(control_nclients(ctl), 2);
	close(fd);
	close(fd2);
	server_teardown();
}
END_TEST

static Suite *
suite(void)
{
	Suite	*s = suite_create("control");
	TCase	*tc = tcase_create("server");

	tcase_set_timeout(tc, 30);
	tcase_add_test(tc, test_commands);
	tcase_add_test(tc, test_pipelined);
	tcase_add_test(tc, test_set_provider);
	tcase_add_test(tc, test_deferred);
	tcase_add_test(tc, test_exec_rights);
	tcase_add_test(tc, test_loglevel);
	tcase_add_test(tc, test_exec_no_provider);
	tcase_add_test(tc, test_answer_complete);
	tcase_add_test(tc, test_line_too_long);
	tcase_add_test(tc, test_max_clients);
	tcase_add_test(tc, test_slow_reader);
	tcase_add_test(tc, test_answer_limit);
	tcase_add_test(tc, test_idle_timeout);
	tcase_add_test(tc, test_half_close);
	tcase_add_test(tc, test_socket_file);
	tcase_add_test(tc, test_stale_socket);
	tcase_add_test(tc, test_running_instance);
	tcase_add_test(tc, test_close_foreign_socket);
	tcase_add_test(tc, test_peer_access);
	tcase_add_test(tc, test_real_peers);
	suite_add_tcase(s, tc);
	return (s);
}

int
main(void)
{
	SRunner	*sr = srunner_create(suite());
	int	 failed;

	srunner_run_all(sr, CK_NORMAL);
	failed = srunner_ntests_failed(sr);
	srunner_free(sr);
	return (failed == 0 ? EXIT_SUCCESS : EXIT_FAILURE);
}
