/*
 * ewsgw - Exchange calendar presence gateway
 * SPDX-License-Identifier: ISC
 *
 * Unit tests: configuration parsing, defaults, every error message with
 * its FILE:LINE, secrets, mailboxes, sinks, reload rules.
 */
#include "config.h"

#include <sys/stat.h>

#include <check.h>
#include <dirent.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <syslog.h>
#include <unistd.h>

#include "base/buf.h"
#include "base/conf.h"
#include "base/log.h"
#include "base/xmalloc.h"

#ifndef TOP_SRCDIR
#define TOP_SRCDIR	"."
#endif

/* A scratch directory per test; flat, removed with everything in it. */
static char	 tdir[PATH_MAX];

static void
tdir_setup(void)
{
	const char	*tmp = getenv("TMPDIR");

	snprintf(tdir, sizeof(tdir), "%s/check_conf.XXXXXX",
	    tmp != NULL && *tmp != '\0' ? tmp : "/tmp");
	ck_assert_ptr_nonnull(mkdtemp(tdir));
	unsetenv("CREDENTIALS_DIRECTORY");
}

static void
tdir_teardown(void)
{
	DIR		*d;
	struct dirent	*de;
	char		*p;

	if ((d = opendir(tdir)) == NULL)
		return;
	while ((de = readdir(d)) != NULL) {
		if (strcmp(de->d_name, ".") == 0 ||
		    strcmp(de->d_name, "..") == 0)
			continue;
		xasprintf(&p, "%s/%s", tdir, de->d_name);
		unlink(p);
		free(p);
	}
	closedir(d);
	rmdir(tdir);
}

/* Write name in the scratch dir; returns its path (allocated). */
static char *
wfile(const char *name, const char *content)
{
	char	*p;
	FILE	*f;

	xasprintf(&p, "%s/%s", tdir, name);
	f = fopen(p, "w");
	ck_assert_ptr_nonnull(f);
	fputs(content, f);
	ck_assert_int_eq(fclose(f), 0);
	/* Secret files are refused when everyone may read them. */
	ck_assert_int_eq(chmod(p, 0600), 0);
	return (p);
}

/*
 * The smallest valid [exchange] section: NTLM with a password file in
 * the scratch dir.  Returned text is allocated.
 */
static char *
base_exchange(void)
{
	char	*pw, *s;

	pw = wfile("pw", "s3cret-pass\n");
	xasprintf(&s, "[exchange]\nurl = https://mail.example.com/EWS/"
	    "Exchange.asmx\nusername = EXAMPLE\\svc-ewsgw\n"
	    "password_file = %s\n", pw);
	free(pw);
	return (s);
}

/*
 * Compare two multi-line texts, reporting only the first line that
 * differs (check cannot carry a long message out of the child).
 */
static void
assert_same(const char *got, const char *want)
{
	size_t	 i = 0, ls = 0, n;
	int	 line = 1;

	while (got[i] != '\0' && got[i] == want[i]) {
		if (got[i++] == '\n') {
			ls = i;
			line++;
		}
	}
	if (got[i] == want[i])
		return;
	n = strcspn(want + ls, "\n");
	ck_abort_msg("error line %d differs:\n got: %.*s\nwant: %.*s", line,
	    (int)(strcspn(got + ls, "\n") > 300 ? 300 :
	    strcspn(got + ls, "\n")), got + ls, (int)(n > 300 ? 300 : n),
	    want + ls);
}

/* Load text as tdir/ewsgw.conf. */
static struct config *
load_text(const char *text, char **errors, char **path)
{
	struct config	*cf;
	char		*p;

	p = wfile("ewsgw.conf", text);
	cf = conf_load(p, errors);
	if (path != NULL)
		*path = p;
	else
		free(p);
	return (cf);
}

/* base_exchange() followed by more. */
static struct config *
load_with_base(const char *more, char **errors, char **path)
{
	struct config	*cf;
	char		*b, *text;

	b = base_exchange();
	xasprintf(&text, "%s%s", b, more);
	cf = load_text(text, errors, path);
	free(b);
	free(text);
	return (cf);
}

/* conf_reload() of text as tdir/ewsgw.conf, while old runs. */
static struct config *
reload_text(const struct config *old, const char *text, char **errors,
    char **kept)
{
	struct config	*cf;
	char		*p;

	p = wfile("ewsgw.conf", text);
	cf = conf_reload(p, old, errors, kept);
	free(p);
	return (cf);
}

/* conf_reload() of base_exchange() followed by more, while old runs. */
static struct config *
reload_with_base(const struct config *old, const char *more, char **errors,
    char **kept)
{
	struct config	*cf;
	char		*b, *text;

	b = base_exchange();
	xasprintf(&text, "%s%s", b, more);
	cf = reload_text(old, text, errors, kept);
	free(b);
	free(text);
	return (cf);
}

/*
 * text must fail with exactly these errors: every line of expected is
 * "LINE: message" or " message" (no line), and gets the file name.
 */
static void
expect_errors(const char *text, const char *expected)
{
	struct config	*cf;
	char		*errs = NULL, *path, *want = NULL, *line, *copy, *sp;
	char		*tmp;

	cf = load_text(text, &errs, &path);
	ck_assert_ptr_null(cf);
	ck_assert_ptr_nonnull(errs);
	copy = xstrdup(expected);
	want = xstrdup("");
	for (line = strtok_r(copy, "\n", &sp); line != NULL;
	    line = strtok_r(NULL, "\n", &sp)) {
		xasprintf(&tmp, "%s%s:%s\n", want, path, line);
		free(want);
		want = tmp;
	}
	assert_same(errs, want);
	free(copy);
	free(want);
	free(errs);
	free(path);
}

/* As expect_errors with base_exchange() in front (lines 1..4). */
static void
expect_errors_base(const char *more, const char *expected)
{
	char	*b, *text;

	b = base_exchange();
	xasprintf(&text, "%s%s", b, more);
	expect_errors(text, expected);
	free(b);
	free(text);
}

START_TEST(test_minimal_defaults)
{
	struct config	*cf;
	char		*errs = NULL, *path;

	cf = load_with_base("", &errs, &path);
	ck_assert_msg(cf != NULL, "%s", errs);
	ck_assert_ptr_null(errs);
	ck_assert_str_eq(cf->path, path);
	ck_assert_str_eq(cf->exchange.url,
	    "https://mail.example.com/EWS/Exchange.asmx");
	ck_assert_str_eq(cf->exchange.version, "Exchange2013_SP1");
	ck_assert_int_eq(cf->exchange.auth, CONF_AUTH_NTLM);
	ck_assert_str_eq(cf->exchange.username, "EXAMPLE\\svc-ewsgw");
	ck_assert_str_eq(cf->exchange.password, "s3cret-pass");
	ck_assert(cf->exchange.tls_verify);
	ck_assert_ptr_null(cf->exchange.ca_file);
	ck_assert_int_eq(cf->exchange.mode, CONF_MODE_STREAMING);
	ck_assert_int_eq(cf->exchange.impersonation, CONF_ID_SMTP);
	ck_assert_int_eq(cf->exchange.request_timeout_ms, 60000);
	ck_assert_ptr_null(cf->exchange.token_url);
	ck_assert(!cf->exchange.autodiscover);
	ck_assert_ptr_null(cf->exchange.autodiscover_url);
	ck_assert_uint_eq(cf->presence.oof_share, 10);
	ck_assert_int_eq(cf->presence.oof_interval_ms, 30000);
	ck_assert_ptr_null(cf->push.listen);
	ck_assert_uint_eq(cf->push.status_frequency, 1);
	ck_assert_int_eq(cf->push.heartbeat_timeout_ms, 0);
	ck_assert_uint_eq(cf->throttling.max_concurrency, 10);
	ck_assert_uint_eq(cf->throttling.max_subscriptions, 5000);
	ck_assert_uint_eq(cf->throttling.subscriptions_per_connection, 200);
	ck_assert_uint_eq(cf->throttling.connection_timeout, 30);
	ck_assert_uint_eq(cf->throttling.find_count_limit, 1000);
	ck_assert_int_eq(cf->throttling.charging, CONF_CHARGING_IMPERSONATED);
	ck_assert(!cf->throttling.charging_set);
	ck_assert_uint_eq(cf->throttling.streaming_connections_per_anchor, 3);
	ck_assert_uint_eq(cf->throttling.short_request_share, 20);
	ck_assert_int_eq(cf->throttling.idle_timeout_ms, 90000);
	ck_assert_int_eq(cf->throttling.backoff_max_ms, 300000);
	ck_assert_int_eq(cf->throttling.poll_interval_ms, 60000);
	ck_assert_uint_eq(cf->nmailboxes, 0);
	ck_assert_ptr_null(cf->mailbox_file);
	ck_assert_int_eq(cf->presence.horizon_ms, 24 * 3600 * 1000LL);
	ck_assert_int_eq(cf->presence.resync_interval_ms, 6 * 3600 * 1000LL);
	ck_assert_int_eq(cf->presence.lookback_ms, 300000);
	ck_assert_int_eq(cf->presence.debounce_ms, 2000);
	ck_assert_int_eq(cf->presence.tentative, CONF_SHOW_BUSY);
	ck_assert_int_eq(cf->presence.all_day, CONF_SHOW_AVAILABLE);
	ck_assert_int_eq(cf->presence.working_elsewhere, CONF_SHOW_AVAILABLE);
	ck_assert_int_eq(cf->presence.free, CONF_SHOW_AVAILABLE);
	ck_assert_int_eq(cf->presence.oof, CONF_SHOW_AWAY);
	ck_assert_str_eq(cf->status.socket, EWSGW_RUNSTATEDIR
	    "/ewsgw/status.sock");
	ck_assert_uint_eq(cf->status.mode, 0660);
	ck_assert_ptr_null(cf->status.group);
	ck_assert_int_eq(cf->log.level, LOG_INFO);
	ck_assert_uint_eq(cf->nsinks, 1);
	ck_assert_str_eq(cf->sinks[0].name, "log");
	ck_assert_str_eq(cf->sinks[0].type, "log");
	ck_assert_uint_eq(cf->sinks[0].nkv, 0);
	conf_free(cf);
	free(path);
}
END_TEST

