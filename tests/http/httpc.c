/*
 * ewsgw - Exchange calendar presence gateway
 * SPDX-License-Identifier: ISC
 *
 * A tiny client around the HTTP engine and the push listener, driven by
 * the integration tests against the EWS simulator.  One JSON line per
 * completed request or received notification on stdout.
 */
#include "config.h"

#include <err.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <event2/event.h>

#include "base/buf.h"
#include "ews/ews_parse.h"
#include "io/http.h"
#include "base/json.h"
#include "base/log.h"
#include "io/push.h"
#include "base/xmalloc.h"

static struct event_base	*base;
static struct http_engine	*eng;
static struct http_request_opts	 ropts;
static int			 remaining;	/* requests or notifications */
static bool			 streaming;
static unsigned			 chunks;
static struct buf		 data;
static const char		*outfile;
static struct event		*quit;

static void	start(void);

static void
emit(struct buf *b)
{
	printf("%s\n", buf_str(b));
	fflush(stdout);
	buf_free(b);
}

static void
save(const char *p, size_t len)
{
	FILE	*f;

	if (outfile == NULL)
		return;
	if ((f = fopen(outfile, "w")) == NULL)
		err(1, "%s", outfile);
	fwrite(p, 1, len, f);
	fclose(f);
}

static int
on_data(const char *p, size_t len, void *arg)
{
	chunks++;
	buf_append(&data, p, len);
	return (HTTP_DATA_OK);
}

static void
on_done(struct http_request *req, const struct http_response *resp,
    void *arg)
{
	struct buf		 b = BUF_INIT;
	struct json_writer	 w;

	json_writer_init(&w, &b);
	json_obj_begin(&w);
	json_kv_str(&w, "result", http_result_name(resp->result));
	json_kv_int(&w, "status", resp->status);
	json_kv_int(&w, "curl", resp->curl_code);
	json_kv_str(&w, "error", resp->error);
	json_kv_int(&w, "body_len", streaming ? (int64_t)data.len :
	    (int64_t)resp->body_len);
	json_kv_int(&w, "chunks", chunks);
	json_kv_str(&w, "cookie", resp->cookie_backend);
	json_kv_str(&w, "www_authenticate", resp->www_authenticate);
	json_kv_str(&w, "content_type", resp->content_type);
	json_obj_end(&w);
	emit(&b);
	if (streaming)
		save(data.data != NULL ? data.data : "", data.len);
	else
		save(resp->body, resp->body_len);
	buf_reset(&data);
	chunks = 0;
	if (--remaining > 0)
		start();	/* next one, same connection if kept */
	else
		event_base_loopbreak(base);
}

static void
start(void)
{
	http_request_start(eng, &ropts, on_done, streaming ? on_data : NULL,
	    NULL);
}

static void
quit_cb(evutil_socket_t fd, short ev, void *arg)
{
	event_base_loopbreak(base);
}

/* Answer OK until the last expected notification, then Unsubscribe. */
static int
on_notify(const struct ews_notifications *n, const char *body, size_t len,
    void *arg)
{
	struct buf		 b = BUF_INIT;
	struct json_writer	 w;
	size_t			 i;
	int			 verdict;
	struct timeval		 tv = { 0, 300000 };

	verdict = --remaining > 0 ? PUSH_OK : PUSH_UNSUBSCRIBE;
	json_writer_init(&w, &b);
	json_obj_begin(&w);
	json_kv_int(&w, "notification_len", len);
	for (i = 0; i < n->nmsgs; i++) {
		if (n->msgs[i].has_notification)
			json_kv_str(&w, "subscription",
			    n->msgs[i].notification.subscription_id);
	}
	json_kv_str(&w, "answer", verdict == PUSH_OK ? "OK" : "Unsubscribe");
	json_obj_end(&w);
	emit(&b);
	if (remaining <= 0)
		evtimer_add(quit, &tv);	/* let the answer go out first */
	return (verdict);
}

static void
usage(void)
{
	fprintf(stderr, "usage: httpc [-sv] [-a none|ntlm|basic|negotiate] "
	    "[-u user] [-p password] [-n count] [-A anchor] [-C cookie] "
	    "[-t ms] [-o file] url < body\n"
	    "       httpc -P path [-n count]   (push listener)\n");
	exit(2);
}

int
main(int argc, char **argv)
{
	struct http_engine_opts	 eo;
	struct push_opts	 po;
	struct push		*push = NULL;
	struct buf		 body = BUF_INIT;
	char			 chunk[4096], *cause = NULL;
	const char		*push_path = NULL;
	char			*url, *token_url;
	size_t			 n;
	int			 ch, level = LOG_WARNING;

	memset(&eo, 0, sizeof eo);
	eo.tls_verify = true;
	remaining = 1;
	while ((ch = getopt(argc, argv, "A:a:C:n:o:P:p:st:u:v")) != -1) {
		switch (ch) {
		case 'A':
			ropts.anchor_mailbox = optarg;
			ropts.prefer_affinity = true;
			break;
		case 'a':
			if (strcmp(optarg, "ntlm") == 0)
				eo.cred = HTTP_CRED_NTLM;
			else if (strcmp(optarg, "basic") == 0)
				eo.cred = HTTP_CRED_BASIC;
			else if (strcmp(optarg, "negotiate") == 0)
				eo.cred = HTTP_CRED_NEGOTIATE;
			else if (strcmp(optarg, "none") != 0)
				usage();
			break;
		case 'C':
			ropts.backend_cookie = optarg;
			break;
		case 'n':
			remaining = atoi(optarg);
			break;
		case 'o':
			outfile = optarg;
			break;
		case 'P':
			push_path = optarg;
			break;
		case 'p':
			eo.password = optarg;
			break;
		case 's':
			streaming = true;
			break;
		case 't':
			ropts.timeout_ms = atoll(optarg);
			break;
		case 'u':
			eo.username = optarg;
			break;
		case 'v':
			level = LOG_DEBUG;
			break;
		default:
			usage();
		}
	}
	argc -= optind;
	argv += optind;
	log_init("httpc", LOG_TARGET_STDERR, level);
	base = event_base_new();
	quit = evtimer_new(base, quit_cb, NULL);

	if (push_path != NULL) {
		memset(&po, 0, sizeof po);
		po.listen = "127.0.0.1:0";
		po.path = push_path;
		if ((push = push_new(base, &po, on_notify, NULL,
		    &cause)) == NULL)
			errx(1, "%s", cause);
		xasprintf(&url, "http://127.0.0.1:%u%s", push_port(push),
		    push_path);
		token_url = push_notify_url(push, url);
		printf("{\"port\":%u,\"url\":\"%s\"}\n", push_port(push),
		    token_url);
		free(url);
		free(token_url);
		fflush(stdout);
		event_base_dispatch(base);
		push_free(push);
	} else {
		if (argc != 1 || remaining < 1)
			usage();
		while ((n = fread(chunk, 1, sizeof chunk, stdin)) > 0)
			buf_append(&body, chunk, n);
		if ((eng = http_engine_new(base, &eo, &cause)) == NULL)
			errx(1, "%s", cause);
		ropts.method = HTTP_POST;
		ropts.url = argv[0];
		ropts.body = body.data;
		ropts.body_len = body.len;
		start();
		event_base_dispatch(base);
		http_engine_free(eng);
	}
	event_free(quit);
	event_base_free(base);
	buf_free(&body);
	buf_free(&data);
	return (0);
}
