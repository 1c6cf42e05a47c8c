/*
 * ewsgw - Exchange calendar presence gateway
 * SPDX-License-Identifier: ISC
 *
 * What a crowd of presence flips at one meeting boundary costs the event
 * loop: N mailboxes whose meeting starts in the same second, each
 * flipping available -> busy on the presence boundary timer, published
 * through the sink engine to a file sink with a change log in DIR, as
 * the daemon does (bench/run's configuration).  With -t, as many
 * mailboxes in all, the others' meetings an hour later (so the timer
 * heap, the sink's index and the state document are at that size).
 * Per flip, as in the mailbox's publish(): the presence function, the
 * boundary re-armed for the meeting's end, a change number, the sink
 * engine's queue and the file sink's change line and state entry.
 *
 * Printed: the loop thread's CPU time (CLOCK_THREAD_CPUTIME_ID, which a
 * loaded machine does not inflate) from the first flip until the last
 * change is delivered, and per flip.  Instructions per flip come from
 * valgrind's callgrind, counting only the flip phase:
 *
 *   valgrind --tool=callgrind --collect-atstart=no \
 *       --toggle-collect=flip_phase bench/flips -n 10000 DIR
 *
 * (total Ir over N).  -w is the lead time before the boundary (seconds;
 * raise it when set-up under valgrind takes longer).
 *
 *   bench/flips [-n flipping] [-t mailboxes] [-w seconds] DIR
 */
#include "config.h"

#include <err.h>
#include <event2/event.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "base/conf.h"
#include "base/timerheap.h"
#include "base/timeutil.h"
#include "base/xmalloc.h"
#include "presence/boundary.h"
#include "presence/presence.h"
#include "presence/timeline.h"
#include "sinks/sinkset.h"
#include "cputime.h"

#define MEETING_S	1800

/* The part of struct mailbox a flip touches. */
struct fmbox {
	char			*address;
	struct timeline		 tl;
	struct timerheap_entry	 boundary;
	struct presence		 pres;
	bool			 has_presence;
};

struct flips {
	struct sinkset		*set;
	struct boundary		*timers;
	struct presence_rules	 rules;
	long			 flipped;
	long			 published;
};

static struct flips	 F;

/* As the mailbox's publish(). */
static void
publish(struct fmbox *mb, const char *source)
{
	struct presence			 p;
	struct ewsgw_presence_change	 ch;
	int64_t				 now = time_wall_ms() / 1000;

	presence_compute(&mb->tl, NULL, now, &F.rules, &p);
	if (p.until != PRESENCE_NO_UNTIL)
		boundary_schedule(F.timers, &mb->boundary, p.until * 1000);
	else
		boundary_cancel(F.timers, &mb->boundary);
	if (mb->has_presence && presence_equal(&p, &mb->pres)) {
		mb->pres.until = p.until;
		return;
	}
	presence_change(&p, &mb->pres, &ch);
	ch.mailbox = mb->address;
	ch.source = source;
	mb->pres = p;
	mb->has_presence = true;
	ch.seq = sinkset_next_seq(F.set);
	F.published++;
	sinkset_publish(F.set, &ch);
}

static void
on_timer(struct timerheap_entry *e, void *arg)
{
	struct fmbox	*mb = timerheap_owner(e, struct fmbox, boundary);

	(void)arg;
	F.flipped++;
	publish(mb, "timer");
}

/* The measured part: from before the boundary until all is delivered. */
static void __attribute__((noinline))
flip_phase(struct event_base *base, long n, int64_t *cpu_ns)
{
	int64_t	 t0;

	t0 = -1;
	while (F.flipped < n || sinkset_depth(F.set) > 0) {
		if (t0 == -1 && F.flipped == 0)
			t0 = thread_cpu_ns();
		event_base_loop(base, EVLOOP_ONCE);
	}
	*cpu_ns = thread_cpu_ns() - t0;
}

