/*
 * ewsgw - Exchange calendar presence gateway
 * SPDX-License-Identifier: ISC
 *
 * What the file sink's state writes cost the event loop, in CPU time
 * of the loop's thread (CLOCK_THREAD_CPUTIME_ID), which a loaded
 * machine does not inflate.  The sink engine and a file sink
 * (`-i`, default 1s as in the daemon) in DIR get N mailboxes, then a steady
 * trickle of changes: every 10 ms, `-c` changes to existing mailboxes
 * and `-g` new ones.  Every pass of the loop is timed; printed are the
 * passes' maximum, 99th percentile and total, and the state writes
 * seen (the file's inode changes).  The loop's CPU per state write is
 * the difference of the totals of a run and one without writes
 * (`-i 1h`: the changes are delivered all the same), divided by the
 * writes.
 *
 *   bench/statewrite [-n mailboxes] [-s seconds] [-c changes]
 *       [-g new] [-i interval] DIR
 */
#include "config.h"

#include <sys/stat.h>

#include <err.h>
#include <event2/event.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "base/conf.h"
#include "base/timeutil.h"
#include "base/xmalloc.h"
#include "sinks/sinkset.h"
#include "cputime.h"

#define TICK_MS		10

static const char *const presences[] = { "busy", "available", "away" };

static void
publish(struct sinkset *set, long i, long seq)
{
	char				 mb[64];
	struct ewsgw_presence_change	 c = {
		.size = sizeof c,
		.mailbox = mb,
		.presence = presences[seq % 3],
		.previous = presences[(seq + 2) % 3],
		.since = 1795950000,
		.source = "calendar",
		.seq = (uint64_t)seq,
	};

	snprintf(mb, sizeof mb, "user%06ld@bench.example", i);
	sinkset_publish(set, &c);
}

static int
cmp_i64(const void *a, const void *b)
{
	int64_t	 x = *(const int64_t *)a, y = *(const int64_t *)b;

	return ((x > y) - (x < y));
}

static void
tick_cb(evutil_socket_t fd, short what, void *arg)
{
}

int
main(int argc, char *argv[])
{
	struct conf_kv		 kv[2];
	struct conf_sink	 cs;
	struct config		 conf;
	struct event_base	*base;
	struct event		*tick;
	struct sinkset		*set;
	struct timeval		 tv = { 0, TICK_MS * 1000 };
	struct stat		 st;
	char			*path, *pathkv, *errors = NULL;
	const char		*interval = "1s";
	int64_t			*pass, t0, t1, total = 0, end, next;
	long			 n = 100000, secs = 20, changes = 10, grow = 0;
	long			 i, seq = 0, npass = 0, cap, writes = 0;
	ino_t			 ino = 0;
	int			 ch;

	while ((ch = getopt(argc, argv, "n:s:c:g:i:")) != -1) {
		switch (ch) {
		case 'n': n = atol(optarg); break;
		case 's': secs = atol(optarg); break;
		case 'c': changes = atol(optarg); break;
		case 'g': grow = atol(optarg); break;
		case 'i': interval = optarg; break;
		default:
			fprintf(stderr, "usage: statewrite [-n mailboxes] "
			    "[-s seconds] [-c changes] [-g new] "
			    "[-i interval] DIR\n");
			return (2);
		}
	}
	if (optind + 1 != argc || n < 1 || secs < 1)
		errx(2, "usage: statewrite [-n mailboxes] [-s seconds] "
		    "[-c changes] [-g new] [-i interval] DIR");
	xasprintf(&path, "%s/state.json", argv[optind]);
	pathkv = xstrdup(path);
	memset(&conf, 0, sizeof conf);
	memset(&cs, 0, sizeof cs);
	kv[0] = (struct conf_kv){ xstrdup("path"), pathkv, 2 };
	kv[1] = (struct conf_kv){ xstrdup("interval"), xstrdup(interval),
	    3 };
	cs = (struct conf_sink){ xstrdup("state"), xstrdup("file"), kv, 2,
	    1 };
	conf.path = xstrdup("statewrite.conf");
	conf.sinks = &cs;
	conf.nsinks = 1;

	base = event_base_new();
	if ((set = sinkset_new(base, &conf, &errors)) == NULL)
		errx(1, "%s", errors);
	for (i = 0; i < n; i++, seq++)
		publish(set, i, seq);
	while (sinkset_depth(set) > 0 || stat(path, &st) == -1)
		event_base_loop(base, EVLOOP_ONCE);

	tick = event_new(base, -1, EV_PERSIST, tick_cb, NULL);
	event_add(tick, &tv);
	cap = secs * 1000 * 4 + 1024;
	pass = xcalloc((size_t)cap, sizeof *pass);
	end = time_mono_ms() + secs * 1000;
	next = time_mono_ms();
	ino = st.st_ino;
	while (time_mono_ms() < end) {
		if (time_mono_ms() >= next) {
			/* The changes arrive from the network: not timed. */
			for (i = 0; i < changes; i++, seq++)
				publish(set, (seq * 7919) % n, seq);
			for (i = 0; i < grow; i++, seq++)
				publish(set, n++, seq);
			next += TICK_MS;
		}
		t0 = thread_cpu_ns();
		event_base_loop(base, EVLOOP_ONCE);
		t1 = thread_cpu_ns();
		if (npass < cap)
			pass[npass++] = t1 - t0;
		total += t1 - t0;
		if (stat(path, &st) == 0 && st.st_ino != ino) {
			ino = st.st_ino;
			writes++;
		}
	}
	qsort(pass, (size_t)npass, sizeof *pass, cmp_i64);
	printf("mailboxes %ld (+%ld per %d ms), %ld s, %ld passes, "
	    "%ld state writes\n", n, grow, TICK_MS, secs, npass, writes);
	printf("loop thread CPU per pass: max %.3f ms, p99 %.3f ms, "
	    "p50 %.3f ms\n", pass[npass - 1] / 1e6,
	    pass[npass * 99 / 100] / 1e6, pass[npass / 2] / 1e6);
	printf("loop thread CPU in all passes: %.1f ms\n", total / 1e6);
	event_free(tick);
	sinkset_free(set);
	event_base_free(base);
	free(pass);
	free(path);
	return (0);
}
