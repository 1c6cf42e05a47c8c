/*
 * ewsgw - Exchange calendar presence gateway
 * SPDX-License-Identifier: ISC
 *
 * Rendezvous hashing: weights, owners, placement keys; see hrw.h.
 */
#include "config.h"

#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "base/buf.h"
#include "base/siphash.h"
#include "base/xmalloc.h"
#include "cluster/hrw.h"

/* Never change: it decides which node watches which mailbox. */
static const uint8_t hrw_sipkey[SIPHASH_KEY_LEN] = {
	'e', 'w', 's', 'g', 'w', '-', 'r', 'e',
	'n', 'd', 'e', 'z', 'v', 'o', 'u', 's'
};

static uint64_t	fmix64(uint64_t);

static uint64_t
fmix64(uint64_t h)
{
	h ^= h >> 33;
	h *= 0xff51afd7ed558ccdULL;
	h ^= h >> 33;
	h *= 0xc4ceb9fe1a85ec53ULL;
	h ^= h >> 33;
	return (h);
}

uint64_t
hrw_member_hash(const char *name)
{
	return (siphash24(hrw_sipkey, name, strlen(name)));
}

uint64_t
hrw_key_hash(const char *key, size_t len)
{
	return (siphash24(hrw_sipkey, key, len));
}

uint64_t
hrw_weight(uint64_t member_hash, uint64_t key_hash)
{
	return (fmix64(member_hash ^ key_hash));
}

size_t
hrw_owner(const char *const *members, const uint64_t *mh, size_t n,
    uint64_t key_hash)
{
	uint64_t	 best = 0, w;
	size_t		 i, win = 0;

	for (i = 0; i < n; i++) {
		w = hrw_weight(mh[i], key_hash);
		if (i == 0 || w > best ||
		    (w == best && strcmp(members[i], members[win]) < 0)) {
			best = w;
			win = i;
		}
	}
	return (win);
}

void
hrw_item_key(const struct hrw_item *it, unsigned slices, struct buf *out)
{
	uint64_t	 h;

	if (it->group == NULL) {
		buf_puts(out, it->address);
		return;
	}
	buf_puts(out, it->group);
	if (slices > 1) {
		h = siphash24(hrw_sipkey, it->address, strlen(it->address));
		buf_printf(out, "\n%u", (unsigned)(h % slices));
	}
}

uint64_t
hrw_item_hash(const struct hrw_item *it, unsigned slices)
{
	struct buf	 b = BUF_INIT;
	uint64_t	 h;

	if (it->group == NULL)
		return (hrw_key_hash(it->address, strlen(it->address)));
	hrw_item_key(it, slices, &b);
	h = hrw_key_hash(b.data, b.len);
	buf_free(&b);
	return (h);
}

void
hrw_assign(const char *const *members, size_t nmembers,
    const struct hrw_item *items, size_t n, unsigned slices, size_t *owner,
    size_t *counts)
{
	uint64_t	*mh;
	size_t		 i;

	mh = xreallocarray(NULL, nmembers, sizeof *mh);
	for (i = 0; i < nmembers; i++)
		mh[i] = hrw_member_hash(members[i]);
	if (counts != NULL)
		memset(counts, 0, nmembers * sizeof *counts);
	for (i = 0; i < n; i++) {
		owner[i] = hrw_owner(members, mh, nmembers,
		    hrw_item_hash(&items[i], slices));
		if (counts != NULL)
			counts[owner[i]]++;
	}
	free(mh);
}
