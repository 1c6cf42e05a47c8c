/*
 * ewsgw - Exchange calendar presence gateway
 * SPDX-License-Identifier: ISC
 *
 * Unit tests: the preflight checklist driven on a caller's loop against
 * an in-process HTTP server (asynchronous API, stop, JSON members) and
 * through the control socket with a deferred answer.
 */
#include "config.h"

#include <check.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <sys/socket.h>
#include <sys/un.h>

#include <event2/buffer.h>
#include <event2/event.h>
#include <event2/http.h>
#include <event2/keyvalq_struct.h>

#include "base/buf.h"
#include "base/conf.h"
#include "control/control.h"
#include "evtest.h"
#include "base/json.h"
#include "daemon/verify.h"
#include "io/ews.h"
#include "base/xmalloc.h"

static char	 pwfile[] = "/tmp/check_verify.XXXXXX";

struct server {
	int			 mode;	/* 0: 401 Basic only, 1: 404, 2: hang,
					   3: NTLM refused, Basic accepted,
					   4: the first hangs, then as 0 */
	unsigned		 requests;
	unsigned		 basic;	/* requests with Basic credentials */
	struct evhttp_request	*held;
};

static void
server_cb(struct evhttp_request *req, void *arg)
{
	struct server		*s = arg;
	struct evkeyvalq	*h;
	char			*auth;

	s->requests++;
	switch (s->mode == 4 ? (s->requests == 1 ? 2 : 0) : s->mode) {
	case 0:
		evhttp_add_header(evhttp_request_get_output_headers(req),
		    "WWW-Authenticate", "Basic realm=\"ews\"");
		evtest_reply(req, 401, "no");
		break;
	case 1:
		evtest_reply(req, 404, "not here");
		break;
	case 3:
		/* Refuses every NTLM exchange, accepts Basic. */
		auth = evtest_header(req, "Authorization");
		if (auth != NULL && strncmp(auth, "Basic ", 6) == 0) {
			s->basic++;
			evtest_reply(req, 200, "<x/>");
		} else {
			h = evhttp_request_get_output_headers(req);
			evhttp_add_header(h, "WWW-Authenticate", "NTLM");
			evhttp_add_header(h, "WWW-Authenticate",
			    "Basic realm=\"ews\"");
			evtest_reply(req, 401, "no");
		}
		free(auth);
		break;
	default:
		s->held = req;	/* never answered */
		break;
	}
}

static struct config *
make_config_with(unsigned port, const char *more)
{
	struct config	*conf;
	char		*text, *errors = NULL;

	xasprintf(&text, "[exchange]\nurl = http://127.0.0.1:%u/EWS/"
	    "Exchange.asmx\nauth = ntlm\nusername = CORP\\svc\n"
	    "password_file = %s\n[mailboxes]\nmailbox = alice@example.com\n"
	    "[sink log]\ntype = log\n%s", port, pwfile, more);
	conf = conf_load_buffer("test.conf", text, strlen(text), &errors);
	ck_assert_msg(conf != NULL, "config: %s", errors);
	free(text);
	free(errors);
	return (conf);
}

static struct config *
make_config(unsigned port)
{
	return (make_config_with(port, ""));
}

struct done_state {
	bool		 done;
	struct verify	*v;
};

static void
on_done(struct verify *v, void *arg)
{
	struct done_state	*d = arg;

	d->done = true;
	d->v = v;
}

/* The members as a parsed object. */
static struct json_value *
members(const struct verify *v)
{
	struct buf		 b = BUF_INIT;
	struct json_writer	 w;
	struct json_value	*j;
	char			*cause = NULL;

	json_writer_init(&w, &b);
	json_obj_begin(&w);
	verify_write_checks(v, &w);
	json_obj_end(&w);
	j = json_parse(b.data, b.len, &cause);
	ck_assert_msg(j != NULL, "json: %s", cause);
	buf_free(&b);
	return (j);
}

static const struct json_value *
nth_check(const struct json_value *j, int n)
{
	const struct json_value	*c = json_get(j, "checks");

	ck_assert_ptr_nonnull(c);
	ck_assert_int_eq(c->type, JSON_ARRAY);
	for (c = c->child; c != NULL && n > 0; n--)
		c = c->next;
	ck_assert_ptr_nonnull(c);
	return (c);
}

