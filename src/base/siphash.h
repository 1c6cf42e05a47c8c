/*
 * ewsgw - Exchange calendar presence gateway
 * SPDX-License-Identifier: ISC
 *
 * SipHash-2-4 (Aumasson and Bernstein, 2012): a keyed 64-bit hash whose
 * output is fixed by its specification, so every build on every machine
 * computes the same value for the same key and bytes.  Pure.
 */
#ifndef EWSGW_SIPHASH_H
#define EWSGW_SIPHASH_H

#include <stddef.h>
#include <stdint.h>

#define SIPHASH_KEY_LEN	16

/* Incremental state; fields are private. */
struct siphash {
	uint64_t	v[4];
	uint64_t	tail;		/* bytes not yet compressed */
	size_t		ntail;		/* 0..7 */
	uint64_t	len;		/* bytes seen */
};

void		siphash_init(struct siphash *, const uint8_t [SIPHASH_KEY_LEN]);
void		siphash_update(struct siphash *, const void *, size_t);
uint64_t	siphash_final(struct siphash *);
/* One call: the hash of len bytes under key. */
uint64_t	siphash24(const uint8_t [SIPHASH_KEY_LEN], const void *,
		    size_t);

#endif
