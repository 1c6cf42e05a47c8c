/*
 * ewsgw - Exchange calendar presence gateway
 * SPDX-License-Identifier: ISC
 *
 * Retry timing, pure: jittered exponential back-off and spread-out
 * start-up, with a small seedable PRNG so tests are deterministic.
 * Times are milliseconds; nothing here reads a clock.
 */
#ifndef EWSGW_BACKOFF_H
#define EWSGW_BACKOFF_H

#include <stdint.h>

/* xoshiro256** state; seed it with backoff_rng_seed. */
struct backoff_rng {
	uint64_t	s[4];
};

enum backoff_jitter {
	/* uniform in [0, min(cap, base * 2^attempt)] (AWS "full jitter") */
	BACKOFF_FULL,
	/* min(cap, uniform in [base, 3 * previous delay]) ("decorrelated") */
	BACKOFF_DECORRELATED
};

struct backoff {
	int64_t			 base_ms;
	int64_t			 cap_ms;
	enum backoff_jitter	 jitter;
	unsigned		 attempt;	/* failures since reset */
	int64_t			 prev_ms;	/* last delay (decorrelated) */
};

/*
 * Chrony's "class + separation + randomness" scheduling: successive
 * start times of one class are at least separation * (1 + r) apart,
 * r uniform in [0, randomness_pct / 100], so N mailboxes (re)starting
 * together are spread out instead of connecting at once.
 */
struct backoff_spread {
	int64_t		 separation_ms;
	unsigned	 randomness_pct;
	int64_t		 last_ms;	/* last time handed out */
	int		 has_last;
};

/* Seed the generator; equal seeds give equal sequences. */
void	 backoff_rng_seed(struct backoff_rng *, uint64_t);
uint64_t backoff_rng_next(struct backoff_rng *);
/* Uniform integer in [lo, hi] (lo <= hi), without modulo bias. */
int64_t	 backoff_rng_range(struct backoff_rng *, int64_t lo, int64_t hi);

/*
 * Set up a back-off.  base_ms >= 1; cap_ms is clamped to at least
 * base_ms.
 */
void	 backoff_init(struct backoff *, int64_t base_ms, int64_t cap_ms,
	    enum backoff_jitter);
/* Record one more failure and return the delay to wait before retrying. */
int64_t	 backoff_next(struct backoff *, struct backoff_rng *);
/* Success: the next failure starts again from base. */
void	 backoff_reset(struct backoff *);
/* Change base and cap (reload) without losing the attempt count. */
void	 backoff_set_limits(struct backoff *, int64_t base_ms, int64_t cap_ms);

void	 backoff_spread_init(struct backoff_spread *, int64_t separation_ms,
	    unsigned randomness_pct);
/*
 * Absolute time at which the next member of this class may start: no
 * earlier than now + min_delay_ms and separated from the previous one.
 */
int64_t	 backoff_spread_next(struct backoff_spread *, struct backoff_rng *,
	    int64_t now_ms, int64_t min_delay_ms);

#endif