START_TEST(test_every_key)
{
	struct config	*cf;
	char		*errs = NULL, *text, *ca, *crt, *key, *pw, *sec;

	ca = wfile("ca.pem", "x\n");
	crt = wfile("client.pem", "x\n");
	key = wfile("client.key", "x\n");
	pw = wfile("pw", "pa#ss word\r\nsecond line\n");
	sec = wfile("secret", "client-secret-value");
	xasprintf(&text,
	    "# leading comment\n"
	    "; another comment\n"
	    "[exchange]   # trailing comment on a header\n"
	    "  url=\"http://ex.example.org/EWS/Exchange.asmx\"  \n"
	    "version = Exchange2016\n"
	    "auth = basic\n"
	    "username = svc@example.org   # who we are\n"
	    "password_file = %s\n"
	    "ca_file = %s\n"
	    "client_cert = %s\n"
	    "client_key = \"client.key\"\n"
	    "tls_verify = off\n"
	    "mode = push\n"
	    "impersonation = upn\n"
	    "request_timeout = 2m\n"
	    "tenant = contoso.onmicrosoft.com\n"
	    "client_id = 11111111-2222-3333-4444-555555555555\n"
	    "client_secret_file = %s\n"
	    "token_url = https://login.example.net/token\n"
	    "\n"
	    "[push]\n"
	    "listen = 127.0.0.1:8443\n"
	    "url = https://gw.example.org:8443/ews/push\n"
	    "certificate = %s\n"
	    "key = %s\n"
	    "status_frequency = 1440\n"
	    "heartbeat_timeout = 3m\n"
	    "[throttling]\n"
	    "max_concurrency = 27\n"
	    "max_subscriptions = 1000000\n"
	    "subscriptions_per_connection = 150\n"
	    "connection_timeout = 15m\n"
	    "find_count_limit = 250\n"
	    "charging = service-account\n"
	    "streaming_connections_per_anchor = 7\n"
	    "short_request_share = 0\n"
	    "idle_timeout = 120\n"
	    "backoff_max = 1h\n"
	    "poll_interval = 2m\n"
	    "[mailboxes]\n"
	    "mailbox = Alice@Example.ORG\n"
	    "mailbox = bob@example.org upn=bob.b@corp.example.org\n"
	    "[presence]\n"
	    "horizon = 2d\n"
	    "resync_interval = 30m\n"
	    "lookback = 0\n"
	    "debounce = 250ms\n"
	    "tentative = available\n"
	    "all_day = ignore\n"
	    "working_elsewhere = away\n"
	    "free = busy\n"
	    "oof = busy\n"
	    "[status]\n"
	    "socket = /run/test/ewsgw.sock\n"
	    "mode = 600\n"
	    "group = \"ewsgw admins\"\n"
	    "[log]\n"
	    "level = debug\n",
	    pw, ca, crt, sec, crt, key);
	cf = load_text(text, &errs, NULL);
	ck_assert_msg(cf != NULL, "%s", errs);
	ck_assert_str_eq(cf->exchange.url,
	    "http://ex.example.org/EWS/Exchange.asmx");
	ck_assert_str_eq(cf->exchange.version, "Exchange2016");
	ck_assert_int_eq(cf->exchange.auth, CONF_AUTH_BASIC);
	ck_assert_str_eq(cf->exchange.username, "svc@example.org");
	ck_assert_str_eq(cf->exchange.password, "pa#ss word");
	ck_assert_str_eq(cf->exchange.password_file, pw);
	ck_assert_str_eq(cf->exchange.ca_file, ca);
	ck_assert_str_eq(cf->exchange.client_cert, crt);
	ck_assert_str_eq(cf->exchange.client_key, key);	/* relative */
	ck_assert(!cf->exchange.tls_verify);
	ck_assert_int_eq(cf->exchange.mode, CONF_MODE_PUSH);
	ck_assert_int_eq(cf->exchange.impersonation, CONF_ID_UPN);
	ck_assert_int_eq(cf->exchange.request_timeout_ms, 120000);
	ck_assert_str_eq(cf->exchange.tenant, "contoso.onmicrosoft.com");
	ck_assert_str_eq(cf->exchange.client_id,
	    "11111111-2222-3333-4444-555555555555");
	ck_assert_str_eq(cf->exchange.client_secret, "client-secret-value");
	ck_assert_str_eq(cf->exchange.token_url,
	    "https://login.example.net/token");
	ck_assert_str_eq(cf->push.listen, "127.0.0.1:8443");
	ck_assert_str_eq(cf->push.url, "https://gw.example.org:8443/ews/push");
	ck_assert_str_eq(cf->push.certificate, crt);
	ck_assert_str_eq(cf->push.key, key);
	ck_assert_uint_eq(cf->push.status_frequency, 1440);
	ck_assert_int_eq(cf->push.heartbeat_timeout_ms, 180000);
	ck_assert_uint_eq(cf->throttling.max_concurrency, 27);
	ck_assert_uint_eq(cf->throttling.max_subscriptions, 1000000);
	ck_assert_uint_eq(cf->throttling.subscriptions_per_connection, 150);
	ck_assert_uint_eq(cf->throttling.connection_timeout, 15);
	ck_assert_uint_eq(cf->throttling.find_count_limit, 250);
	ck_assert_int_eq(cf->throttling.charging,
	    CONF_CHARGING_SERVICE_ACCOUNT);
	ck_assert(cf->throttling.charging_set);
	ck_assert_uint_eq(cf->throttling.streaming_connections_per_anchor, 7);
	ck_assert_uint_eq(cf->throttling.short_request_share, 0);
	ck_assert_int_eq(cf->throttling.idle_timeout_ms, 120000);
	ck_assert_int_eq(cf->throttling.backoff_max_ms, 3600000);
	ck_assert_int_eq(cf->throttling.poll_interval_ms, 120000);
	ck_assert_uint_eq(cf->nmailboxes, 2);
	ck_assert_str_eq(cf->mailboxes[0].address, "alice@example.org");
	/* impersonation = upn: the address stands in for the UPN */
	ck_assert_int_eq(cf->mailboxes[0].idtype, CONF_ID_UPN);
	ck_assert_str_eq(cf->mailboxes[0].id, "alice@example.org");
	ck_assert_int_eq(cf->mailboxes[0].line, 41);
	ck_assert(!cf->mailboxes[0].in_file);
	ck_assert_int_eq(cf->mailboxes[1].idtype, CONF_ID_UPN);
	ck_assert_str_eq(cf->mailboxes[1].id, "bob.b@corp.example.org");
	ck_assert_int_eq(cf->presence.horizon_ms, 2 * 86400 * 1000LL);
	ck_assert_int_eq(cf->presence.resync_interval_ms, 1800000);
	ck_assert_int_eq(cf->presence.lookback_ms, 0);
	ck_assert_int_eq(cf->presence.debounce_ms, 250);
	ck_assert_int_eq(cf->presence.tentative, CONF_SHOW_AVAILABLE);
	ck_assert_int_eq(cf->presence.all_day, CONF_SHOW_IGNORE);
	ck_assert_int_eq(cf->presence.working_elsewhere, CONF_SHOW_AWAY);
	ck_assert_int_eq(cf->presence.free, CONF_SHOW_BUSY);
	ck_assert_int_eq(cf->presence.oof, CONF_SHOW_BUSY);
	ck_assert_str_eq(cf->status.socket, "/run/test/ewsgw.sock");
	ck_assert_uint_eq(cf->status.mode, 0600);
	ck_assert_str_eq(cf->status.group, "ewsgw admins");
	ck_assert_int_eq(cf->log.level, LOG_DEBUG);
	conf_free(cf);
	free(text);
	free(ca);
	free(crt);
	free(key);
	free(pw);
	free(sec);
}
END_TEST

START_TEST(test_version_defaults)
{
	static const struct {
		const char	*version;
		enum conf_charging charging;
		unsigned	 anchor;
	} t[] = {
		{ "Exchange2007_SP1", CONF_CHARGING_SERVICE_ACCOUNT, 10 },
		{ "Exchange2010", CONF_CHARGING_SERVICE_ACCOUNT, 10 },
		{ "Exchange2010_SP1", CONF_CHARGING_SERVICE_ACCOUNT, 10 },
		{ "Exchange2010_SP2", CONF_CHARGING_IMPERSONATED, 10 },
		{ "Exchange2013", CONF_CHARGING_IMPERSONATED, 3 },
		{ "Exchange2013_SP1", CONF_CHARGING_IMPERSONATED, 3 },
		{ "Exchange2016", CONF_CHARGING_IMPERSONATED, 10 },
		{ "V2017_07_11", CONF_CHARGING_IMPERSONATED, 10 },
	};
	struct config	*cf;
	char		*errs = NULL, *more;
	size_t		 i;

	for (i = 0; i < sizeof(t) / sizeof(t[0]); i++) {
		xasprintf(&more, "version = %s\n", t[i].version);
		cf = load_with_base(more, &errs, NULL);
		ck_assert_msg(cf != NULL, "%s", errs);
		ck_assert_str_eq(cf->exchange.version, t[i].version);
		ck_assert_int_eq(cf->throttling.charging, t[i].charging);
		ck_assert(!cf->throttling.charging_set);
		ck_assert_uint_eq(
		    cf->throttling.streaming_connections_per_anchor,
		    t[i].anchor);
		conf_free(cf);
		free(more);
	}
	/* Explicit values win over the version's defaults. */
	cf = load_with_base("version = Exchange2010\n[throttling]\n"
	    "charging = impersonated\nstreaming_connections_per_anchor = 2\n",
	    &errs, NULL);
	ck_assert_msg(cf != NULL, "%s", errs);
	ck_assert_int_eq(cf->throttling.charging, CONF_CHARGING_IMPERSONATED);
	ck_assert(cf->throttling.charging_set);
	ck_assert_uint_eq(cf->throttling.streaming_connections_per_anchor, 2);
	conf_free(cf);
}
END_TEST