int
main(int argc, char *argv[])
{
	struct conf_kv		 kv[2];
	struct conf_sink	 cs;
	struct config		 conf;
	struct event_base	*base;
	struct timeline_item	 item;
	struct fmbox		*mbs;
	char			*path, *log, *errors = NULL;
	int64_t			 now, at, cpu;
	long			 n = 10000, total = 0, lead = 2, i, busy = 0;
	int			 ch;

	while ((ch = getopt(argc, argv, "n:t:w:")) != -1) {
		switch (ch) {
		case 'n': n = atol(optarg); break;
		case 't': total = atol(optarg); break;
		case 'w': lead = atol(optarg); break;
		default:
			fprintf(stderr, "usage: flips [-n flipping] "
			    "[-t mailboxes] [-w seconds] DIR\n");
			return (2);
		}
	}
	if (total < n)
		total = n;
	if (optind + 1 != argc || n < 1 || lead < 1)
		errx(2, "usage: flips [-n flipping] [-t mailboxes] "
		    "[-w seconds] DIR");
	xasprintf(&path, "%s/state.json", argv[optind]);
	xasprintf(&log, "%s/changes.jsonl", argv[optind]);
	memset(&conf, 0, sizeof conf);
	kv[0] = (struct conf_kv){ xstrdup("path"), path, 2 };
	kv[1] = (struct conf_kv){ xstrdup("log"), log, 3 };
	cs = (struct conf_sink){ xstrdup("file"), xstrdup("file"), kv, 2,
	    1 };
	conf.path = xstrdup("flips.conf");
	conf.sinks = &cs;
	conf.nsinks = 1;

	base = event_base_new();
	if ((F.set = sinkset_new(base, &conf, &errors)) == NULL)
		errx(1, "%s", errors);
	F.timers = boundary_new(base, BOUNDARY_WALL, on_timer, NULL);
	presence_rules_default(&F.rules);

	/* Every meeting starts at the same whole second. */
	now = time_wall_ms() / 1000;
	at = now + lead;
	memset(&item, 0, sizeof item);
	item.start = at;
	item.end = at + MEETING_S;
	item.status = TL_BUSY;
	mbs = xcalloc((size_t)total, sizeof *mbs);
	for (i = 0; i < total; i++) {
		if (i == n) {
			item.start += 3600;
			item.end += 3600;
		}
		xasprintf(&mbs[i].address, "user%06ld@bench.example", i);
		timeline_init(&mbs[i].tl);
		timeline_update(&mbs[i].tl, &item, 1, now, 86400, 86400);
		timerheap_entry_init(&mbs[i].boundary);
		publish(&mbs[i], "calendar");
		if (mbs[i].pres.state == PRESENCE_BUSY)
			busy++;
		/* Delivered as it goes: the sink's queue never fills. */
		while (i % 1000 == 999 && sinkset_depth(F.set) > 0)
			event_base_loop(base, EVLOOP_ONCE);
	}
	if (busy > 0)
		errx(1, "set-up reached the boundary: raise -w");
	while (sinkset_depth(F.set) > 0)
		event_base_loop(base, EVLOOP_ONCE);
	if (time_wall_ms() >= at * 1000)
		errx(1, "set-up reached the boundary: raise -w");
	F.published = 0;

	flip_phase(base, n, &cpu);
	for (i = 0; i < n; i++)
		if (mbs[i].pres.state == PRESENCE_BUSY)
			busy++;
	if (busy != n || F.published != n)
		errx(1, "%ld of %ld flipped, %ld published", busy, n,
		    F.published);
	printf("flips %ld, loop thread CPU %.1f ms, %.2f us per flip\n", n,
	    cpu / 1e6, cpu / 1e3 / n);

	sinkset_free(F.set);
	boundary_free(F.timers);
	for (i = 0; i < total; i++) {
		timeline_free(&mbs[i].tl);
		free(mbs[i].address);
	}
	free(mbs);
	event_base_free(base);
	return (0);
}
