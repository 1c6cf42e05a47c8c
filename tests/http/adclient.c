/*
 * ewsgw - Exchange calendar presence gateway
 * SPDX-License-Identifier: ISC
 *
 * A tiny driver around the Autodiscover runner, for the integration test
 * against the EWS simulator: the EWS settings of a config file, the
 * addresses on the command line (or one a line in a file), one JSON line
 * per address and a last one with the counters on stdout.
 */
#include "config.h"

#include <err.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <event2/event.h>

#include "base/buf.h"
#include "base/conf.h"
#include "base/json.h"
#include "base/log.h"
#include "base/xmalloc.h"
#include "ews/autodiscover.h"
#include "io/discover.h"
#include "io/ews.h"

static struct event_base	*base;

static void
emit_row(const struct discover_result *r)
{
	struct buf		 b = BUF_INIT;
	struct json_writer	 w;
	char			*key;
	unsigned		 i;

	json_writer_init(&w, &b);
	json_obj_begin(&w);
	json_kv_str(&w, "address", r->address);
	json_kv_str(&w, "status", discover_status_name(r->status));
	json_kv_str(&w, "code", r->code);
	json_kv_str(&w, "via", r->via);
	json_kv_str(&w, "as", r->as);
	json_kv_int(&w, "hops", r->hops);
	for (i = 0; i < AD_SETTING_MAX; i++)
		if (r->user.values[i] != NULL)
			json_kv_str(&w, ad_setting_name((enum ad_setting)i),
			    r->user.values[i]);
	json_kv_int(&w, "missing", r->user.missing);
	key = ad_group_key(&r->user);
	json_kv_str(&w, "key", key);
	free(key);
	json_obj_end(&w);
	printf("%s\n", buf_str(&b));
	buf_free(&b);
}

static void
done(struct discover *d, const struct discover_result *rows, size_t n,
    void *arg)
{
	const struct discover_stats	*st = discover_stats(d);
	struct buf			 b = BUF_INIT;
	struct json_writer		 w;
	size_t				 i;

	for (i = 0; i < n; i++)
		emit_row(&rows[i]);
	json_writer_init(&w, &b);
	json_obj_begin(&w);
	json_kv_int(&w, "requests", (int64_t)st->requests);
	json_kv_int(&w, "users", (int64_t)st->users);
	json_kv_int(&w, "redirects", (int64_t)st->redirects);
	json_kv_int(&w, "retries", (int64_t)st->retries);
	json_kv_int(&w, "next_url", (int64_t)st->next_url);
	json_obj_end(&w);
	printf("%s\n", buf_str(&b));
	fflush(stdout);
	buf_free(&b);
	discover_free(d);
	event_base_loopbreak(base);
}

static char **
read_lines(const char *path, size_t *n)
{
	FILE	*f;
	char	*line = NULL, **out = NULL;
	size_t	 cap = 0, len;
	ssize_t	 got;

	if ((f = fopen(path, "r")) == NULL)
		err(1, "%s", path);
	*n = 0;
	while ((got = getline(&line, &cap, f)) != -1) {
		len = (size_t)got;
		while (len > 0 && (line[len - 1] == '\n' ||
		    line[len - 1] == '\r'))
			line[--len] = '\0';
		if (len == 0)
			continue;
		out = xreallocarray(out, *n + 1, sizeof(*out));
		out[(*n)++] = xstrdup(line);
	}
	free(line);
	fclose(f);
	return (out);
}

int
main(int argc, char **argv)
{
	struct discover_opts	 o;
	struct config		*conf;
	struct ews_ctx		*ews;
	struct discover		*d;
	char			*errors = NULL, *cause = NULL, **list = NULL;
	const char		*cfg = NULL, *file = NULL;
	size_t			 n = 0, i;
	int			 ch;

	memset(&o, 0, sizeof(o));
	while ((ch = getopt(argc, argv, "a:b:c:f:h:r:u:V:")) != -1) {
		switch (ch) {
		case 'a':
			o.max_attempts = (unsigned)atoi(optarg);
			break;
		case 'b':
			o.batch = (unsigned)atoi(optarg);
			break;
		case 'c':
			cfg = optarg;
			break;
		case 'f':
			file = optarg;
			break;
		case 'h':
			o.max_hops = (unsigned)atoi(optarg);
			break;
		case 'r':
			o.retry_ms = atoi(optarg);
			break;
		case 'u':
			o.url = optarg;
			break;
		case 'V':
			o.version = optarg;
			break;
		default:
			errx(2, "usage: adclient -c config [-u url] "
			    "[-V version] [-b batch] [-a attempts] "
			    "[-r retry_ms] [-h hops] (-f file | address...)");
		}
	}
	if (cfg == NULL)
		errx(2, "-c config is required");
	log_init("adclient", LOG_TARGET_STDERR, LOG_WARNING);
	if ((conf = conf_load(cfg, &errors)) == NULL)
		errx(1, "%s", errors != NULL ? errors : "bad config");
	if (file != NULL)
		list = read_lines(file, &n);
	else {
		n = (size_t)(argc - optind);
		list = xcalloc(n ? n : 1, sizeof(*list));
		for (i = 0; i < n; i++)
			list[i] = xstrdup(argv[optind + (int)i]);
	}
	base = event_base_new();
	if ((ews = ews_ctx_new(base, conf, &cause)) == NULL)
		errx(1, "%s", cause);
	d = discover_start(base, ews, &o, (const char *const *)list, n, done,
	    NULL, &cause);
	if (d == NULL)
		errx(1, "%s", cause);
	event_base_dispatch(base);
	ews_ctx_free(ews);
	event_base_free(base);
	for (i = 0; i < n; i++)
		free(list[i]);
	free(list);
	conf_free(conf);
	return (0);
}
