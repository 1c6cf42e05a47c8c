"""Counters reported by GET /stats."""
import collections
import time


class Peak:
    """A count of things open at once, its peak, how many were opened
    and the time they were open summed (busy_ms: slot x milliseconds)."""
    __slots__ = ("now", "peak", "started", "busy_s", "at")

    def __init__(self):
        self.now = 0
        self.peak = 0
        self.started = 0
        self.busy_s = 0.0
        self.at = time.monotonic()

    def _count(self):
        t = time.monotonic()
        self.busy_s += self.now * (t - self.at)
        self.at = t

    def inc(self):
        self._count()
        self.now += 1
        self.started += 1
        if self.now > self.peak:
            self.peak = self.now

    def dec(self):
        self._count()
        self.now -= 1

    def to_json(self):
        self._count()
        return {"now": self.now, "peak": self.peak, "started": self.started,
                "busy_ms": round(self.busy_s * 1000.0, 1)}


class Phases:
    """Where a short request's time goes, summed over the requests
    answered: head read -> admission (the body, SOAP parse, schema
    validation, authentication, and queueing behind other requests in
    the one thread) -> end of the simulated latency -> the answer built
    and the budget released -> the answer written out."""
    NAMES = ("arrival_to_admission", "admission_to_latency_end", "latency_end_to_release",
             "release_to_sent")
    __slots__ = ("n", "wall")

    def __init__(self):
        self.n = 0
        self.wall = [0.0] * 4

    def add(self, *marks):
        """marks: time.monotonic() at each of the five points."""
        self.n += 1
        for i in range(4):
            self.wall[i] += marks[i + 1] - marks[i]

    def to_json(self):
        out = {"requests": self.n}
        for i, name in enumerate(self.NAMES):
            out[name + "_ms"] = round(self.wall[i] * 1000.0 / self.n, 3) if self.n else None
        return out


class Stats:
    AFFINITY_KEYS = ("gse_with_anchor", "gse_without_anchor", "gse_with_cookie",
                     "gse_with_prefer_affinity", "subscribe_with_anchor",
                     "subscribe_without_anchor", "subscribe_with_cookie",
                     "subscribe_with_prefer_affinity", "unsubscribe_with_anchor",
                     "unsubscribe_with_cookie", "getevents_with_anchor", "getevents_with_cookie",
                     "gse_cookie_mismatch", "gse_misrouted", "getevents_misrouted",
                     "unsubscribe_misrouted", "affinity_no_anchor", "affinity_anchor_group",
                     "affinity_anchor_not_first", "affinity_cookie_group", "affinity_mixed_stream")

    def __init__(self):
        self.reset()

    def reset(self):
        self.requests = collections.defaultdict(collections.Counter)
        self.concurrency = collections.defaultdict(Peak)
        # Requests of each operation being processed at once (all
        # accounts): how a client spreads its concurrency over its work.
        self.in_progress = collections.defaultdict(Peak)
        self.streams = Peak()
        self.phases = Phases()
        self.per_anchor = collections.defaultdict(Peak)
        self.subs_peak = 0
        self.per_mailbox_peak = 0
        self.violations = collections.Counter()
        self.schema_invalid = 0
        self.affinity = collections.Counter({k: 0 for k in self.AFFINITY_KEYS})
        self.notifications_sent = 0
        self.backoff_in_flight = 0
        self.events_raised = 0
        self.push = collections.Counter({k: 0 for k in ("posts", "ok", "unsubscribe", "failed",
                                                        "retries", "expired", "status_events")})
        self.auth = collections.Counter()
        self.subscriptions = collections.Counter({k: 0 for k in ("created", "unsubscribed",
                                                                 "expired", "lost")})
        self.moves = collections.Counter({k: 0 for k in ("started", "completed", "refused",
                                                         "subscriptions_lost")})
        self.autodiscover = collections.Counter({k: 0 for k in ("requests", "users", "max_users",
                                                                "redirects", "invalid_users",
                                                                "exchange_online")})
        # Mailboxes moved to Exchange Online, and EWS requests refused for them.
        self.exchange_online = collections.Counter({k: 0 for k in ("migrated", "returned", "refused",
                                                                   "subscriptions_lost")})
        self.grouping = collections.Counter({k: 0 for k in ("refused_ids", "closed_by_foreign_id",
                                                            "closed_by_second_stream",
                                                            "closed_by_unsubscribe")})
        self.oof_changes = 0
        # Injected faults that took effect, by kind: requests answered
        # by them, streams dropped, subscriptions lost or marked.
        self.faults = collections.Counter()
        # Every login attempt refused (Basic credentials or an NTLM
        # AUTHENTICATE message): what a domain controller counts towards
        # an account lockout.  Times are kept to check the pacing.
        self.failed_logins = collections.Counter()
        self.failed_login_times = collections.deque(maxlen=10000)

    def rebase(self, live_concurrency, live_streams, live_anchor):
        """After a reset, keep 'now' values of things still open so counts never go negative."""
        for k, v in live_concurrency.items():
            p = self.concurrency[k]
            p.now = p.peak = v
        self.streams.now = self.streams.peak = live_streams
        for k, v in live_anchor.items():
            p = self.per_anchor[k]
            p.now = p.peak = v

    def failed_login(self, account):
        self.failed_logins[(account or "").lower()] += 1
        self.failed_login_times.append(round(time.time(), 3))

    def count(self, op, code):
        self.requests[op or "(none)"][str(code)] += 1

    def op_begin(self, op):
        self.in_progress[op].inc()

    def op_end(self, op):
        p = self.in_progress[op]
        if p.now > 0:           # not below zero after a reset
            p.dec()

    def violation(self, kind, n=1):
        self.violations[kind] += n

    def fault(self, kind, n=1):
        self.faults[kind] += n

    def to_json(self, live_total, live_per_mailbox_max):
        self.subs_peak = max(self.subs_peak, live_total)
        self.per_mailbox_peak = max(self.per_mailbox_peak, live_per_mailbox_max)
        return {
            "requests": {op: dict(c) for op, c in self.requests.items()},
            "concurrency": {k: v.to_json() for k, v in self.concurrency.items()},
            "in_progress": {k: v.to_json() for k, v in self.in_progress.items()},
            "request_phases": self.phases.to_json(),
            "streaming_connections": dict(self.streams.to_json(), per_anchor_peak={
                k: v.peak for k, v in self.per_anchor.items()}),
            "live_subscriptions": {"total": live_total, "peak": self.subs_peak,
                                   "per_mailbox_peak": self.per_mailbox_peak},
            "violations": dict(self.violations),
            "violations_total": sum(self.violations.values()),
            "faults_injected": dict(self.faults),
            "schema_invalid": self.schema_invalid,
            "affinity": dict(self.affinity),
            "notifications_sent": self.notifications_sent,
            "backoff_in_flight": self.backoff_in_flight,
            "events_raised": self.events_raised,
            "push": dict(self.push),
            "auth": dict(self.auth),
            "subscriptions": dict(self.subscriptions),
            "moves": dict(self.moves),
            "autodiscover": dict(self.autodiscover),
            "exchange_online": dict(self.exchange_online),
            "grouping": dict(self.grouping),
            "oof_changes": self.oof_changes,
            "failed_logins": {"total": sum(self.failed_logins.values()),
                              "by_account": dict(self.failed_logins),
                              "times": list(self.failed_login_times)},
        }