static size_t
count_checks(const struct json_value *j)
{
	const struct json_value	*c = json_get(j, "checks");
	size_t			 n = 0;

	for (c = c->child; c != NULL; c = c->next)
		n++;
	return (n);
}

/* A server in one mode, a config pointing at it, a checklist started. */
struct fixture {
	struct event_base	*base;
	struct server		 s;
	struct evhttp		*h;
	struct config		*conf;
	struct done_state	 d;
	struct json_value	*j;	/* members, once done */
};

static void
fixture_start(struct fixture *f, int mode)
{
	struct verify_opts	 o = { NULL, 0, 0, 0 };
	unsigned		 port;

	memset(f, 0, sizeof *f);
	f->base = event_base_new();
	f->s.mode = mode;
	f->h = evtest_server(f->base, server_cb, &f->s, &port);
	ck_assert_ptr_nonnull(f->h);
	f->conf = make_config(port);
	f->d.v = verify_start(f->base, NULL, NULL, f->conf, &o, on_done, &f->d);
	ck_assert(!f->d.done);	/* never from inside verify_start */
}

static void
fixture_finish(struct fixture *f)
{
	ck_assert(evtest_run_until(f->base, &f->d.done, 10000));
	f->j = members(f->d.v);
}

static void
fixture_free(struct fixture *f)
{
	json_free(f->j);
	verify_free(f->d.v);
	conf_free(f->conf);
	evhttp_free(f->h);
	event_base_free(f->base);
}

START_TEST(test_basic_only_on_callers_loop)
{
	struct fixture		 f;
	const struct json_value	*c;

	fixture_start(&f, 0);
	fixture_finish(&f);
	ck_assert(verify_failed(f.d.v));
	ck_assert(!json_get_bool(f.j, "passed", true));
	ck_assert(!json_get_bool(f.j, "complete", true));
	ck_assert_uint_eq(count_checks(f.j), 2);
	c = nth_check(f.j, 0);
	ck_assert_str_eq(json_get_str(c, "name", ""), "connect");
	ck_assert_str_eq(json_get_str(c, "verdict", ""), "PASS");
	c = nth_check(f.j, 1);
	ck_assert_str_eq(json_get_str(c, "name", ""), "auth-schemes");
	ck_assert_str_eq(json_get_str(c, "verdict", ""), "FAIL");
	ck_assert_str_eq(json_get_str(c, "summary", ""),
	    "server offers Basic, not NTLM (auth = ntlm)");
	ck_assert_ptr_nonnull(strstr(json_get_str(c, "fix", ""),
	    "-WindowsAuthentication $true; or set auth = basic"));
	/* Only the unauthenticated request was sent. */
	ck_assert_uint_eq(f.s.requests, 1);
	fixture_free(&f);
}
END_TEST

START_TEST(test_not_ews_endpoint)
{
	struct fixture		 f;
	const struct json_value	*c;
	char			*text = NULL;
	size_t			 len = 0;
	FILE			*fp;

	fixture_start(&f, 1);
	fixture_finish(&f);
	c = nth_check(f.j, 1);
	ck_assert_str_eq(json_get_str(c, "verdict", ""), "FAIL");
	ck_assert_str_eq(json_get_str(c, "seen", ""), "HTTP 404 Not Found");

	fp = open_memstream(&text, &len);
	verify_print(f.d.v, fp, false);
	fclose(fp);
	ck_assert_ptr_nonnull(strstr(text, "FAIL  auth-schemes no EWS "
	    "endpoint at http://127.0.0.1:"));
	ck_assert_ptr_nonnull(strstr(text, "1 passed, 0 warnings, 1 failed"));
	free(text);
	fixture_free(&f);
}
END_TEST

/*
 * NTLM refused, Basic offered (and it would accept the password): the
 * checklist never sends the password over Basic, whoever asks for it,
 * and its failure names both a wrong password and the NTLM mismatch.
 */
