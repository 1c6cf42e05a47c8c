"""GetStreamingEvents connections: one chunked HTTP response carrying SOAP
envelopes back to back (notifications, ConnectionStatus OK heartbeats, errors,
and ConnectionStatus Closed when ConnectionTimeout elapses)."""
import asyncio
import logging
import time

from .soap import m

log = logging.getLogger("ewssim.stream")


class StreamConn:
    def __init__(self, mgr, ctx, subs, timeout_s):
        self.mgr = mgr
        self.sim = mgr.sim
        self.ctx = ctx
        self.conn = ctx.req.conn
        self.account = ctx.account.username
        self.subs = {s.id: s for s in subs}
        self.wake = asyncio.Event()
        self.pending_errors = []      # (code, [ids], text)
        self.deadline = time.monotonic() + timeout_s
        self.aborted = False
        self.anchor = ctx.req.header("x-anchormailbox")
        self.impersonated = ctx.impersonated.smtp if ctx.impersonated is not None else None
        self.opened = time.time()
        self.closing = False          # close the whole stream after pending errors
        self.envelopes = 0

    def to_json(self):
        return {"connection": self.conn.id, "account": self.account, "impersonated": self.impersonated,
                "anchor": self.anchor, "subscription_ids": list(self.subs),
                "opened": self.opened, "closes_in_s": max(0.0, self.deadline - time.monotonic())}

    # called by the notifier
    def lost(self, sub, code):
        self.subs.pop(sub.id, None)
        if code:
            self.pending_errors.append((code, [sub.id], "The subscription is no longer valid."))
        self.wake.set()

    def moved(self, sub):
        self.subs.pop(sub.id, None)
        self.pending_errors.append(("ErrorNewEventStreamConnectionOpened", [sub.id],
                                    "A new event stream connection was opened for this subscription."))
        if self.sim.config.profile("refuse-grouping"):
            # such a server ends the whole first stream
            self.sim.stats.grouping["closed_by_second_stream"] += 1
            self.closing = True
        self.wake.set()

    def close_all(self):
        """End the stream with ConnectionStatus Closed; its subscriptions stay valid."""
        self.closing = True
        self.wake.set()

    def abort(self):
        self.aborted = True
        self.conn.abort()
        self.wake.set()

    def _message(self, code="NoError", text=None, kids=()):
        from .ews import rm, wrap
        return wrap("GetStreamingEvents", [rm("GetStreamingEventsResponseMessage", code, text, kids)])

    async def _closed(self):
        """ConnectionStatus Closed, then the body ends (a realserver says it twice)."""
        closed = [m("ConnectionStatus", text="Closed")]
        await self._send(self._message(kids=self._all_notes([]) + closed))
        if self.sim.config.profile("realserver"):
            await self._send(self._message(kids=closed))
        await self.conn.end_chunked()

    def _all_notes(self, notes):
        """realserver: every envelope carries a notification for every subscription
        of the stream (a StatusEvent for those without events)."""
        if not self.sim.config.profile("realserver"):
            return [m("Notifications", kids=notes)] if notes else []
        have = {n.kids[0].text for n in notes}
        extra = [self.sim.notifier.notification_el(sub, False, [])
                 for sid, sub in self.subs.items() if sid not in have]
        out = notes + extra
        return [m("Notifications", kids=out)] if out else []

    async def run(self):
        sim = self.sim
        notifier = sim.notifier
        eof = asyncio.ensure_future(self.conn.wait_eof())
        hb = sim.config.heartbeat_s
        # a realserver sends its status envelope at a fixed cadence, whatever flows between
        fixed = sim.config.profile("realserver")
        next_hb = time.monotonic() + hb
        try:
            await self.conn.start_chunked(200, [("Content-Type", sim.content_type()),
                                                ("Cache-Control", "private")])
            trickle = sim.faults.take("trickle_comment", "GetStreamingEvents", self.account)
            if trickle is not None:
                await self._trickle(trickle, eof)
                return
            while not self.aborted:
                now = time.monotonic()
                wait = min(self.deadline, next_hb) - now
                if self.closing and not self.pending_errors:
                    await self._closed()
                    return
                if wait > 0 and not self.pending_errors and not self._has_events():
                    self.wake.clear()
                    waiter = asyncio.ensure_future(self.wake.wait())
                    done, _ = await asyncio.wait({waiter, eof}, timeout=wait,
                                                 return_when=asyncio.FIRST_COMPLETED)
                    if not waiter.done():
                        waiter.cancel()
                    if eof in done:
                        return
                    continue
                if self.aborted:
                    return
                sent = False
                # errors first (lost subscriptions, second connection, missed events)
                for sub in list(self.subs.values()):
                    if sub.missed:
                        self.subs.pop(sub.id, None)
                        sub.stream = None
                        notifier.remove(sub, "missed events")
                        self.pending_errors.append(("ErrorMissedNotificationEvents", [sub.id],
                                                    "Events were lost for this subscription."))
                while self.pending_errors:
                    code, ids, text = self.pending_errors.pop(0)
                    kids = [m("ErrorSubscriptionIds", kids=[m("SubscriptionId", text=i) for i in ids])]
                    closing = not self.subs or (self.closing and not self.pending_errors)
                    if closing:
                        kids.append(m("ConnectionStatus", text="Closed"))
                    await self._send(self._message(code, text, kids))
                    sent = True
                    if closing:
                        if sim.config.profile("realserver"):
                            await self._send(self._message(kids=[m("ConnectionStatus", text="Closed")]))
                        await self.conn.end_chunked()
                        return
                notes = []
                taken = []
                for sub in self.subs.values():
                    if sub.queue:
                        evs = notifier.take_events(sub)
                        notes.append(notifier.notification_el(sub, False, evs))
                        taken.append((sub, evs))
                if notes:
                    await self._send(self._message(kids=self._all_notes(notes)))
                    for sub, evs in taken:
                        notifier.commit_events(sub, evs)
                    sim.stats.notifications_sent += len(notes)
                    sent = True
                now = time.monotonic()
                if now >= self.deadline:
                    await self._closed()
                    return
                if sent and not fixed:
                    next_hb = now + hb
                elif now >= next_hb:
                    await self._send(self._message(kids=self._all_notes([]) + [
                        m("ConnectionStatus", text="OK")]))
                    next_hb = now + hb
        except (ConnectionError, OSError):
            self.conn.must_close = True
        finally:
            eof.cancel()

    async def _trickle(self, fault, eof):
        """A dead server's stream that still moves bytes: one comment that
        never ends, a byte every delay_ms, and never a whole envelope."""
        delay = fault.spec.get("delay_ms", 100) / 1000.0
        await self.conn.write_chunk(b"<!--")
        while not self.aborted and not eof.done():
            await asyncio.wait({eof}, timeout=delay)
            if not eof.done():
                await self.conn.write_chunk(b"-")

    def _has_events(self):
        return any(s.queue or s.missed for s in self.subs.values())

    async def _send(self, body_el):
        data = self.sim.render_stream_envelope(body_el, self.account)
        if self.envelopes == 0 and self.sim.config.profile("realserver"):
            # the only XML declaration of the body, in front of the first envelope
            data = b'<?xml version="1.0" encoding="utf-8"?>\r\n' + data
        self.envelopes += 1
        await self.sim.write_stream(self, data)


class StreamManager:
    def __init__(self, sim):
        self.sim = sim
        self.conns = set()

    async def serve(self, ctx, subs, timeout_s):
        sc = StreamConn(self, ctx, subs, timeout_s)
        for sub in subs:
            prev = sub.stream
            if prev is not None and prev is not sc:
                if prev.conn.peer_closed():
                    # the client closed it first: a reconnect, not a second
                    # connection; the old one ends when its coroutine runs
                    prev.subs.pop(sub.id, None)
                else:
                    self.sim.stats.violation("subscription_on_two_connections")
                    prev.moved(sub)
            sub.stream = sc
        self.conns.add(sc)
        self.sim.notifier.streams.add(sc)
        try:
            await sc.run()
        finally:
            self.conns.discard(sc)
            self.sim.notifier.streams.discard(sc)
            now = time.monotonic()
            for sub in list(sc.subs.values()):
                if sub.stream is sc:
                    sub.stream = None
                    sub.detached_since = now
            sc.conn.must_close = sc.conn.must_close or sc.aborted
