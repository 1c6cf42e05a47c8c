/*
 * ewsgw - Exchange calendar presence gateway
 * SPDX-License-Identifier: ISC
 *
 * Jittered exponential back-off and spread-out start-up; pure functions
 * of their state, a seeded PRNG and the time the caller passes in.
 */
#include "config.h"

#include <assert.h>
#include <stdint.h>
#include <string.h>

#include "base/backoff.h"

static uint64_t	rotl(uint64_t, int);
static uint64_t	splitmix64(uint64_t *);

static uint64_t
rotl(uint64_t x, int k)
{
	return ((x << k) | (x >> (64 - k)));
}

static uint64_t
splitmix64(uint64_t *x)
{
	uint64_t	z = (*x += 0x9e3779b97f4a7c15ULL);

	z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
	z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
	return (z ^ (z >> 31));
}

void
backoff_rng_seed(struct backoff_rng *r, uint64_t seed)
{
	int	i;

	/* splitmix64 never yields the all-zero state xoshiro must avoid. */
	for (i = 0; i < 4; i++)
		r->s[i] = splitmix64(&seed);
}

uint64_t
backoff_rng_next(struct backoff_rng *r)
{
	uint64_t	*s = r->s, result, t;

	result = rotl(s[1] * 5, 7) * 9;
	t = s[1] << 17;
	s[2] ^= s[0];
	s[3] ^= s[1];
	s[1] ^= s[2];
	s[0] ^= s[3];
	s[2] ^= t;
	s[3] = rotl(s[3], 45);
	return (result);
}

int64_t
backoff_rng_range(struct backoff_rng *r, int64_t lo, int64_t hi)
{
	uint64_t	span, x, limit;

	assert(lo <= hi);
	span = (uint64_t)hi - (uint64_t)lo;
	if (span == UINT64_MAX)
		return ((int64_t)backoff_rng_next(r));
	span++;
	/* Reject the top partial block so every value is equally likely. */
	limit = UINT64_MAX - (UINT64_MAX % span);
	do
		x = backoff_rng_next(r);
	while (x >= limit);
	return ((int64_t)((uint64_t)lo + x % span));
}

void
backoff_init(struct backoff *b, int64_t base_ms, int64_t cap_ms,
    enum backoff_jitter jitter)
{
	memset(b, 0, sizeof(*b));
	b->jitter = jitter;
	backoff_set_limits(b, base_ms, cap_ms);
}

void
backoff_set_limits(struct backoff *b, int64_t base_ms, int64_t cap_ms)
{
	b->base_ms = base_ms < 1 ? 1 : base_ms;
	b->cap_ms = cap_ms < b->base_ms ? b->base_ms : cap_ms;
}

void
backoff_reset(struct backoff *b)
{
	b->attempt = 0;
	b->prev_ms = 0;
}

int64_t
backoff_next(struct backoff *b, struct backoff_rng *r)
{
	int64_t		ceil, hi, d;
	unsigned	i;

	switch (b->jitter) {
	case BACKOFF_DECORRELATED:
		if (b->prev_ms < b->base_ms)
			b->prev_ms = b->base_ms;
		/* Draws above the cap are clamped, so it is reached. */
		hi = b->prev_ms > INT64_MAX / 3 ? INT64_MAX : b->prev_ms * 3;
		d = backoff_rng_range(r, b->base_ms, hi);
		if (d > b->cap_ms)
			d = b->cap_ms;
		break;
	case BACKOFF_FULL:
	default:
		/* base * 2^attempt, stopping at the cap before it overflows. */
		ceil = b->base_ms;
		for (i = 0; i < b->attempt && ceil < b->cap_ms; i++)
			ceil = ceil > b->cap_ms / 2 ? b->cap_ms : ceil * 2;
		if (ceil > b->cap_ms)
			ceil = b->cap_ms;
		d = backoff_rng_range(r, 0, ceil);
		break;
	}
	b->prev_ms = d;
	if (b->attempt < UINT32_MAX)
		b->attempt++;
	return (d);
}

void
backoff_spread_init(struct backoff_spread *s, int64_t separation_ms,
    unsigned randomness_pct)
{
	memset(s, 0, sizeof(*s));
	s->separation_ms = separation_ms < 0 ? 0 : separation_ms;
	s->randomness_pct = randomness_pct;
}

int64_t
backoff_spread_next(struct backoff_spread *s, struct backoff_rng *r,
    int64_t now_ms, int64_t min_delay_ms)
{
	int64_t	at, sep;

	at = now_ms + (min_delay_ms < 0 ? 0 : min_delay_ms);
	if (s->has_last) {
		sep = s->separation_ms;
		if (s->randomness_pct > 0 && sep > 0)
			sep += backoff_rng_range(r, 0,
			    sep * (int64_t)s->randomness_pct / 100);
		if (at < s->last_ms + sep)
			at = s->last_ms + sep;
	}
	s->last_ms = at;
	s->has_last = 1;
	return (at);
}
