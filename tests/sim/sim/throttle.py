"""Exchange throttling rules: who is charged, limits, back-off tracking.

charging "service-account" (Exchange 2007 SP1, 2010 RTM/SP1): every request of the
  service account, including each open GetStreamingEvents for its whole life, counts
  against max_concurrency; live subscriptions count per account.
charging "impersonated" (2010 SP2 RU4+, 2013, 2016, Online): non-streaming requests
  count against the account's max_concurrency; a GetStreamingEvents counts against
  hanging_connection_limit of (account, impersonated mailbox) or of the account when
  not impersonated; subscriptions count per target mailbox.
"""
import time


class Refusal(Exception):
    def __init__(self, code, kind, backoff_ms=None):
        super().__init__(code)
        self.code = code
        self.kind = kind
        self.backoff_ms = backoff_ms


class Budget:
    """Token returned by acquire(); release() exactly once."""
    __slots__ = ("throttle", "key", "stream_key", "released")

    def release(self):
        if self.released:
            return
        self.released = True
        th = self.throttle
        if self.key is not None:
            th.stats.concurrency[self.key].dec()
        if self.stream_key is not None:
            th.hanging[self.stream_key] = th.hanging.get(self.stream_key, 1) - 1
            th.stats.per_anchor[self._anchor_label()].dec()
            th.stats.streams.dec()

    def _anchor_label(self):
        acct, anchor = self.stream_key
        return acct if anchor is None else "%s/%s" % (acct, anchor)


class Throttle:
    def __init__(self, config, stats):
        self.config = config
        self.stats = stats
        self.hanging = {}          # (account, anchor|None) -> open GetStreamingEvents
        self.backoff_until = {}    # account -> monotonic deadline

    # A client cannot take back requests it sent before it read the
    # ErrorServerBusy answer: up to max_concurrency arrivals within this
    # many seconds of the answer are refused again but not held against
    # it (counted as "backoff_in_flight").  Anything more is a violation.
    IN_FLIGHT_GRACE_S = 0.5

    def budget_key(self, account, streaming, impersonated):
        """The budget a request is charged to: under impersonated
        charging a GetStreamingEvents draws on the account's copy of the
        impersonated mailbox's budget, everything else on the account."""
        if streaming and self.config.charging == "impersonated":
            return (account, impersonated)
        return account

    def check_backoff(self, account):
        entry = self.backoff_until.get(account)
        if entry is None:
            return
        until, issued, tolerated = entry
        now = time.monotonic()
        if now < until:
            if now - issued <= self.IN_FLIGHT_GRACE_S and \
                    tolerated < self.config.max_concurrency:
                entry[2] += 1
                self.stats.backoff_in_flight += 1
            else:
                self.stats.violation("backoff_ignored")
            raise Refusal("ErrorServerBusy", None, int((until - now) * 1000) + 1)
        del self.backoff_until[account]

    def note_backoff(self, account, ms):
        """account: a budget_key()."""
        now = time.monotonic()
        self.backoff_until[account] = [now + ms / 1000.0, now, 0]

    def acquire(self, account, streaming, impersonated):
        cfg = self.config
        b = Budget()
        b.throttle = self
        b.key = None
        b.stream_key = None
        b.released = False
        conc = self.stats.concurrency[account]
        charge_conc = not streaming or cfg.charging == "service-account"
        skey = None
        if streaming:
            skey = (account, impersonated if cfg.charging == "impersonated" else None)
        if charge_conc and conc.now >= cfg.max_concurrency:
            self.stats.violation("concurrency")
            if streaming:
                raise Refusal("ErrorExceededConnectionCount", "concurrency")
            raise Refusal("ErrorServerBusy", "concurrency", cfg.backoff_ms)
        if streaming and cfg.charging == "impersonated" and \
                self.hanging.get(skey, 0) >= cfg.hanging_connection_limit:
            self.stats.violation("hanging_connections")
            raise Refusal("ErrorExceededConnectionCount", "hanging_connections")
        if charge_conc:
            conc.inc()
            b.key = account
        if streaming:
            self.hanging[skey] = self.hanging.get(skey, 0) + 1
            b.stream_key = skey
            self.stats.per_anchor[b._anchor_label()].inc()
            self.stats.streams.inc()
        return b

    def subscription_key(self, account, mailbox_smtp):
        return ("mbx", mailbox_smtp) if self.config.charging == "impersonated" else ("acct", account)

    def live_hanging(self):
        out = {}
        for (acct, anchor), n in self.hanging.items():
            if n:
                out[acct if anchor is None else "%s/%s" % (acct, anchor)] = n
        return out
