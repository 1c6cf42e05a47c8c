/*
 * ewsgw - Exchange calendar presence gateway
 * SPDX-License-Identifier: ISC
 *
 * Built-in sink "webhook": POSTs each change as JSON to a URL through
 * the project's curl multi engine on the loop (http.h), with an optional
 * bearer token or basic credentials read from files.
 */
#include "config.h"

#include <sys/queue.h>

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <unistd.h>

#include "base/buf.h"
#include "io/http.h"
#include "base/log.h"
#include "sinks/sinkset.h"
#include "sinks/sinks.h"
#include "base/xmalloc.h"

#define WEBHOOK_TIMEOUT_DEFAULT	10000		/* ms */
#define WEBHOOK_MAX_RESPONSE	(64 * 1024)	/* bodies are ignored */

struct webhook_req {
	TAILQ_ENTRY(webhook_req) entry;
	struct ewsgw_sink	*s;
	struct http_request	*req;
	uint64_t		 token;
	char			*mailbox;
};

struct ewsgw_sink {
	struct ewsgw_host	*host;
	struct http_engine	*eng;
	char			*url;
	char			*token_file;	/* bearer token, or NULL */
	char			*auth_header;	/* secret: never logged */
	int64_t			 timeout;	/* ms */
	TAILQ_HEAD(, webhook_req) reqs;
	unsigned		 inflight;
	long			 last_status;
	uint64_t		 sent;
};

struct webhook_settings {
	const char	*url;
	const char	*token_file;
	const char	*username;
	const char	*password_file;
	const char	*ca_file;
	int		 tls_verify;
	int64_t		 timeout;
};

static int	webhook_settings(const struct ewsgw_sink_config *,
		    struct webhook_settings *);
static int	webhook_check(const struct ewsgw_sink_config *);
static int	webhook_create(struct ewsgw_host *,
		    const struct ewsgw_sink_config *, struct ewsgw_sink **);
static int	webhook_publish(struct ewsgw_sink *,
		    const struct ewsgw_presence_change *, uint64_t);
static void	webhook_done(struct http_request *,
		    const struct http_response *, void *);
static int	webhook_health(struct ewsgw_sink *, char *, size_t);
static void	webhook_destroy(struct ewsgw_sink *);
static void	webhook_reopen(struct ewsgw_sink *);
static int	webhook_load_token(struct ewsgw_sink *, char **);

const struct ewsgw_sink_ops sink_webhook_ops = {
	.abi_version = EWSGW_SINK_ABI_VERSION,
	.size = sizeof(struct ewsgw_sink_ops),
	.name = "webhook",
	.check = webhook_check,
	.create = webhook_create,
	.publish = webhook_publish,
	.health = webhook_health,
	.destroy = webhook_destroy,
	.reopen = webhook_reopen,
};

static int
webhook_settings(const struct ewsgw_sink_config *c,
    struct webhook_settings *ws)
{
	int	 rc = 0;