START_TEST(test_ntlm_refused_never_falls_back_to_basic)
{
	struct fixture		 f;
	const struct json_value	*c;

	fixture_start(&f, 3);
	fixture_finish(&f);
	ck_assert_uint_gt(f.s.requests, 1);	/* the handshake was tried */
	ck_assert_uint_eq(f.s.basic, 0);
	ck_assert_uint_eq(count_checks(f.j), 3);
	c = nth_check(f.j, 1);
	ck_assert_str_eq(json_get_str(c, "verdict", ""), "PASS");
	c = nth_check(f.j, 2);
	ck_assert_str_eq(json_get_str(c, "name", ""), "login");
	ck_assert_str_eq(json_get_str(c, "verdict", ""), "FAIL");
	ck_assert_ptr_nonnull(strstr(json_get_str(c, "summary", ""),
	    "NTLM version or session security mismatch"));
	ck_assert_ptr_nonnull(strstr(json_get_str(c, "fix", ""),
	    "LmCompatibilityLevel"));
	ck_assert_ptr_nonnull(strstr(json_get_str(c, "fix", ""),
	    "password_file"));
	/* The password never shows. */
	ck_assert_ptr_null(strstr(json_get_str(c, "seen", ""), "secret"));
	fixture_free(&f);
}
END_TEST

/* The daemon's own request, holding its budget's only slot. */
static int
hold_build(struct ews_call *call, struct ews_send *s, void *arg)
{
	(void)call;
	(void)arg;
	buf_puts(&s->body, "<x/>");
	return (0);
}

static void
hold_done(struct ews_call *call, const struct ews_reply *r, void *arg)
{
	(void)call;
	(void)r;
	(void)arg;
}

static const struct ews_call_ops hold_ops = {
	.op = EWS_OP_FIND_ITEM, .klass = THROTTLE_SHORT,
	.build = hold_build, .done = hold_done
};

/*
 * Checks run on the daemon's call path wait for a slot of its budget:
 * with max_concurrency = 1 taken by the daemon, nothing of theirs goes
 * out until the daemon's request is over.
 */
START_TEST(test_waits_for_the_daemons_budget)
{
	struct verify_opts	 o = { NULL, 0, 0, 0 };
	struct event_base	*base;
	struct server		 s;
	struct evhttp		*h;
	struct config		*conf;
	struct ews_ctx		*ews;
	struct ews_call		 hold;
	struct done_state	 d;
	struct json_value	*j;
	char			*cause = NULL;
	unsigned		 port;

	memset(&s, 0, sizeof s);
	memset(&d, 0, sizeof d);
	s.mode = 4;
	base = event_base_new();
	h = evtest_server(base, server_cb, &s, &port);
	ck_assert_ptr_nonnull(h);
	conf = make_config_with(port, "[throttling]\nmax_concurrency = 1\n");
	ews = ews_ctx_new(base, conf, &cause);
	ck_assert_msg(ews != NULL, "ews: %s", cause);
	ews_call_init(&hold, ews);
	ews_call_submit(&hold, &hold_ops, THROTTLE_PRIO_LOW, NULL, NULL);
	evtest_run_for(base, 300);
	ck_assert_uint_eq(s.requests, 1);

	d.v = verify_start(base, ews, NULL, conf, &o, on_done, &d);
	evtest_run_for(base, 500);
	ck_assert(!d.done);
	ck_assert_uint_eq(s.requests, 1);	/* the checks wait */

	ews_call_cancel(&hold);			/* the slot comes free */
	ck_assert(evtest_run_until(base, &d.done, 10000));
	ck_assert_uint_eq(s.requests, 2);
	j = members(d.v);
	ck_assert_uint_eq(count_checks(j), 2);
	ck_assert_str_eq(json_get_str(nth_check(j, 1), "summary", ""),
	    "server offers Basic, not NTLM (auth = ntlm)");
	json_free(j);
	verify_free(d.v);
	ews_ctx_free(ews);
	conf_free(conf);
	evhttp_free(h);
	event_base_free(base);
}
END_TEST

static void
stop_cb(evutil_socket_t fd, short what, void *arg)
{
	(void)fd;
	(void)what;
	verify_stop(arg);
	verify_stop(arg);	/* twice is fine */
}

START_TEST(test_stop_while_waiting)
{
	struct fixture		 f;
	struct event		*ev;
	struct timeval		 tv = { 0, 300000 };

	fixture_start(&f, 2);
	ev = evtimer_new(f.base, stop_cb, f.d.v);
	evtimer_add(ev, &tv);
	fixture_finish(&f);
	ck_assert_uint_eq(f.s.requests, 1);
	ck_assert(verify_failed(f.d.v));
	ck_assert(!json_get_bool(f.j, "complete", true));
	ck_assert_uint_eq(count_checks(f.j), 1);	/* connect only */
	event_free(ev);
	fixture_free(&f);
}
END_TEST