/* Load text with stderr (where warnings go) captured into *log. */
static struct config *
load_logged(const char *text, char **errs, char **log)
{
	struct config	*cf;
	char		*tmpl;
	FILE		*f;
	long		 len;
	int		 fd, saved;

	xasprintf(&tmpl, "%s/stderr.XXXXXX", tdir);
	fd = mkstemp(tmpl);
	ck_assert_int_ge(fd, 0);
	unlink(tmpl);
	free(tmpl);
	fflush(stderr);
	saved = dup(STDERR_FILENO);
	dup2(fd, STDERR_FILENO);
	cf = load_text(text, errs, NULL);
	fflush(stderr);
	dup2(saved, STDERR_FILENO);
	close(saved);
	f = fdopen(fd, "r");
	fseek(f, 0, SEEK_END);
	len = ftell(f);
	rewind(f);
	*log = xcalloc(1, (size_t)len + 1);
	ck_assert_int_eq(fread(*log, 1, (size_t)len, f), len);
	fclose(f);
	return (cf);
}

/*
 * A secret file everyone may read is refused; one its group may read is
 * a warning, except in systemd's credentials directory.
 */
START_TEST(test_secret_file_mode)
{
	struct config	*cf;
	char		*pw, *text, *errs = NULL, *log = NULL, *want;

	log_init("check_conf", LOG_TARGET_STDERR, LOG_WARNING);
	pw = wfile("modepw", "s3cret-pass\n");
	xasprintf(&text, "[exchange]\nurl = https://h/EWS/Exchange.asmx\n"
	    "username = u\npassword_file = %s\n", pw);

	ck_assert_int_eq(chmod(pw, 0644), 0);
	xasprintf(&want, "4: password_file '%s' is readable by everyone "
	    "(mode 0644): chmod 0600 it, or load it as a systemd credential",
	    pw);
	expect_errors(text, want);
	free(want);
	ck_assert_int_eq(chmod(pw, 0604), 0);
	cf = load_text(text, &errs, NULL);
	ck_assert_ptr_null(cf);
	ck_assert_ptr_nonnull(strstr(errs, "readable by everyone"));
	ck_assert_ptr_null(strstr(errs, "s3cret"));
	free(errs);
	errs = NULL;

	ck_assert_int_eq(chmod(pw, 0640), 0);
	unsetenv("CREDENTIALS_DIRECTORY");
	cf = load_logged(text, &errs, &log);
	ck_assert_msg(cf != NULL, "%s", errs);
	ck_assert_str_eq(cf->exchange.password, "s3cret-pass");
	ck_assert_ptr_nonnull(strstr(log, "password_file"));
	ck_assert_ptr_nonnull(strstr(log, "is readable by its group (mode "
	    "0640)"));
	ck_assert_ptr_null(strstr(log, "s3cret"));
	conf_free(cf);
	free(log);

	/* systemd's credentials directory: no warning. */
	setenv("CREDENTIALS_DIRECTORY", tdir, 1);
	cf = load_logged(text, &errs, &log);
	ck_assert_msg(cf != NULL, "%s", errs);
	ck_assert_ptr_null(strstr(log, "readable"));
	conf_free(cf);
	free(log);
	unsetenv("CREDENTIALS_DIRECTORY");

	ck_assert_int_eq(chmod(pw, 0600), 0);
	cf = load_logged(text, &errs, &log);
	ck_assert_msg(cf != NULL, "%s", errs);
	ck_assert_str_eq(log, "");
	conf_free(cf);
	free(log);
	free(text);
	free(pw);
}
END_TEST

START_TEST(test_credentials)
{
	struct config	*cf;
	char		*errs = NULL, *path, *want;

	free(wfile("ewsgw-password", "from-credential\n"));
	setenv("CREDENTIALS_DIRECTORY", tdir, 1);
	cf = load_text("[exchange]\nurl = https://h/EWS/Exchange.asmx\n"
	    "username = u\npassword_file = ewsgw-password\n", &errs, NULL);
	ck_assert_msg(cf != NULL, "%s", errs);
	ck_assert_str_eq(cf->exchange.password, "from-credential");
	ck_assert_str_eq(cf->exchange.password_file, "ewsgw-password");
	conf_free(cf);

	/* A credential that is not there: the key's line, never a secret. */
	cf = load_text("[exchange]\nurl = https://h/EWS/Exchange.asmx\n"
	    "username = u\npassword_file = nothere\n", &errs, &path);
	ck_assert_ptr_null(cf);
	xasprintf(&want, "%s:4: cannot read password_file '%s/nothere': "
	    "No such file or directory\n", path, tdir);
	ck_assert_str_eq(errs, want);
	free(want);
	free(errs);
	free(path);

	/*
	 * Outside systemd the same name is read from the credential store,
	 * the directory the unit's LoadCredential= loads it from.
	 */
	unsetenv("CREDENTIALS_DIRECTORY");
	ck_assert_str_eq(conf_credential_store(), EWSGW_SYSCONFDIR "/ewsgw");
	conf_set_credential_store(tdir);
	cf = load_text("[exchange]\nurl = https://h/EWS/Exchange.asmx\n"
	    "username = u\npassword_file = ewsgw-password\n", &errs, NULL);
	ck_assert_msg(cf != NULL, "%s", errs);
	ck_assert_str_eq(cf->exchange.password, "from-credential");
	conf_free(cf);
	xasprintf(&want, "4: cannot read password_file '%s/nothere': No "
	    "such file or directory (no $CREDENTIALS_DIRECTORY: a credential "
	    "is read from the file the unit loads it from)", tdir);
	expect_errors("[exchange]\nurl = https://h/\nusername = u\n"
	    "password_file = nothere\n", want);
	free(want);
	conf_set_credential_store(EWSGW_SYSCONFDIR "/ewsgw");

	/* Empty files are refused; the secret never shows in messages. */
	free(wfile("empty", "\n"));
	setenv("CREDENTIALS_DIRECTORY", tdir, 1);
	xasprintf(&want, "4: password_file '%s/empty' is empty", tdir);
	expect_errors("[exchange]\nurl = https://h/\nusername = u\n"
	    "password_file = empty\n", want);
	free(want);
	cf = load_text("[exchange]\nurl = https://h/\nusername = u\n"
	    "password_file = ewsgw-password\nbogus = 1\n", &errs, NULL);
	ck_assert_ptr_null(cf);
	ck_assert_ptr_null(strstr(errs, "from-credential"));
	free(errs);
	unsetenv("CREDENTIALS_DIRECTORY");
}
END_TEST

START_TEST(test_oauth2)
{
	struct config	*cf;
	char		*errs = NULL, *text, *sec;

	sec = wfile("secret", "app-secret\n");
	xasprintf(&text, "[exchange]\nurl = https://outlook.office365.com/"
	    "EWS/Exchange.asmx\nauth = oauth2\ntenant = contoso.example\n"
	    "client_id = abc\nclient_secret_file = %s\n", sec);
	cf = load_text(text, &errs, NULL);
	ck_assert_msg(cf != NULL, "%s", errs);
	ck_assert_int_eq(cf->exchange.auth, CONF_AUTH_OAUTH2);
	ck_assert_ptr_null(cf->exchange.username);
	ck_assert_ptr_null(cf->exchange.password);
	ck_assert_str_eq(cf->exchange.client_secret, "app-secret");
	ck_assert_str_eq(cf->exchange.token_url, "https://login."
	    "microsoftonline.com/contoso.example/oauth2/v2.0/token");
	conf_free(cf);
	free(text);
	free(sec);

	expect_errors("\n[exchange]\nurl = https://h/\nauth = oauth2\n",
	    "2: missing required key 'tenant' in [exchange] (needed for "
	    "auth = oauth2)\n"
	    "2: missing required key 'client_id' in [exchange] (needed for "
	    "auth = oauth2)\n"
	    "2: missing required key 'client_secret_file' in [exchange] "
	    "(needed for auth = oauth2)");
	/* negotiate needs a user but no password (Kerberos). */
	cf = load_text("[exchange]\nurl = https://h/\nauth = negotiate\n"
	    "username = u@EXAMPLE.ORG\n", &errs, NULL);
	ck_assert_msg(cf != NULL, "%s", errs);
	ck_assert_ptr_null(cf->exchange.password);
	conf_free(cf);
}
END_TEST