	memset(ws, 0, sizeof *ws);
	ws->url = ewsgw_sink_config_get(c, "url");
	if (ws->url == NULL) {
		ewsgw_sink_config_error(c, NULL, "missing required key url");
		rc = -1;
	} else if (strncasecmp(ws->url, "http://", 7) != 0 &&
	    strncasecmp(ws->url, "https://", 8) != 0) {
		ewsgw_sink_config_error(c, "url",
		    "url must start with http:// or https://");
		rc = -1;
	}
	ws->token_file = ewsgw_sink_config_get(c, "bearer_token_file");
	ws->username = ewsgw_sink_config_get(c, "username");
	ws->password_file = ewsgw_sink_config_get(c, "password_file");
	ws->ca_file = ewsgw_sink_config_get(c, "ca_file");
	if (ws->token_file != NULL &&
	    (ws->username != NULL || ws->password_file != NULL)) {
		ewsgw_sink_config_error(c, "bearer_token_file",
		    "bearer_token_file and username/password_file exclude "
		    "each other");
		rc = -1;
	}
	if ((ws->username == NULL) != (ws->password_file == NULL)) {
		ewsgw_sink_config_error(c, ws->username != NULL ?
		    "username" : "password_file",
		    "username and password_file go together");
		rc = -1;
	}
	if (ws->token_file != NULL && sink_check_secret_file(c,
	    "bearer_token_file", ws->token_file) == -1)
		rc = -1;
	if (ws->password_file != NULL && sink_check_secret_file(c,
	    "password_file", ws->password_file) == -1)
		rc = -1;
	if (ws->ca_file != NULL && access(ws->ca_file, R_OK) == -1) {
		ewsgw_sink_config_error(c, "ca_file", "cannot read %s: %s",
		    ws->ca_file, strerror(errno));
		rc = -1;
	}
	if (sink_config_bool(c, "tls_verify", 1, &ws->tls_verify) == -1)
		rc = -1;
	if (sink_config_duration(c, "timeout", WEBHOOK_TIMEOUT_DEFAULT, 1000,
	    &ws->timeout) == -1)
		rc = -1;
	else if (ws->timeout < 1) {
		ewsgw_sink_config_error(c, "timeout",
		    "timeout must be positive");
		rc = -1;
	}
	return (rc);
}

static int
webhook_check(const struct ewsgw_sink_config *c)
{
	struct webhook_settings	 ws;

	return (webhook_settings(c, &ws));
}

static int
webhook_load_token(struct ewsgw_sink *s, char **cause)
{
	char	*token;

	if ((token = sink_read_secret(s->token_file, cause)) == NULL)
		return (-1);
	xfree_secret(s->auth_header);
	xasprintf(&s->auth_header, "Authorization: Bearer %s", token);
	xfree_secret(token);
	return (0);
}

static int
webhook_create(struct ewsgw_host *host, const struct ewsgw_sink_config *c,
    struct ewsgw_sink **out)
{
	struct webhook_settings	 ws;
	struct http_engine_opts	 o;
	struct ewsgw_sink	*s;
	char			*password = NULL, *cause = NULL;

	if (webhook_settings(c, &ws) == -1)
		return (-1);
	s = xcalloc(1, sizeof *s);
	s->host = host;
	s->url = xstrdup(ws.url);
	s->timeout = ws.timeout;
	TAILQ_INIT(&s->reqs);
	if (ws.token_file != NULL) {
		s->token_file = xstrdup(ws.token_file);
		if (webhook_load_token(s, &cause) == -1) {
			ewsgw_sink_config_error(c, "bearer_token_file", "%s",
			    cause);
			goto fail;
		}
	}
	if (ws.password_file != NULL &&
	    (password = sink_read_secret(ws.password_file,
	    &cause)) == NULL) {
		ewsgw_sink_config_error(c, "password_file", "%s", cause);
		goto fail;
	}

	memset(&o, 0, sizeof o);
	o.cred = password != NULL ? HTTP_CRED_BASIC : HTTP_CRED_NONE;
	o.username = ws.username;
	o.password = password;
	o.ca_file = ws.ca_file;
	o.tls_verify = ws.tls_verify != 0;
	o.peer = "the webhook (tls_verify = no in its [sink])";
	o.max_response = WEBHOOK_MAX_RESPONSE;
	s->eng = http_engine_new(ewsgw_host_event_base(host), &o, &cause);
	xfree_secret(password);
	password = NULL;
	if (s->eng == NULL) {
		ewsgw_sink_config_error(c, "url", "cannot set up HTTP: %s",
		    cause);
		goto fail;
	}
	if (strncasecmp(ws.url, "http://", 7) == 0 &&
	    (ws.token_file != NULL || ws.password_file != NULL))
		ewsgw_host_log(host, LOG_WARNING, "url %s is plain http: the "
		    "%s crosses the network unencrypted; use https://",
		    ws.url, ws.token_file != NULL ? "bearer token" :
		    "password");
	*out = s;
	return (0);

fail:
	free(cause);
	xfree_secret(password);
	webhook_destroy(s);
	return (-1);
}