/* ---- ewsgwctl verify: the control server with a deferred answer ---- */

struct ctl_fixture {
	struct fixture		 f;
	struct control		*ctl;
	struct control_provider	 prov;
	char			 path[64];
	int			 fd;
	struct buf		 answer;
	bool			 got;
	struct v_ctl		*running;
};

static int
prov_verify(struct ctl_reply *reply, char **cause, void *arg)
{
	struct ctl_fixture	*c = arg;

	return (verify_control(reply, c->f.base, NULL, NULL, c->f.conf, 20000,
	    &c->running, cause));
}

static void
client_read(evutil_socket_t fd, short what, void *arg)
{
	struct ctl_fixture	*c = arg;
	char			 tmp[4096];
	ssize_t			 n;

	(void)what;
	n = read(fd, tmp, sizeof tmp);
	if (n > 0)
		buf_append(&c->answer, tmp, (size_t)n);
	if (n <= 0 || memchr(tmp, '\n', (size_t)n) != NULL)
		c->got = true;
}

/* A control socket whose verify runs the checklist against mode. */
static void
ctl_start(struct ctl_fixture *c, int mode)
{
	struct sockaddr_un	 sun;
	char			*cause = NULL;
	unsigned		 port;

	memset(c, 0, sizeof *c);
	c->f.base = event_base_new();
	c->f.s.mode = mode;
	c->f.h = evtest_server(c->f.base, server_cb, &c->f.s, &port);
	c->f.conf = make_config(mode == -1 ? 1 : port);
	c->prov.verify = prov_verify;
	c->prov.arg = c;
	snprintf(c->path, sizeof c->path, "/tmp/check_verify.%d.sock",
	    (int)getpid());
	c->ctl = control_open(c->f.base, c->path, 0600, NULL, &c->prov,
	    &cause);
	ck_assert_msg(c->ctl != NULL, "control_open: %s", cause);
	ck_assert_int_eq(control_sockaddr(&sun, c->path, &cause), 0);
	c->fd = socket(AF_UNIX, SOCK_STREAM, 0);
	ck_assert_int_eq(connect(c->fd, (struct sockaddr *)&sun, sizeof sun),
	    0);
	ck_assert_int_eq(write(c->fd, "verify\n", 7), 7);
}

static void
ctl_free(struct ctl_fixture *c)
{
	if (c->fd != -1)
		close(c->fd);
	control_close(c->ctl);
	buf_free(&c->answer);
	conf_free(c->f.conf);
	evhttp_free(c->f.h);
	event_base_free(c->f.base);
}

START_TEST(test_control_verify)
{
	struct ctl_fixture	 c;
	struct event		*ev;
	struct json_value	*j;
	const struct json_value	*chk;
	char			*cause = NULL;

	ctl_start(&c, -1);	/* nothing listens on the EWS port */
	ev = event_new(c.f.base, c.fd, EV_READ | EV_PERSIST, client_read, &c);
	event_add(ev, NULL);
	ck_assert(evtest_run_until(c.f.base, &c.got, 20000));
	j = json_parse(c.answer.data, c.answer.len, &cause);
	ck_assert_msg(j != NULL, "json: %s (%s)", cause, buf_str(&c.answer));
	ck_assert(json_get_bool(j, "ok", false));
	ck_assert(!json_get_bool(j, "passed", true));
	ck_assert_uint_eq(count_checks(j), 1);
	chk = nth_check(j, 0);
	ck_assert_str_eq(json_get_str(chk, "name", ""), "connect");
	ck_assert_str_eq(json_get_str(chk, "verdict", ""), "FAIL");
	ck_assert_ptr_nonnull(strstr(json_get_str(chk, "seen", ""),
	    "127.0.0.1:1"));
	json_free(j);
	event_free(ev);
	ctl_free(&c);
}
END_TEST

/*
 * The client leaves, and the control server closes, while the checks
 * wait for Exchange: the answer is cancelled and everything freed (the
 * valgrind run of this test sees leaks and stale pointers).
 */