START_TEST(test_mailboxes)
{
	struct config	*cf;
	char		*errs = NULL, *mbf, *more;

	mbf = wfile("mailboxes.txt",
	    "# one per line\n"
	    "\n"
	    "Carol@Example.org\n"
	    "  dave@example.org   upn=dave@ad.example.org  # comment\n"
	    "erin@example.org "
	    "sid=S-1-5-21-1004336348-1177238915-682003330-512\n"
	    "frank@sub.example.org\r\n"
	    "grace@example.org");
	xasprintf(&more, "[mailboxes]\nmailbox = alice@example.org\n"
	    "file = mailboxes.txt\nmailbox = bob@example.org sid=S-1-5-18\n");
	cf = load_with_base(more, &errs, NULL);
	ck_assert_msg(cf != NULL, "%s", errs);
	ck_assert_str_eq(cf->mailbox_file, mbf);
	ck_assert_uint_eq(cf->nmailboxes, 7);
	ck_assert_str_eq(cf->mailboxes[0].address, "alice@example.org");
	ck_assert_int_eq(cf->mailboxes[0].idtype, CONF_ID_SMTP);
	ck_assert_ptr_null(cf->mailboxes[0].id);
	ck_assert_int_eq(cf->mailboxes[0].line, 6);
	ck_assert_str_eq(cf->mailboxes[1].address, "bob@example.org");
	ck_assert_int_eq(cf->mailboxes[1].idtype, CONF_ID_SID);
	ck_assert_str_eq(cf->mailboxes[1].id, "S-1-5-18");
	ck_assert_str_eq(cf->mailboxes[2].address, "carol@example.org");
	ck_assert(cf->mailboxes[2].in_file);
	ck_assert_int_eq(cf->mailboxes[2].line, 3);
	ck_assert_int_eq(cf->mailboxes[3].idtype, CONF_ID_UPN);
	ck_assert_str_eq(cf->mailboxes[3].id, "dave@ad.example.org");
	ck_assert_int_eq(cf->mailboxes[3].line, 4);
	ck_assert_int_eq(cf->mailboxes[4].idtype, CONF_ID_SID);
	ck_assert_str_eq(cf->mailboxes[4].id,
	    "S-1-5-21-1004336348-1177238915-682003330-512");
	ck_assert_str_eq(cf->mailboxes[5].address, "frank@sub.example.org");
	ck_assert_str_eq(cf->mailboxes[6].address, "grace@example.org");
	ck_assert_int_eq(cf->mailboxes[6].line, 7);
	conf_free(cf);
	free(more);

	/* Duplicates within and across files name both places. */
	xasprintf(&more, "[mailboxes]\nmailbox = CAROL@example.org\n"
	    "file = %s\nmailbox = x@example.org\nmailbox = X@Example.org\n",
	    mbf);
	cf = load_with_base(more, &errs, NULL);
	ck_assert_ptr_null(cf);
	{
		char *want, *cpath;

		xasprintf(&cpath, "%s/ewsgw.conf", tdir);
		xasprintf(&want, "%s:9: duplicate mailbox 'x@example.org' "
		    "(first at %s:8)\n%s:3: duplicate mailbox "
		    "'carol@example.org' (first at %s:6)\n", cpath, cpath, mbf,
		    cpath);
		ck_assert_str_eq(errs, want);
		free(want);
		free(cpath);
	}
	free(errs);
	free(more);
	free(mbf);

	expect_errors_base("[mailboxes]\nmailbox = nobody\n"
	    "mailbox = a@b@c\nmailbox = a@example.org upn=x\n"
	    "mailbox = b@example.org sid=S-1-x\n"
	    "mailbox = c@example.org foo=bar\n"
	    "mailbox = d@example.org upn=d@x sid=S-1-5\n"
	    "mailbox = \"\"\n"
	    "mailbox = bad..dots@example.org\n",
	    "6: invalid mailbox address 'nobody' (expected local@domain)\n"
	    "7: invalid mailbox address 'a@b@c' (expected local@domain)\n"
	    "8: invalid UPN 'x' for mailbox 'a@example.org' (expected "
	    "user@domain)\n"
	    "9: invalid SID 'S-1-x' for mailbox 'b@example.org' (expected "
	    "S-1-...)\n"
	    "10: unexpected 'foo=bar' after mailbox 'c@example.org' "
	    "(expected upn=UPN or sid=SID)\n"
	    "11: unexpected 'sid=S-1-5' after mailbox 'd@example.org' "
	    "(expected one upn=UPN or sid=SID)\n"
	    "12: empty mailbox\n"
	    "13: invalid mailbox address 'bad..dots@example.org' (expected "
	    "local@domain)");
	expect_errors_base("[exchange]\n", "5: duplicate section [exchange] "
	    "(first at line 1)");
	expect_errors_base("impersonation = sid\n[mailboxes]\n"
	    "mailbox = a@example.org\nmailbox = b@example.org sid=S-1-5-7\n",
	    "7: mailbox 'a@example.org' has no sid= but impersonation is sid");
	{
		char *want;

		xasprintf(&want, "6: cannot read mailbox file '%s/none.txt': "
		    "No such file or directory", tdir);
		expect_errors_base("[mailboxes]\nfile = none.txt\n", want);
		free(want);
	}
}
END_TEST

START_TEST(test_mailbox_file_errors)
{
	struct config	*cf;
	char		*errs = NULL, *mbf, *want, *more;

	mbf = wfile("mb", "ok@example.org\nnot-an-address\n\n"
	    "y@example.org upn=\n");
	xasprintf(&more, "[mailboxes]\nfile = %s\n", mbf);
	cf = load_with_base(more, &errs, NULL);
	ck_assert_ptr_null(cf);
	xasprintf(&want, "%s:2: invalid mailbox address 'not-an-address' "
	    "(expected local@domain)\n%s:4: invalid UPN '' for mailbox "
	    "'y@example.org' (expected user@domain)\n", mbf, mbf);
	ck_assert_str_eq(errs, want);
	free(want);
	free(errs);
	free(more);
	free(mbf);
}
END_TEST

START_TEST(test_sinks)
{
	struct config		*cf;
	const struct conf_kv	*kv;
	char			*errs = NULL;

	cf = load_with_base("[sink journal]\ntype = log\n"
	    "[sink hook]\ntype = webhook\nurl = \"https://h/x#frag\"\n"
	    "timeout = 5s # comment\nheader = X-Token: abc\nempty =\n",
	    &errs, NULL);
	ck_assert_msg(cf != NULL, "%s", errs);
	ck_assert_uint_eq(cf->nsinks, 2);
	ck_assert_str_eq(cf->sinks[0].name, "journal");
	ck_assert_str_eq(cf->sinks[0].type, "log");
	ck_assert_int_eq(cf->sinks[0].line, 5);
	ck_assert_uint_eq(cf->sinks[0].nkv, 0);
	ck_assert_str_eq(cf->sinks[1].name, "hook");
	ck_assert_str_eq(cf->sinks[1].type, "webhook");
	ck_assert_uint_eq(cf->sinks[1].nkv, 4);
	kv = conf_sink_get(&cf->sinks[1], "url");
	ck_assert_ptr_nonnull(kv);
	ck_assert_str_eq(kv->value, "https://h/x#frag");
	ck_assert_int_eq(kv->line, 9);
	ck_assert_str_eq(conf_sink_get(&cf->sinks[1], "timeout")->value, "5s");
	ck_assert_str_eq(conf_sink_get(&cf->sinks[1], "header")->value,
	    "X-Token: abc");
	ck_assert_str_eq(conf_sink_get(&cf->sinks[1], "empty")->value, "");
	ck_assert_ptr_null(conf_sink_get(&cf->sinks[1], "type"));
	ck_assert_ptr_null(conf_sink_get(&cf->sinks[1], "nope"));
	conf_free(cf);

	expect_errors_base("[sink a]\ntype = log\n[sink a]\ntype = file\n"
	    "[sink b]\npath = /x\npath = /y\n[sink c]\ntype = carrier-pigeon\n"
	    "[sink]\n[sink bad/name]\n[sink d]\ntype = log\ntype = file\n",
	    "7: duplicate sink 'a' (first at line 5)\n"
	    "11: duplicate key 'path' in [sink b] (first at line 10)\n"
	    "13: invalid sink type 'carrier-pigeon' in [sink c] (expected "
	    "log, file, webhook, exec, sip, xmpp or plugin)\n"
	    "14: [sink] needs a name: [sink NAME]\n"
	    "15: invalid sink name 'bad/name' (letters, digits, '_', '-' and "
	    "'.' only)\n"
	    "18: duplicate key 'type' in [sink d]\n"
	    "9: missing required key 'type' in [sink b]");
}
END_TEST

START_TEST(test_syntax_errors)
{
	expect_errors("url = https://h/\n[exchange\n[exchange] x\n"
	    "[exchange]\njust words\n = 5\nbad key = 1\nurl = \"https://h/\n"
	    "url = \"https://h/\" junk\n",
	    "1: key 'url' outside of any section\n"
	    "2: missing ']' in section header\n"
	    "3: unexpected text after section header\n"
	    "5: syntax error: expected 'key = value' or '[section]'\n"
	    "6: syntax error: missing key before '='\n"
	    "7: syntax error: invalid key name 'bad key'\n"
	    "8: unterminated quoted value for 'url'\n"
	    "9: unexpected text after the closing quote for 'url'\n"
	    "4: missing required key 'url' in [exchange]\n"
	    "4: missing required key 'username' in [exchange] (needed for "
	    "auth = ntlm)\n"
	    "4: missing required key 'password_file' in [exchange] (needed "
	    "for auth = ntlm)");
	/* No [exchange] at all: line 0 is left out. */
	expect_errors("# nothing\n",
	    " missing required key 'url' in [exchange]\n"
	    " missing required key 'username' in [exchange] (needed for "
	    "auth = ntlm)\n"
	    " missing required key 'password_file' in [exchange] (needed "
	    "for auth = ntlm)");
}
END_TEST