static int
webhook_publish(struct ewsgw_sink *s, const struct ewsgw_presence_change *c,
    uint64_t token)
{
	struct http_request_opts	 ro;
	struct webhook_req		*wr;
	struct buf			 body = BUF_INIT;
	const char			*headers[2];

	sink_change_json(&body, c);
	headers[0] = s->auth_header;
	headers[1] = NULL;
	memset(&ro, 0, sizeof ro);
	ro.method = HTTP_POST;
	ro.url = s->url;
	ro.body = body.data;
	ro.body_len = body.len;
	ro.content_type = "application/json";
	ro.accept = "*/*";
	ro.headers = s->auth_header != NULL ? headers : NULL;
	ro.timeout_ms = s->timeout;
	ro.max_response = WEBHOOK_MAX_RESPONSE;
	ro.tag = c->mailbox;

	wr = xcalloc(1, sizeof *wr);
	wr->s = s;
	wr->token = token;
	wr->mailbox = xstrdup(c->mailbox);
	TAILQ_INSERT_TAIL(&s->reqs, wr, entry);
	s->inflight++;
	s->sent++;
	/* Errors, even immediate ones, arrive through webhook_done. */
	wr->req = http_request_start(s->eng, &ro, webhook_done, NULL, wr);
	buf_free(&body);
	return (EWSGW_SINK_PENDING);
}

static void
webhook_done(struct http_request *req, const struct http_response *resp,
    void *arg)
{
	struct webhook_req	*wr = arg;
	struct ewsgw_sink	*s = wr->s;
	int			 result;

	s->last_status = resp->status;
	if (resp->result == HTTP_RESULT_OK)
		result = EWSGW_SINK_OK;
	else if (resp->status == 400 || resp->status == 413 ||
	    resp->status == 415 || resp->status == 422) {
		/* The receiver refuses this very payload: retry is futile. */
		ewsgw_host_mlog(s->host, LOG_WARNING, wr->mailbox,
		    "%s refused the change: HTTP %ld", s->url, resp->status);
		result = EWSGW_SINK_REJECT;
	} else {
		if (resp->status != 0)
			ewsgw_host_mlog(s->host, LOG_WARNING, wr->mailbox,
			    "POST %s: HTTP %ld", s->url, resp->status);
		else
			ewsgw_host_mlog(s->host, LOG_WARNING, wr->mailbox,
			    "POST %s: %s", s->url, resp->error != NULL ?
			    resp->error : http_result_name(resp->result));
		result = EWSGW_SINK_ERR;
	}
	TAILQ_REMOVE(&s->reqs, wr, entry);
	s->inflight--;
	ewsgw_host_done(s->host, wr->token, result);
	free(wr->mailbox);
	free(wr);
}

static int
webhook_health(struct ewsgw_sink *s, char *detail, size_t len)
{
	snprintf(detail, len, "%u in flight, %llu sent, last HTTP status %ld",
	    s->inflight, (unsigned long long)s->sent, s->last_status);
	return (1);
}

/* SIGHUP: pick up a rotated bearer token. */
static void
webhook_reopen(struct ewsgw_sink *s)
{
	char	*cause = NULL;

	if (s->token_file != NULL && webhook_load_token(s, &cause) == -1) {
		ewsgw_host_log(s->host, LOG_WARNING,
		    "keeping the old token: %s", cause);
		free(cause);
	}
}

static void
webhook_destroy(struct ewsgw_sink *s)
{
	struct webhook_req	*wr;

	/* Cancels every request without calling webhook_done. */
	http_engine_free(s->eng);
	while ((wr = TAILQ_FIRST(&s->reqs)) != NULL) {
		TAILQ_REMOVE(&s->reqs, wr, entry);
		free(wr->mailbox);
		free(wr);
	}
	xfree_secret(s->auth_header);
	free(s->token_file);
	free(s->url);
	free(s);
}