START_TEST(test_control_verify_cancelled)
{
	struct ctl_fixture	 c;

	ctl_start(&c, 2);
	evtest_run_for(c.f.base, 300);
	ck_assert_uint_eq(c.f.s.requests, 1);	/* the checks are waiting */
	close(c.fd);
	c.fd = -1;
	evtest_run_for(c.f.base, 100);
	ctl_free(&c);
}
END_TEST

/* A second client's line on the same control socket; its fd. */
static int
ctl_client(struct ctl_fixture *c, const char *line)
{
	struct sockaddr_un	 sun;
	char			*cause = NULL;
	int			 fd;

	ck_assert_int_eq(control_sockaddr(&sun, c->path, &cause), 0);
	fd = socket(AF_UNIX, SOCK_STREAM, 0);
	ck_assert_int_eq(connect(fd, (struct sockaddr *)&sun, sizeof sun), 0);
	ck_assert_int_eq(write(fd, line, strlen(line)), (ssize_t)strlen(line));
	return (fd);
}

/*
 * One checklist at a time: a second verify while the first waits for
 * Exchange is refused without a request of its own; once the first is
 * over, the next one runs.
 */
START_TEST(test_control_verify_single_flight)
{
	struct ctl_fixture	 c, c2;
	struct event		*ev;
	int			 fd;

	ctl_start(&c, 2);
	evtest_run_for(c.f.base, 300);
	ck_assert_uint_eq(c.f.s.requests, 1);	/* the first one waits */
	ck_assert_ptr_nonnull(c.running);

	memset(&c2, 0, sizeof c2);
	fd = ctl_client(&c, "verify\n");
	ev = event_new(c.f.base, fd, EV_READ | EV_PERSIST, client_read, &c2);
	event_add(ev, NULL);
	ck_assert(evtest_run_until(c.f.base, &c2.got, 10000));
	ck_assert_ptr_nonnull(strstr(buf_str(&c2.answer),
	    "verify: already running"));
	ck_assert_uint_eq(c.f.s.requests, 1);
	event_free(ev);
	close(fd);

	/* The first one's answer ends it. */
	ev = event_new(c.f.base, c.fd, EV_READ | EV_PERSIST, client_read, &c);
	event_add(ev, NULL);
	evtest_reply(c.f.s.held, 404, "not here");
	c.f.s.held = NULL;
	ck_assert(evtest_run_until(c.f.base, &c.got, 10000));
	ck_assert_ptr_nonnull(strstr(buf_str(&c.answer), "no EWS endpoint"));
	ck_assert_ptr_null(c.running);
	event_free(ev);
	fd = ctl_client(&c, "verify\n");
	evtest_run_for(c.f.base, 300);
	ck_assert_uint_eq(c.f.s.requests, 2);	/* the next one runs */
	ck_assert_ptr_nonnull(c.running);
	close(fd);
	evtest_run_for(c.f.base, 100);
	buf_free(&c2.answer);
	ctl_free(&c);
}
END_TEST

static Suite *
suite(void)
{
	Suite	*s = suite_create("verify");
	TCase	*tc = tcase_create("checks");

	tcase_add_test(tc, test_basic_only_on_callers_loop);
	tcase_add_test(tc, test_not_ews_endpoint);
	tcase_add_test(tc, test_ntlm_refused_never_falls_back_to_basic);
	tcase_add_test(tc, test_stop_while_waiting);
	tcase_add_test(tc, test_waits_for_the_daemons_budget);
	tcase_add_test(tc, test_control_verify);
	tcase_add_test(tc, test_control_verify_cancelled);
	tcase_add_test(tc, test_control_verify_single_flight);
	suite_add_tcase(s, tc);
	return (s);
}

int
main(void)
{
	SRunner	*sr;
	int	 failed, fd;

	if ((fd = mkstemp(pwfile)) == -1)
		return (1);
	if (write(fd, "secret\n", 7) != 7)
		return (1);
	close(fd);
	sr = srunner_create(suite());
	srunner_run_all(sr, CK_NORMAL);
	failed = srunner_ntests_failed(sr);
	srunner_free(sr);
	unlink(pwfile);
	return (failed == 0 ? 0 : 1);
}