START_TEST(test_value_errors)
{
	expect_errors_base(
	    "max_concurency = 5\n"			/* 5: wrong section */
	    "version = Exchange2013SP1\n"
	    "auth = kerberos\n"
	    "tls_verify = maybe\n"
	    "url = https://again/\n"
	    "request_timeout = soon\n"
	    "request_timeout = 2h\n"
	    "[throttlng]\n"
	    "max_concurrency = 0\n"			/* skipped */
	    "[throttling]\n"
	    "max_concurency = 5\n"
	    "max_concurrency = 1001\n"
	    "max_subscriptions = -1\n"
	    "connection_timeout = 45\n"
	    "find_count_limit = 12abc\n"
	    "charging = both\n"
	    "idle_timeout = \n"
	    "short_request_share = 91\n"
	    "[status]\n"
	    "mode = 0999\n"
	    "socket = /s\n"
	    "group = \"\"\n"
	    "[log]\n"
	    "level = verbose\n"
	    "[presence]\n"
	    "oof = available\n"
	    "lookback = 2d\n"
	    "[push]\n"
	    "listen = 8443\n"
	    "url = ftp://x/\n"
	    "status_frequency = 90s\n"
	    "certificate = /etc/passwd\n",
	    "5: unknown key 'max_concurency' in [exchange]\n"
	    "6: unknown version 'Exchange2013SP1' for 'version' in [exchange] "
	    "(did you mean 'Exchange2013_SP1'?)\n"
	    "7: invalid value 'kerberos' for 'auth' in [exchange] (expected "
	    "ntlm, basic, negotiate or oauth2)\n"
	    "8: invalid boolean 'maybe' for 'tls_verify' in [exchange] "
	    "(expected yes or no)\n"
	    "9: duplicate key 'url' in [exchange] (first at line 2)\n"
	    "10: invalid duration 'soon' for 'request_timeout' in [exchange] "
	    "(expected a number with unit ms, s, m, h or d)\n"
	    "11: duplicate key 'request_timeout' in [exchange] (first at "
	    "line 10)\n"
	    "12: unknown section [throttlng] (did you mean [throttling]?)\n"
	    "15: unknown key 'max_concurency' in [throttling] (did you mean "
	    "'max_concurrency'?)\n"
	    "16: value 1001 for 'max_concurrency' in [throttling] out of "
	    "range 1..1000\n"
	    "17: invalid number '-1' for 'max_subscriptions' in "
	    "[throttling]\n"
	    "18: value 45 for 'connection_timeout' in [throttling] out of "
	    "range 1..30 minutes\n"
	    "19: invalid number '12abc' for 'find_count_limit' in "
	    "[throttling]\n"
	    "20: invalid value 'both' for 'charging' in [throttling] "
	    "(expected service-account or impersonated)\n"
	    "21: empty value for 'idle_timeout' in [throttling]\n"
	    "22: value 91 for 'short_request_share' in [throttling] out of "
	    "range 0..90\n"
	    "24: invalid mode '0999' for 'mode' in [status] (expected octal, "
	    "e.g. 0660)\n"
	    "26: empty value for 'group' in [status]\n"
	    "28: invalid value 'verbose' for 'level' in [log] (expected "
	    "debug, info, notice, warning, err or error)\n"
	    "30: invalid value 'available' for 'oof' in [presence] (expected "
	    "away or busy)\n"
	    "31: value 2d for 'lookback' in [presence] out of range 0s..1d\n"
	    "33: invalid address '8443' for 'listen' in [push] (expected "
	    "ADDRESS:PORT)\n"
	    "34: invalid URL 'ftp://x/' for 'url' in [push] (expected "
	    "http://HOST/... or https://HOST/...)\n"
	    "35: invalid duration '90s' for 'status_frequency' in [push] "
	    "(expected whole minutes: 30 or 30m)\n"
	    "32: certificate and key in [push] go together: set both or "
	    "neither");
	expect_errors_base("mode = push\nrequest_timeout = 2h\n"
	    "ca_file = /nonexistent/ca.pem\nclient_cert = /etc/passwd\n",
	    "6: value 2h for 'request_timeout' in [exchange] out of range "
	    "1s..1h\n"
	    "7: cannot read ca_file '/nonexistent/ca.pem': No such file or "
	    "directory\n"
	    "1: client_cert and client_key in [exchange] go together: set "
	    "both or neither\n"
	    " missing required key 'listen' in [push] (needed for mode = "
	    "push)\n"
	    " missing required key 'url' in [push] (needed for mode = push)");
	expect_errors("[exchange]\nurl = https://h/\nauth = oauth2\n"
	    "tenant = contoso/../x\nclient_id = c\n"
	    "client_secret_file = /dev/null\n[status]\nsocket = /run/"
	    "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa"
	    "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa.sock\n",
	    "4: invalid tenant 'contoso/../x' in [exchange] (expected a "
	    "domain name or a tenant id)\n"
	    "8: socket path in [status] too long (at most 107 bytes)\n"
	    "6: cannot read client_secret_file '/dev/null': Invalid "
	    "argument");
	expect_errors("[exchange]\nurl = https:///x\n"
	    "username = u\npassword_file = /dev/null\n",
	    "2: invalid URL 'https:///x' for 'url' in [exchange] (expected "
	    "http://HOST/... or https://HOST/...)\n"
	    "4: cannot read password_file '/dev/null': Invalid argument");
}
END_TEST

START_TEST(test_listen_and_units)
{
	static const char *const good[] = {
		"127.0.0.1:8443", "[::1]:443", "*:80", "gw.example.org:65535"
	};
	static const char *const bad[] = {
		"127.0.0.1", ":80", "::1:80", "[::1]80", "h:0", "h:65536",
		"h:8x", "[]:80"
	};
	struct config	*cf;
	char		*errs = NULL, *more;
	size_t		 i;

	for (i = 0; i < sizeof(good) / sizeof(good[0]); i++) {
		xasprintf(&more, "[push]\nlisten = %s\n", good[i]);
		cf = load_with_base(more, &errs, NULL);
		ck_assert_msg(cf != NULL, "%s: %s", good[i], errs);
		ck_assert_str_eq(cf->push.listen, good[i]);
		conf_free(cf);
		free(more);
	}
	for (i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		xasprintf(&more, "[push]\nlisten = %s\n", bad[i]);
		cf = load_with_base(more, &errs, NULL);
		ck_assert_msg(cf == NULL, "%s accepted", bad[i]);
		ck_assert_ptr_nonnull(strstr(errs, "expected ADDRESS:PORT"));
		free(errs);
		free(more);
	}
	/* The push listener's allowlist and limits. */
	cf = load_with_base("[push]\nallow = 192.0.2.0/24, 2001:db8::/32 "
	    "198.51.100.7\nmax_connections = 10\nmax_body = 4096\n"
	    "request_timeout = 2s\n", &errs, NULL);
	ck_assert_msg(cf != NULL, "%s", errs);
	ck_assert_str_eq(cf->push.allow,
	    "192.0.2.0/24, 2001:db8::/32 198.51.100.7");
	ck_assert_uint_eq(cf->push.max_connections, 10);
	ck_assert_uint_eq(cf->push.max_body, 4096);
	ck_assert_int_eq(cf->push.request_timeout_ms, 2000);
	conf_free(cf);
	expect_errors_base("[push]\nallow = 192.0.2.1/24\n",
	    "6: 'allow' in [push]: bad address or network \"192.0.2.1/24\" "
	    "(want ADDRESS or ADDRESS/BITS with the host bits zero)");
	expect_errors_base("[push]\nallow = 10.0.0.0/8 nonsense\n",
	    "6: 'allow' in [push]: bad address or network \"nonsense\" "
	    "(want ADDRESS or ADDRESS/BITS with the host bits zero)");
	expect_errors_base("[push]\nallow = ::/129\n",
	    "6: 'allow' in [push]: bad address or network \"::/129\" "
	    "(want ADDRESS or ADDRESS/BITS with the host bits zero)");
	/* Every spelling of a boolean. */
	for (i = 0; i < 8; i++) {
		static const char *const b[] = { "yes", "True", "ON", "1",
		    "no", "FALSE", "off", "0" };

		xasprintf(&more, "tls_verify = %s\n", b[i]);
		cf = load_with_base(more, &errs, NULL);
		ck_assert_msg(cf != NULL, "%s: %s", b[i], errs);
		ck_assert(cf->exchange.tls_verify == (i < 4));
		conf_free(cf);
		free(more);
	}
	/* connection_timeout takes minutes with or without the unit. */
	cf = load_with_base("[throttling]\nconnection_timeout = 30m\n"
	    "[push]\nstatus_frequency = 2h\n", &errs, NULL);
	ck_assert_msg(cf != NULL, "%s", errs);
	ck_assert_uint_eq(cf->throttling.connection_timeout, 30);
	ck_assert_uint_eq(cf->push.status_frequency, 120);
	conf_free(cf);
	cf = load_with_base("[throttling]\nconnection_timeout = 1\n"
	    "[log]\nlevel = err\n[status]\nmode = 0\n", &errs, NULL);
	ck_assert_msg(cf != NULL, "%s", errs);
	ck_assert_uint_eq(cf->throttling.connection_timeout, 1);
	ck_assert_int_eq(cf->log.level, LOG_ERR);
	ck_assert_uint_eq(cf->status.mode, 0);
	conf_free(cf);
}
END_TEST

