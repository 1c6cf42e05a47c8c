/*
 * ewsgw - Exchange calendar presence gateway
 * SPDX-License-Identifier: ISC
 *
 * Budget shares and the shrink-before-grow plan; see budget.h for the
 * argument.
 */
#include "config.h"

#include <stdbool.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "base/json.h"
#include "base/xmalloc.h"
#include "cluster/budget.h"

static const char *const budget_res_names[BUDGET_RES_MAX] = {
	"concurrency", "subscriptions", "streams"
};

const char *
budget_res_name(enum budget_res r)
{
	if ((unsigned)r >= BUDGET_RES_MAX)
		return ("unknown");
	return (budget_res_names[r]);
}

void
budget_split(unsigned total, const uint64_t *weights, size_t n,
    unsigned *out)
{
	unsigned __int128	 wsum = 0, prod, *rem;
	bool			*had;
	unsigned		 given = 0;
	size_t			 i, best;

	if (n == 0)
		return;
	for (i = 0; weights != NULL && i < n; i++)
		wsum += weights[i];
	if (wsum == 0) {
		for (i = 0; i < n; i++)
			out[i] = (unsigned)(total / n + (i < total % n));
		return;
	}
	rem = xreallocarray(NULL, n, sizeof *rem);
	had = xcalloc(n, sizeof *had);
	for (i = 0; i < n; i++) {
		prod = (unsigned __int128)total * weights[i];
		out[i] = (unsigned)(prod / wsum);
		rem[i] = prod % wsum;
		given += out[i];
	}
	/* Fewer than n units are left: one each to the largest remainders. */
	while (given < total) {
		best = n;
		for (i = 0; i < n; i++)
			if (!had[i] && (best == n || rem[i] > rem[best]))
				best = i;
		if (best == n)
			break;
		out[best]++;
		had[best] = true;
		given++;
	}
	free(rem);
	free(had);
}

void
budget_plan(const struct budget_input *in, struct budget_plan *p)
{
	const struct budget_peer *me = &in->peers[in->self];
	unsigned		*shares;
	uint64_t		 others;
	unsigned		 t, own, a, room, rec, lim, total;
	size_t			 k;
	int			 x;

	memset(p, 0, sizeof *p);
	shares = xreallocarray(NULL, in->n, sizeof *shares);
	for (x = 0; x < BUDGET_RES_MAX; x++) {
		total = in->total.v[x];
		a = in->applied.v[x];
		if (!in->split[x]) {
			/* Not shared: the owner of a mailbox uses all of it. */
			p->share.v[x] = p->limits.v[x] = p->record.v[x] = total;
			continue;
		}
		budget_split(total, x == BUDGET_SUBSCRIPTIONS ?
		    in->sub_weights : NULL, in->n, shares);
		t = shares[in->self];
		own = me->valid ? me->record.v[x] : 0;
		for (others = 0, k = 0; k < in->n; k++)
			if (k != in->self)
				others += in->peers[k].valid ?
				    in->peers[k].record.v[x] : total;
		room = others < total ? total - (unsigned)others : 0;
		if (t <= own) {
			/* Shrink: use at once, record once applied. */
			lim = t;
			rec = a > t ? a : t;
		} else {
			/* Grow: record first, as far as the others allow. */
			lim = own;
			rec = t < room ? t : room;
			if (rec < own)
				rec = own;
		}
		if (rec < a)
			rec = a;	/* I1, whatever the view says */
		p->share.v[x] = t;
		p->limits.v[x] = lim;
		p->record.v[x] = rec;
	}
	free(shares);

	p->record_epoch = in->released;
	p->write = !me->valid || me->epoch != in->released ||
	    memcmp(&me->record, &p->record, sizeof p->record) != 0;
	p->may_acquire = in->epoch != 0 && me->valid &&
	    me->epoch == in->epoch;
	for (k = 0; p->may_acquire && k < in->n; k++)
		if (!in->peers[k].valid || in->peers[k].epoch != in->epoch)
			p->may_acquire = false;
	p->settled = !p->write && p->may_acquire &&
	    memcmp(&p->limits, &p->share, sizeof p->share) == 0 &&
	    memcmp(&in->applied, &p->share, sizeof p->share) == 0 &&
	    memcmp(&p->record, &p->share, sizeof p->share) == 0;
}

void
budget_json(const struct budget *b, struct json_writer *w)
{
	int	 x;

	for (x = 0; x < BUDGET_RES_MAX; x++)
		json_kv_int(w, budget_res_names[x], b->v[x]);
}
