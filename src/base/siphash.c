/*
 * ewsgw - Exchange calendar presence gateway
 * SPDX-License-Identifier: ISC
 *
 * SipHash-2-4, written from the reference description: little-endian
 * 64-bit words, two compression rounds per word, four finalisation
 * rounds, the message length in the last byte of the final word.
 */
#include "config.h"

#include <stdint.h>
#include <string.h>

#include "base/siphash.h"

#define ROTL(x, b)	(uint64_t)(((x) << (b)) | ((x) >> (64 - (b))))

static void	sip_round(uint64_t *);
static void	sip_compress(struct siphash *, uint64_t);
static uint64_t	load_le64(const uint8_t *);

static void
sip_round(uint64_t *v)
{
	v[0] += v[1];
	v[1] = ROTL(v[1], 13);
	v[1] ^= v[0];
	v[0] = ROTL(v[0], 32);
	v[2] += v[3];
	v[3] = ROTL(v[3], 16);
	v[3] ^= v[2];
	v[0] += v[3];
	v[3] = ROTL(v[3], 21);
	v[3] ^= v[0];
	v[2] += v[1];
	v[1] = ROTL(v[1], 17);
	v[1] ^= v[2];
	v[2] = ROTL(v[2], 32);
}

static void
sip_compress(struct siphash *s, uint64_t m)
{
	s->v[3] ^= m;
	sip_round(s->v);
	sip_round(s->v);
	s->v[0] ^= m;
}

static uint64_t
load_le64(const uint8_t *p)
{
	uint64_t	 m = 0;
	int		 i;

	for (i = 7; i >= 0; i--)
		m = (m << 8) | p[i];
	return (m);
}

void
siphash_init(struct siphash *s, const uint8_t key[SIPHASH_KEY_LEN])
{
	uint64_t	 k0 = load_le64(key), k1 = load_le64(key + 8);

	s->v[0] = k0 ^ 0x736f6d6570736575ULL;
	s->v[1] = k1 ^ 0x646f72616e646f6dULL;
	s->v[2] = k0 ^ 0x6c7967656e657261ULL;
	s->v[3] = k1 ^ 0x7465646279746573ULL;
	s->tail = 0;
	s->ntail = 0;
	s->len = 0;
}

void
siphash_update(struct siphash *s, const void *data, size_t len)
{
	const uint8_t	*p = data;

	s->len += len;
	while (len > 0 && s->ntail > 0) {
		s->tail |= (uint64_t)*p++ << (8 * s->ntail);
		len--;
		if (++s->ntail == 8) {
			sip_compress(s, s->tail);
			s->tail = 0;
			s->ntail = 0;
		}
	}
	for (; len >= 8; p += 8, len -= 8)
		sip_compress(s, load_le64(p));
	for (; len > 0; len--)
		s->tail |= (uint64_t)*p++ << (8 * s->ntail++);
}

uint64_t
siphash_final(struct siphash *s)
{
	sip_compress(s, s->tail | (s->len & 0xff) << 56);
	s->v[2] ^= 0xff;
	sip_round(s->v);
	sip_round(s->v);
	sip_round(s->v);
	sip_round(s->v);
	return (s->v[0] ^ s->v[1] ^ s->v[2] ^ s->v[3]);
}

uint64_t
siphash24(const uint8_t key[SIPHASH_KEY_LEN], const void *data, size_t len)
{
	struct siphash	 s;

	siphash_init(&s, key);
	siphash_update(&s, data, len);
	return (siphash_final(&s));
}