START_TEST(test_unreadable_and_buffer)
{
	struct config	*cf;
	char		*errs = NULL, *want, *path;
	static const char nul[] = "[log]\nle\0vel = x\n[nope]\n";
	static const char data[] = "[exchange]\r\nurl = https://h/\r\n"
	    "auth = negotiate\r\nusername = u\r\n[log]\r\nlevel = notice";

	xasprintf(&path, "%s/missing.conf", tdir);
	cf = conf_load(path, &errs);
	ck_assert_ptr_null(cf);
	xasprintf(&want, "%s: cannot read: No such file or directory\n", path);
	ck_assert_str_eq(errs, want);
	free(want);
	free(errs);
	free(path);

	/* conf_load_buffer: CRLF, no final newline, no NUL terminator. */
	cf = conf_load_buffer("mem.conf", data, sizeof(data) - 1, &errs);
	ck_assert_msg(cf != NULL, "%s", errs);
	ck_assert_str_eq(cf->path, "mem.conf");
	ck_assert_str_eq(cf->exchange.url, "https://h/");
	ck_assert_int_eq(cf->log.level, LOG_NOTICE);
	conf_free(cf);

	cf = conf_load_buffer("mem.conf", nul, sizeof(nul) - 1, &errs);
	ck_assert_ptr_null(cf);
	ck_assert_str_eq(errs, "mem.conf:2: NUL byte in line\n"
	    "mem.conf:3: unknown section [nope]\n"
	    "mem.conf: missing required key 'url' in [exchange]\n"
	    "mem.conf: missing required key 'username' in [exchange] (needed "
	    "for auth = ntlm)\n"
	    "mem.conf: missing required key 'password_file' in [exchange] "
	    "(needed for auth = ntlm)\n");
	free(errs);
	/* errors may be NULL */
	ck_assert_ptr_null(conf_load_buffer("x", "", 0, NULL));
}
END_TEST

START_TEST(test_too_many_errors)
{
	struct config	*cf;
	char		*errs = NULL, *text, *p;
	size_t		 lines = 0;
	int		 i;

	text = xstrdup("");
	for (i = 0; i < 500; i++) {
		xasprintf(&p, "%sjunk\n", text);
		free(text);
		text = p;
	}
	cf = conf_load_buffer("many.conf", text, strlen(text), &errs);
	ck_assert_ptr_null(cf);
	for (p = errs; (p = strchr(p, '\n')) != NULL; p++)
		lines++;
	ck_assert_uint_eq(lines, 201);
	ck_assert_ptr_nonnull(strstr(errs, "many.conf: too many errors"));
	free(errs);
	free(text);
}
END_TEST

/* [cluster]: off without endpoints; names, TTL and TLS files checked. */
START_TEST(test_cluster)
{
	struct config	*cf;
	char		*errs = NULL, *ca, *crt, *key, *more;

	cf = load_with_base("[cluster]\n# nothing set\n", &errs, NULL);
	ck_assert_msg(cf != NULL, "%s", errs);
	ck_assert_ptr_null(cf->cluster.endpoints);
	ck_assert_uint_eq(cf->cluster.nendpoints, 0);
	ck_assert_int_eq(cf->cluster.lease_ttl_ms, 10000);
	ck_assert_uint_eq(cf->cluster.group_slices, 1);
	conf_free(cf);

	ca = wfile("etcd-ca.pem", "x\n");
	crt = wfile("etcd.pem", "x\n");
	key = wfile("etcd.key", "x\n");
	xasprintf(&more, "[cluster]\n"
	    "endpoints = https://etcd1.example.org:2379, "
	    "https://etcd2.example.org:2379\thttps://[::1]:2379\n"
	    "name = presence-prod\n"
	    "node = gw1.dc-a\n"
	    "lease_ttl = 15s\n"
	    "group_slices = 0\n"
	    "ca_file = %s\nclient_cert = %s\nclient_key = %s\n",
	    ca, crt, key);
	cf = load_with_base(more, &errs, NULL);
	ck_assert_msg(cf != NULL, "%s", errs);
	ck_assert_str_eq(cf->cluster.endpoints,
	    "https://etcd1.example.org:2379 "
	    "https://etcd2.example.org:2379 https://[::1]:2379");
	ck_assert_uint_eq(cf->cluster.nendpoints, 3);
	ck_assert_str_eq(cf->cluster.endpoint[1],
	    "https://etcd2.example.org:2379");
	ck_assert_str_eq(cf->cluster.name, "presence-prod");
	ck_assert_str_eq(cf->cluster.node, "gw1.dc-a");
	ck_assert_int_eq(cf->cluster.lease_ttl_ms, 15000);
	ck_assert_uint_eq(cf->cluster.group_slices, 0);
	ck_assert_str_eq(cf->cluster.ca_file, ca);
	ck_assert_str_eq(cf->cluster.client_key, key);
	ck_assert(!conf_key_reloadable("cluster", "endpoints"));
	conf_free(cf);
	free(more);

	/* The node's name defaults to the host's (up to the first dot). */
	cf = load_with_base("[cluster]\nendpoints = http://127.0.0.1:2379\n"
	    "name = c\n", &errs, NULL);
	if (cf != NULL) {
		ck_assert_ptr_nonnull(cf->cluster.node);
		ck_assert_ptr_null(strchr(cf->cluster.node, '.'));
		conf_free(cf);
	} else {
		ck_assert_ptr_nonnull(strstr(errs, "cannot name this node"));
		free(errs);
		errs = NULL;
	}

	expect_errors_base("[cluster]\nname = c\nlease_ttl = 5s\n",
	    "5: missing required key 'endpoints' in [cluster] (cluster mode "
	    "needs etcd)\n");
	expect_errors_base("[cluster]\n"
	    "endpoints = etcd1:2379, https://etcd2:2379\n",
	    "6: invalid URL 'etcd1:2379' for 'endpoints' in [cluster] "
	    "(expected http://HOST:PORT or https://HOST:PORT)\n");
	expect_errors_base("[cluster]\n"
	    "endpoints = https://e:2379\n"		/* 6 */
	    "node = gw/1\n"
	    "lease_ttl = 2500ms\n"
	    "client_cert = /etc/passwd\n",
	    "5: missing required key 'name' in [cluster] (needed with "
	    "endpoints)\n"
	    "7: invalid node 'gw/1' in [cluster] (letters, digits, '.', "
	    "'_' and '-', at most 64)\n"
	    "8: lease_ttl in [cluster] must be whole seconds\n"
	    "5: client_cert and client_key in [cluster] go together: set "
	    "both or neither\n");
	expect_errors_base("[cluster]\nendpoints = ,\nname = a b\n"
	    "lease_ttl = 1s\n",
	    "6: no URL for 'endpoints' in [cluster]\n"
	    "8: value 1s for 'lease_ttl' in [cluster] out of range 2s..1h\n");
	free(ca);
	free(crt);
	free(key);
}
END_TEST

START_TEST(test_limits)
{
	struct config	*cf;
	struct buf	 b = BUF_INIT;
	char		*errs = NULL;
	int		 i;

	buf_puts(&b, "[exchange]\nurl = https://h/\nauth = negotiate\n"
	    "username = u\n[sink s]\ntype = exec\n");
	for (i = 0; i < 257; i++)
		buf_printf(&b, "k%d = v\n", i);
	for (i = 0; i < 256; i++)
		buf_printf(&b, "[sink n%d]\ntype = log\n", i);
	cf = conf_load_buffer("lim.conf", b.data, b.len, &errs);
	ck_assert_ptr_null(cf);
	/* 6 lines of head, 257 keys, then 255 more sinks fit */
	ck_assert_str_eq(errs, "lim.conf:263: too many keys in [sink s] (at "
	    "most 256)\nlim.conf:774: too many sink sections (at most 256)\n");
	free(errs);
	buf_free(&b);
}
END_TEST

