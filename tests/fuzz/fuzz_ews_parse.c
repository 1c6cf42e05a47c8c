/*
 * ewsgw - Exchange calendar presence gateway
 * SPDX-License-Identifier: ISC
 *
 * libFuzzer target: every EWS (and Autodiscover) response parser on the
 * same input.
 */
#include "config.h"

#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "ews/ews_parse.h"

int	LLVMFuzzerTestOneInput(const uint8_t *, size_t);

/* Touch every decoded string so the sanitizers see bad pointers. */
static size_t
sink(const char *s)
{
	return (s != NULL ? strlen(s) : 0);
}

static size_t
walk_notification(const struct ews_notification *n)
{
	size_t	 i, t;

	t = sink(n->subscription_id) + sink(n->previous_watermark);
	for (i = 0; i < n->nevents; i++)
		t += sink(n->events[i].watermark) + sink(n->events[i].id) +
		    sink(n->events[i].parent_id) + sink(n->events[i].old_id) +
		    sink(n->events[i].old_parent_id) +
		    sink(ews_event_name(n->events[i].type));
	return (t);
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	const char		*d = (const char *)data;
	struct ews_response	 r;
	struct ews_subscribe	 s;
	struct ews_notifications n;
	struct ews_streaming	 st;
	struct ews_calendar	 c;
	struct ews_items	 it;
	struct ews_availability	 a;
	struct ews_oof		 o;
	struct ews_user_settings us;
	char			*cause = NULL, *key;
	size_t			 i, j, t = 0;

	if (ews_parse_response(d, size, &r, &cause) == 0)
		t += sink(r.status.message) + sink(r.faultstring) +
		    ews_status_action(&r.status);
	ews_response_free(&r);
	free(cause);
	cause = NULL;

	ews_parse_unsubscribe(d, size, &r, NULL);
	ews_response_free(&r);

	if (ews_parse_subscribe(d, size, &s, NULL) == 0)
		t += sink(s.subscription_id) + sink(s.watermark);
	ews_subscribe_free(&s);

	if (ews_parse_get_events(d, size, &n, NULL) == 0)
		for (i = 0; i < n.nmsgs; i++)
			t += walk_notification(&n.msgs[i].notification);
	ews_notifications_free(&n);
	if (ews_parse_send_notification(d, size, &n, NULL) == 0)
		for (i = 0; i < n.nmsgs; i++)
			t += walk_notification(&n.msgs[i].notification);
	ews_notifications_free(&n);

	if (ews_parse_streaming(d, size, &st, &cause) == 0)
		for (i = 0; i < st.nmsgs; i++) {
			for (j = 0; j < st.msgs[i].nnotifications; j++)
				t += walk_notification(
				    &st.msgs[i].notifications[j]);
			for (j = 0; j < st.msgs[i].nerror_ids; j++)
				t += sink(st.msgs[i].error_ids[j]);
		}
	ews_streaming_free(&st);
	free(cause);

	if (ews_parse_find_item(d, size, &c, NULL) == 0)
		for (i = 0; i < c.nitems; i++)
			t += sink(c.items[i].id) + sink(c.items[i].subject) +
			    sink(c.items[i].change_key) +
			    sink(ews_fb_name(c.items[i].fb));
	ews_calendar_free(&c);

	if (ews_parse_get_item(d, size, &it, NULL) == 0)
		for (i = 0; i < it.nmsgs; i++)
			t += sink(it.msgs[i].item.id) +
			    sink(it.msgs[i].status.message);
	ews_items_free(&it);

	if (ews_parse_availability(d, size, &a, NULL) == 0)
		for (i = 0; i < a.nmailboxes; i++)
			t += sink(a.mailboxes[i].merged) +
			    a.mailboxes[i].nevents;
	ews_availability_free(&a);

	if (ews_parse_oof(d, size, &o, NULL) == 0)
		t += (size_t)o.state;
	ews_oof_free(&o);

	if (ews_parse_user_settings(d, size, &us, NULL) == 0)
		for (i = 0; i < us.nusers; i++) {
			t += sink(us.users[i].message) +
			    sink(us.users[i].redirect) +
			    sink(ad_error_name(us.users[i].error));
			for (j = 0; j < AD_SETTING_MAX; j++)
				t += sink(us.users[i].values[j]);
			key = ad_group_key(&us.users[i]);
			t += sink(key);
			free(key);
		}
	ews_user_settings_free(&us);

	(void)t;
	return (0);
}
