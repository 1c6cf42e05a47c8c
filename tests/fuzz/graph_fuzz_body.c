/*
 * ewsgw - Exchange calendar presence gateway
 * SPDX-License-Identifier: ISC
 *
 * Every Graph parser on one input.
 */
#include "config.h"

#include <stdlib.h>
#include <string.h>

#include "graph_fuzz_body.h"
#include "graph/graph_batch.h"
#include "graph/graph_cal.h"
#include "graph/graph_error.h"
#include "graph/graph_sub.h"

/* A parser said no: it must say why. */
#define REFUSED(rc, cause) do {						\
	if ((rc) != 0 && (cause) == NULL)				\
		abort();						\
	free(cause);							\
	(cause) = NULL;							\
} while (0)

void
graph_fuzz_one(const char *s, size_t len)
{
	struct graph_page		 pg;
	struct ews_oof			 oof;
	struct graph_subscription	 sub;
	struct graph_notifs		 ns;
	struct graph_batch		 b;
	struct graph_error		 e;
	char				*cause = NULL, *tok;
	size_t				 i;
	int				 rc;

	rc = graph_parse_calview(s, len, &pg, &cause);
	REFUSED(rc, cause);
	for (i = 0; i < pg.nitems; i++)
		if (pg.items[i].id == NULL || pg.items[i].end <
		    pg.items[i].start)
			abort();
	graph_page_free(&pg);

	rc = graph_parse_auto_replies(s, len, &oof, &cause);
	REFUSED(rc, cause);
	if (rc == 0 && oof.state == EWS_OOF_SCHEDULED && !oof.has_duration)
		abort();
	ews_oof_free(&oof);

	rc = graph_parse_subscription(s, len, &sub, &cause);
	REFUSED(rc, cause);
	if (rc == 0 && sub.id == NULL)
		abort();
	graph_subscription_free(&sub);

	rc = graph_parse_notifications(s, len, "fuzz-secret", &ns, &cause);
	REFUSED(rc, cause);
	for (i = 0; i < ns.n; i++)
		if (ns.v[i].subscription_id == NULL)
			abort();
	graph_notifs_free(&ns);

	rc = graph_parse_batch(s, len, &b, &cause);
	REFUSED(rc, cause);
	for (i = 0; i < b.n; i++)
		if (b.v[i].body != NULL && strlen(b.v[i].body) !=
		    b.v[i].body_len)
			abort();
	graph_batch_free(&b);

	if (graph_parse_error(s, len, &e) == 0 &&
	    strlen(e.code) >= sizeof e.code)
		abort();
	graph_error_free(&e);

	rc = graph_validation_token(s, len, &tok);
	if ((rc == 1) != (tok != NULL) || (tok != NULL && (tok[0] == '\0' ||
	    strlen(tok) > GRAPH_VALIDATION_MAX)))
		abort();
	free(tok);
}