START_TEST(test_reload_rules)
{
	struct config	*a, *b;
	char		*errs = NULL, *what = NULL;

	ck_assert(!conf_key_reloadable("exchange", "url"));
	ck_assert(conf_key_reloadable("exchange", "password_file"));
	ck_assert(!conf_key_reloadable("status", "socket"));
	ck_assert(conf_key_reloadable("throttling", "max_concurrency"));
	ck_assert(!conf_key_reloadable("throttling", "charging"));
	ck_assert(conf_key_reloadable("mailboxes", "mailbox"));
	ck_assert(conf_key_reloadable("presence", "oof"));
	ck_assert(conf_key_reloadable("log", "level"));
	ck_assert(conf_key_reloadable("sink", "url"));
	ck_assert(!conf_key_reloadable("throttling", "nope"));
	ck_assert(!conf_key_reloadable("nope", "url"));

	a = load_with_base("[log]\nlevel = info\n", &errs, NULL);
	ck_assert_msg(a != NULL, "%s", errs);
	b = reload_with_base(a, "[log]\nlevel = debug\n[throttling]\n"
	    "max_concurrency = 20\n[mailboxes]\nmailbox = a@example.org\n",
	    &errs, &what);
	ck_assert_msg(b != NULL, "%s", errs);
	ck_assert_ptr_null(what);
	ck_assert_int_eq(b->log.level, LOG_DEBUG);
	ck_assert_uint_eq(b->throttling.max_concurrency, 20);
	ck_assert_uint_eq(b->nmailboxes, 1);
	conf_free(b);

	/*
	 * The restart-only keys keep the running values, and what derives
	 * from them follows: charging and the per-anchor default come from
	 * the kept version, not from the file's.
	 */
	ck_assert_int_eq(a->throttling.charging, CONF_CHARGING_IMPERSONATED);
	ck_assert_uint_eq(a->throttling.streaming_connections_per_anchor, 3);
	b = reload_with_base(a, "mode = poll\nversion = Exchange2010\n"
	    "[status]\nsocket = /run/other.sock\ngroup = wheel\n[log]\n"
	    "level = debug\n", &errs, &what);
	ck_assert_msg(b != NULL, "%s", errs);
	ck_assert_str_eq(what, "exchange.version, exchange.mode, "
	    "status.socket, status.group");
	free(what);
	ck_assert_str_eq(b->exchange.version, "Exchange2013_SP1");
	ck_assert_int_eq(b->exchange.mode, CONF_MODE_STREAMING);
	ck_assert_int_eq(b->throttling.charging, CONF_CHARGING_IMPERSONATED);
	ck_assert(!b->throttling.charging_set);
	ck_assert_uint_eq(b->throttling.streaming_connections_per_anchor, 3);
	ck_assert_str_eq(b->status.socket, a->status.socket);
	ck_assert_ptr_null(b->status.group);
	ck_assert_int_eq(b->log.level, LOG_DEBUG);
	ck_assert_int_eq(conf_diff_keys(a, b, &what), 1);
	ck_assert_str_eq(what, "log.level");
	free(what);
	conf_free(b);

	/* charging set in the file to another value is kept as well. */
	b = reload_with_base(a, "[throttling]\ncharging = service-account\n",
	    &errs, &what);
	ck_assert_msg(b != NULL, "%s", errs);
	ck_assert_str_eq(what, "throttling.charging");
	free(what);
	ck_assert_int_eq(b->throttling.charging, CONF_CHARGING_IMPERSONATED);
	conf_free(b);

	/* The same version as running, charging set to what it was: no news. */
	b = reload_with_base(a, "[throttling]\ncharging = impersonated\n",
	    &errs, &what);
	ck_assert_msg(b != NULL, "%s", errs);
	ck_assert_ptr_null(what);
	ck_assert(b->throttling.charging_set);
	conf_free(b);
	conf_free(a);
}
END_TEST

/*
 * Every restart-only key of the table, changed on reload, keeps its
 * running value and is the key named.  The running configuration below
 * has an [exchange] and a [cluster] section; a row replaces or adds its
 * lines in its section (@FILE@ is a readable file).  A new restart-only
 * key fails here until a row names it.
 */
static const char *const running[][2] = {
	{ "exchange", "url = https://mail.example.com/EWS/Exchange.asmx\n"
	    "username = EXAMPLE\\svc-ewsgw\npassword_file = @FILE@\n" },
	{ "cluster", "endpoints = http://127.0.0.1:2379\nname = c1\n"
	    "node = n1\n" },
	{ "graph", "tenant_id = t1\nclient_id = c1\n"
	    "client_secret_file = @FILE@\nmailboxes = g@example.com\n" },
};

static const struct {
	const char	*section, *lines, *kept;
} restart_only[] = {
	{ "exchange", "url = https://other.example.com/EWS/Exchange.asmx",
	    "exchange.url" },
	{ "exchange", "version = Exchange2016", "exchange.version" },
	{ "exchange", "auth = basic", "exchange.auth" },
	{ "exchange", "username = someone-else", "exchange.username" },
	{ "exchange", "mode = poll", "exchange.mode" },
	{ "exchange", "impersonation = upn", "exchange.impersonation" },
	{ "exchange", "tenant = example.org", "exchange.tenant" },
	{ "exchange", "client_id = 1234", "exchange.client_id" },
	{ "exchange", "token_ca_file = @FILE@", "exchange.token_ca_file" },
	{ "exchange", "token_tls_verify = no", "exchange.token_tls_verify" },
	{ "exchange", "autodiscover = yes", "exchange.autodiscover" },
	{ "exchange", "autodiscover_url = https://ad.example.com/"
	    "autodiscover/autodiscover.svc", "exchange.autodiscover_url" },
	{ "push", "listen = 127.0.0.1:8443", "push.listen" },
	{ "push", "url = https://gw.example.com/push", "push.url" },
	{ "push", "status_frequency = 5", "push.status_frequency" },
	{ "push", "allow = 192.0.2.0/24", "push.allow" },
	{ "push", "max_connections = 100", "push.max_connections" },
	{ "push", "max_body = 8192", "push.max_body" },
	{ "push", "request_timeout = 20s", "push.request_timeout" },
	{ "throttling", "subscriptions_per_connection = 100",
	    "throttling.subscriptions_per_connection" },
	{ "throttling", "charging = service-account", "throttling.charging" },
	{ "status", "socket = /run/elsewhere.sock", "status.socket" },
	{ "status", "mode = 0600", "status.mode" },
	{ "status", "group = adm", "status.group" },
	{ "cluster", "endpoints = http://127.0.0.1:2380", "cluster.endpoints" },
	{ "cluster", "name = c2", "cluster.name" },
	{ "cluster", "node = n2", "cluster.node" },
	{ "cluster", "lease_ttl = 20s", "cluster.lease_ttl" },
	{ "cluster", "group_slices = 4", "cluster.group_slices" },
	{ "cluster", "ca_file = @FILE@", "cluster.ca_file" },
	{ "cluster", "client_cert = @FILE@\nclient_key = @FILE@",
	    "cluster.client_cert, cluster.client_key" },
	{ "graph", "tenant_id = t2", "graph.tenant_id" },
	{ "graph", "client_id = c2", "graph.client_id" },
	/* Kept before it is read: the running secret stays. */
	{ "graph", "client_secret_file = no-such-credential",
	    "graph.client_secret_file" },
	{ "graph", "certificate_file = @FILE@\nkey_file = @FILE@",
	    "graph.certificate_file, graph.key_file" },
	{ "graph", "token_url = https://login.example.com/t/token",
	    "graph.token_url" },
	{ "graph", "token_ca_file = @FILE@", "graph.token_ca_file" },
	{ "graph", "token_tls_verify = no", "graph.token_tls_verify" },
	{ "graph", "url = https://graph.example.com/v1.0", "graph.url" },
	{ "graph", "ca_file = @FILE@", "graph.ca_file" },
	{ "graph", "tls_verify = no", "graph.tls_verify" },
	{ "graph", "auto = yes", "graph.auto" },
	{ "graph", "mailbox_concurrency = 2", "graph.mailbox_concurrency" },
	{ "graph", "mailbox_rate = 500", "graph.mailbox_rate" },
	{ "graph", "mailbox_rate_window = 1m", "graph.mailbox_rate_window" },
	{ "graph", "app_rate = 500", "graph.app_rate" },
	{ "graph", "app_rate_window = 1m", "graph.app_rate_window" },
	{ "graph", "max_connections = 8", "graph.max_connections" },
	{ "graph", "request_timeout = 30s", "graph.request_timeout" },
	{ "graph", "notifications = no", "graph.notifications" },
	{ "graph", "notification_url = https://gw.example.com/graph",
	    "graph.notification_url" },
	{ "graph", "subscription_lifetime = 1d",
	    "graph.subscription_lifetime" },
};
#define NRESTART_ONLY	(sizeof(restart_only) / sizeof(*restart_only))

/* s with every @FILE@ replaced by file (allocated). */
static char *
with_file(const char *s, const char *file)
{
	struct buf	 b = BUF_INIT;
	const char	*at;

	while ((at = strstr(s, "@FILE@")) != NULL) {
		buf_append(&b, s, (size_t)(at - s));
		buf_puts(&b, file);
		s = at + strlen("@FILE@");
	}
	buf_puts(&b, s);
	return (buf_steal(&b));
}

/* Whether lines (key = value, one a line) set key. */
static bool
sets_key(const char *lines, const char *key)
{
	const char	*l;
	size_t		 n = strlen(key);

	for (l = lines; l != NULL && *l != '\0';
	    l = strchr(l, '\n') != NULL ? strchr(l, '\n') + 1 : NULL)
		if (strncmp(l, key, n) == 0 && l[n] == ' ')
			return (true);
	return (false);
}

/* The running configuration with row (NULL: none) applied. */
static char *
restart_only_text(const char *file, int row)
{
	struct buf	 b = BUF_INIT;
	const char	*sec = row >= 0 ? restart_only[row].section : "";
	const char	*l, *end;
	char		*out, *key;
	size_t		 i;
	bool		 placed = false;

	for (i = 0; i < sizeof(running) / sizeof(*running); i++) {
		buf_printf(&b, "[%s]\n", running[i][0]);
		for (l = running[i][1]; *l != '\0'; l = end + 1) {
			end = strchr(l, '\n');
			key = xstrndup(l, strcspn(l, " "));
			if (strcmp(sec, running[i][0]) != 0 ||
			    !sets_key(restart_only[row].lines, key))
				buf_append(&b, l, (size_t)(end - l) + 1);
			free(key);
		}
		if (strcmp(sec, running[i][0]) == 0) {
			buf_printf(&b, "%s\n", restart_only[row].lines);
			placed = true;
		}
	}
	if (row >= 0 && !placed)
		buf_printf(&b, "[%s]\n%s\n", sec, restart_only[row].lines);
	out = with_file(buf_str(&b), file);
	buf_free(&b);
	return (out);
}

