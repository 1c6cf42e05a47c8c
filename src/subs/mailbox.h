/*
 * ewsgw - Exchange calendar presence gateway
 * SPDX-License-Identifier: ISC
 *
 * One watched mailbox: its state machine (subscribe, sync, stream / push
 * / poll, back off, park), its calendar timeline and its presence.  Every
 * state change goes through mailbox_set_state().  Kept small: 100,000 of
 * these live in one daemon.
 */
#ifndef EWSGW_MAILBOX_H
#define EWSGW_MAILBOX_H

#include <stdbool.h>
#include <stdint.h>

#include "io/ews.h"
#include "presence/presence.h"
#include "presence/timeline.h"
#include "base/timerheap.h"

struct calpages;
struct group;
struct json_writer;
struct manager;
struct ews_event;
struct ews_fb_event;

enum mailbox_state {
	MAILBOX_IDLE,		/* not started yet */
	MAILBOX_SUBSCRIBING,	/* Subscribe queued or in flight */
	MAILBOX_SYNCING,	/* subscribed; first calendar read running */
	MAILBOX_STREAMING,	/* subscribed, events come on its group */
	MAILBOX_PUSH,		/* push subscription live */
	MAILBOX_POLLING,	/* free/busy polled in batches */
	MAILBOX_BACKOFF,	/* waiting until retry_at */
	MAILBOX_PARKED,		/* Exchange refuses it; retried rarely */
	MAILBOX_UNSUBSCRIBING,	/* releasing its subscription */
	MAILBOX_STOPPED,	/* released; nothing more to do */
	MAILBOX_STATE_MAX
};

enum mailbox_mode {
	MAILBOX_MODE_STREAMING,
	MAILBOX_MODE_PUSH,
	MAILBOX_MODE_POLL,
	MAILBOX_MODE_MAX
};

/* Why a mailbox is in the mode it is in. */
enum mailbox_reason {
	MAILBOX_WHY_CONFIG,		/* [exchange] mode */
	MAILBOX_WHY_SUBSCRIPTIONS,	/* over max_subscriptions */
	MAILBOX_WHY_CONNECTIONS,	/* no streaming connection budget */
	MAILBOX_WHY_REFUSED,		/* Exchange refused the subscription */
	MAILBOX_WHY_MAX
};

struct mailbox {
	char			*address;	/* owned, lower case */
	char			*imp_id;	/* UPN or SID, or NULL */
	struct manager		*mgr;
	struct group		*group;		/* streaming group or NULL */
	char			*sub_id;	/* owned, or NULL */
	char			*watermark;	/* push only; owned or NULL */
	const char		*last_error;	/* ResponseCode; static or
						   interned in ews counts */
	char			 error_code[64];

	struct ews_call		 sub_call;	/* Subscribe / Unsubscribe */
	struct ews_call		 read_call;	/* FindItem / GetUserOofSettings */

	struct calpages		*pages;		/* a CalendarView in pages */
	struct timeline		 tl;
	struct presence_oof	 oof;
	struct presence		 pres;
	uint64_t		 seq;		/* publications (a count; the
						   changes' seq comes from
						   sinkset_next_seq) */

	struct timerheap_entry	 boundary;	/* next presence change */
	struct timerheap_entry	 action;	/* next of the *_at below */
	int64_t			 retry_at;	/* mono ms, 0 = none */
	int64_t			 sync_at;
	int64_t			 resync_at;
	int64_t			 push_deadline;
	int64_t			 last_event_ms;	/* mono */

	uint8_t			 state;
	uint8_t			 mode;
	uint8_t			 reason;
	uint8_t			 idtype;
	uint8_t			 failures;	/* consecutive, for back-off */
	uint8_t			 read_step;	/* 0 FindItem, 1 OOF */
	bool			 has_presence;	/* published at least once */
	bool			 dirty;		/* sync again after this one */
	bool			 have_sub_budget; /* counted in throttle */
	bool			 removed;	/* gone from the config */
	bool			 on_stream;	/* its id is on the open stream */
	const char		*sync_source;	/* why the running sync runs */
};

/* Allocated, caller frees with mailbox_free. */
struct mailbox	*mailbox_new(struct manager *, const char *address,
		    int idtype, const char *imp_id);
void		 mailbox_free(struct mailbox *);
void		 mailbox_start(struct mailbox *);
/* Change mode (streaming/push/poll); restarts the mailbox if needed. */
void		 mailbox_set_mode(struct mailbox *, enum mailbox_mode,
		    enum mailbox_reason);
/* Calendar events arrived for its subscription. */
void		 mailbox_events(struct mailbox *, const struct ews_event *,
		    size_t);
/* Exchange says the subscription is gone (or lost events). */
void		 mailbox_subscription_lost(struct mailbox *, const char *code,
		    bool missed_events);
/* Read the calendar now (control "resync", reload). */
void		 mailbox_resync(struct mailbox *, const char *source);
/* Free/busy from a poll: replaces the timeline. */
void		 mailbox_poll_result(struct mailbox *,
		    const struct ews_fb_event *, size_t, const char *code);
/* Unsubscribe (streaming) and stop; calls back through the manager. */
void		 mailbox_stop(struct mailbox *);
/* Timer callbacks (wired by the manager). */
void		 mailbox_boundary_due(struct mailbox *);
void		 mailbox_action_due(struct mailbox *);

const char	*mailbox_state_name(enum mailbox_state);
const char	*mailbox_mode_name(enum mailbox_mode);
const char	*mailbox_reason_name(enum mailbox_reason);
void		 mailbox_json(const struct mailbox *, struct json_writer *,
		    bool detail);

#endif