START_TEST(test_reload_keeps_each_restart_only_key)
{
	struct config	*a, *b;
	char		*errs = NULL, *what = NULL, *file, *text, *want;
	const char	*sec, *name;
	size_t		 i, j;

	file = wfile("pw", "s3cret-pass\n");
	text = restart_only_text(file, -1);
	a = load_text(text, &errs, NULL);
	ck_assert_msg(a != NULL, "%s", errs);
	free(text);
	for (i = 0; conf_key_at(i, &sec, &name); i++) {
		if (conf_key_reloadable(sec, name))
			continue;
		xasprintf(&want, "%s.%s", sec, name);
		for (j = 0; j < NRESTART_ONLY; j++)
			if (strstr(restart_only[j].kept, want) != NULL)
				break;
		ck_assert_msg(j < NRESTART_ONLY, "restart-only %s has no row "
		    "here", want);
		free(want);
	}
	for (j = 0; j < NRESTART_ONLY; j++) {
		text = restart_only_text(file, (int)j);
		b = reload_text(a, text, &errs, &what);
		ck_assert_msg(b != NULL, "%s: %s", restart_only[j].kept, errs);
		ck_assert_msg(what != NULL &&
		    strcmp(what, restart_only[j].kept) == 0, "%s: kept %s",
		    restart_only[j].kept, what != NULL ? what : "nothing");
		free(what);
		ck_assert_int_eq(conf_diff_keys(a, b, &what), 0);
		conf_free(b);
		free(text);
	}
	conf_free(a);
	free(file);
}
END_TEST

/* The token endpoint's TLS: verified by default, whatever Exchange's. */
START_TEST(test_token_tls_defaults)
{
	struct config	*cf;
	char		*errs = NULL;

	cf = load_with_base("tls_verify = no\nca_file = /dev/null\n", &errs,
	    NULL);
	ck_assert_msg(cf != NULL, "%s", errs);
	ck_assert(!cf->exchange.tls_verify);
	ck_assert(cf->exchange.token_tls_verify);
	ck_assert_ptr_null(cf->exchange.token_ca_file);
	conf_free(cf);
}
END_TEST

/* A rule of a kept key still holds: the reload is refused. */
START_TEST(test_reload_kept_auth_needs_its_keys)
{
	struct config	*a, *b;
	char		*errs = NULL, *what = NULL, *path, *secret, *text;

	a = load_with_base("", &errs, NULL);
	ck_assert_msg(a != NULL, "%s", errs);
	secret = wfile("secret", "s3cret\n");
	xasprintf(&text, "[exchange]\nurl = https://mail.example.com/EWS/"
	    "Exchange.asmx\nauth = oauth2\ntenant = example.org\n"
	    "client_id = 1234\nclient_secret_file = %s\n", secret);
	path = wfile("ewsgw.conf", text);
	free(text);
	free(secret);
	b = conf_reload(path, a, &errs, &what);
	ck_assert_ptr_null(b);
	ck_assert_ptr_null(what);
	ck_assert_ptr_nonnull(errs);
	ck_assert_msg(strstr(errs, "missing required key 'password_file' in "
	    "[exchange] (needed for auth = ntlm, which stays until a "
	    "restart)") != NULL, "%s", errs);
	free(errs);
	free(path);
	conf_free(a);
}
END_TEST

/* Read top_srcdir/rel whole (allocated); the source tree, not a copy. */
static char *
read_src(const char *rel)
{
	const char	*top = getenv("top_srcdir");
	char		*path, *text;
	FILE		*f;
	long		 n;

	xasprintf(&path, "%s/%s", top != NULL && *top != '\0' ? top :
	    TOP_SRCDIR, rel);
	f = fopen(path, "r");
	ck_assert_msg(f != NULL, "cannot open %s", path);
	ck_assert_int_eq(fseek(f, 0, SEEK_END), 0);
	n = ftell(f);
	rewind(f);
	text = xmalloc((size_t)n + 1);
	ck_assert_uint_eq(fread(text, 1, (size_t)n, f), (size_t)n);
	text[n] = '\0';
	fclose(f);
	free(path);
	return (text);
}

/*
 * The shipped example loads (its password is a credential), and its
 * active values are exactly the built-in defaults: it differs from the
 * minimal file only by the mailbox list.
 */
START_TEST(test_example_files)
{
	struct config	*ex, *min;
	char		*errs = NULL, *text, *mbf, *p, *fixed, *what = NULL;
	const char	*needle = "/etc/ewsgw/mailboxes";

	free(wfile("ewsgw-password", "example\n"));
	setenv("CREDENTIALS_DIRECTORY", tdir, 1);
	text = read_src("etc/ewsgw.conf");
	ex = conf_load_buffer("ewsgw.conf", text, strlen(text), &errs);
	ck_assert_msg(ex != NULL, "%s", errs);
	free(text);
	ck_assert_str_eq(ex->exchange.password, "example");
	ck_assert_uint_eq(ex->nsinks, 1);
	ck_assert_str_eq(ex->sinks[0].name, "log");

	mbf = wfile("mailboxes", "alice@example.com\n");
	text = read_src("etc/ewsgw-minimal.conf");
	p = strstr(text, needle);
	ck_assert_ptr_nonnull(p);
	xasprintf(&fixed, "%.*s%s%s", (int)(p - text), text, mbf,
	    p + strlen(needle));
	min = conf_load_buffer("ewsgw-minimal.conf", fixed, strlen(fixed),
	    &errs);
	ck_assert_msg(min != NULL, "%s", errs);
	ck_assert_uint_eq(min->nmailboxes, 1);
	ck_assert_int_eq(conf_diff_keys(ex, min, &what), 1);
	ck_assert_str_eq(what, "mailboxes.file");
	free(what);
	conf_free(ex);
	conf_free(min);
	free(text);
	free(fixed);
	free(mbf);
	unsetenv("CREDENTIALS_DIRECTORY");
}
END_TEST

/* Every key of the table is in the example (maybe commented) and the manual. */
START_TEST(test_key_coverage)
{
	const char	*sec, *name;
	char		*ex, *man, *line, *sp, *cur = NULL, *k, *want;
	char		 seen[4096] = "";
	size_t		 i;

	ex = read_src("etc/ewsgw.conf");
	for (line = strtok_r(ex, "\n", &sp); line != NULL;
	    line = strtok_r(NULL, "\n", &sp)) {
		if (line[0] == '[') {
			free(cur);
			cur = xstrndup(line + 1, strcspn(line + 1, "]"));
			continue;
		}
		k = line[0] == '#' ? line + 1 : line;
		if (cur == NULL || strchr(k, '=') == NULL ||
		    strcspn(k, " =") == 0 || k[strcspn(k, " =")] != ' ')
			continue;
		snprintf(seen + strlen(seen), sizeof(seen) - strlen(seen),
		    "|%s.%.*s|", cur, (int)strcspn(k, " "), k);
	}
	free(cur);
	man = read_src("man/ewsgw.conf.5");
	for (i = 0; conf_key_at(i, &sec, &name); i++) {
		xasprintf(&want, "|%s.%s|", sec, name);
		ck_assert_msg(strstr(seen, want) != NULL, "%s.%s is not in "
		    "etc/ewsgw.conf: document every new key there (commented "
		    "out if it has no plain default)", sec, name);
		free(want);
		xasprintf(&want, "\n.Ss [%s]\n", sec);
		ck_assert_msg(strstr(man, want) != NULL, "no section %s", want);
		k = strstr(man, want);
		free(want);
		xasprintf(&want, "\n.It Cm %s ", name);
		/* after its own section's header */
		ck_assert_msg(strstr(k, want) != NULL, "%s.%s is not in "
		    "man/ewsgw.conf.5: document every new key there, as "
		    "'.It Cm %s' under '.Ss [%s]'", sec, name, name, sec);
		free(want);
	}
	ck_assert_uint_gt(i, 40);
	free(ex);
	free(man);
}
END_TEST

START_TEST(test_names)
{
	ck_assert_str_eq(conf_auth_name(CONF_AUTH_OAUTH2), "oauth2");
	ck_assert_str_eq(conf_mode_name(CONF_MODE_POLL), "poll");
	ck_assert_str_eq(conf_idtype_name(CONF_ID_SID), "sid");
	ck_assert_str_eq(conf_charging_name(CONF_CHARGING_SERVICE_ACCOUNT),
	    "service-account");
	ck_assert_str_eq(conf_show_name(CONF_SHOW_AWAY), "away");
	ck_assert_str_eq(conf_show_name(CONF_SHOW_IGNORE), "ignore");
}
END_TEST

static Suite *
suite(void)
{
	Suite	*s = suite_create("conf");
	TCase	*tc = tcase_create("conf");

	tcase_add_checked_fixture(tc, tdir_setup, tdir_teardown);
	tcase_add_test(tc, test_minimal_defaults);
	tcase_add_test(tc, test_every_key);
	tcase_add_test(tc, test_version_defaults);
	tcase_add_test(tc, test_credentials);
	tcase_add_test(tc, test_secret_file_mode);
	tcase_add_test(tc, test_token_tls_defaults);
	tcase_add_test(tc, test_oauth2);
	tcase_add_test(tc, test_mailboxes);
	tcase_add_test(tc, test_mailbox_file_errors);
	tcase_add_test(tc, test_sinks);
	tcase_add_test(tc, test_syntax_errors);
	tcase_add_test(tc, test_value_errors);
	tcase_add_test(tc, test_listen_and_units);
	tcase_add_test(tc, test_unreadable_and_buffer);
	tcase_add_test(tc, test_too_many_errors);
	tcase_add_test(tc, test_limits);
	tcase_add_test(tc, test_cluster);
	tcase_add_test(tc, test_reload_rules);
	tcase_add_test(tc, test_reload_keeps_each_restart_only_key);
	tcase_add_test(tc, test_reload_kept_auth_needs_its_keys);
	tcase_add_test(tc, test_example_files);
	tcase_add_test(tc, test_key_coverage);
	tcase_add_test(tc, test_names);
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
