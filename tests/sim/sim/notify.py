"""Subscriptions, event queues, streaming connections and push delivery."""
import asyncio
import base64
import collections
import itertools
import logging
import os
import ssl
import time
import urllib.parse

from . import calendar as cal
from . import soap
from .soap import M, m, t

log = logging.getLogger("ewssim.notify")

EVENT_TYPES = ("CopiedEvent", "CreatedEvent", "DeletedEvent", "ModifiedEvent", "MovedEvent",
               "NewMailEvent", "FreeBusyChangedEvent")
MAX_EVENTS_PER_NOTIFICATION = 50


class Event:
    __slots__ = ("type", "ts", "is_folder", "id", "changekey", "parent", "watermark")


class Subscription:
    __slots__ = ("id", "kind", "account", "mailbox", "folders", "event_types", "queue", "seq",
                 "created", "last_active", "anchor", "timeout_s", "status_frequency_s", "url",
                 "stream", "detached_since", "missed", "alive", "push_task", "wake", "watermark",
                 "limit_key", "backend", "delegate")

    def to_json(self):
        return {"id": self.id, "mailbox": self.mailbox.smtp, "kind": self.kind,
                "account": self.account, "anchor": self.anchor, "backend": self.backend,
                "delegate": self.delegate,
                "queued": len(self.queue),
                "connected": self.stream is not None,
                "folders": sorted(self.folders) if self.folders is not None else "all",
                "event_types": sorted(self.event_types),
                "url": self.url if self.kind == "push" else None}


def watermark_for(sub_id, seq):
    return base64.b64encode(("wm:%s:%d" % (sub_id[-12:], seq)).encode()).decode()


class Notifier:
    _sub_counter = itertools.count(1)

    def __init__(self, sim):
        self.sim = sim
        self.subs = {}
        self.by_mailbox = collections.defaultdict(set)
        self.per_limit_key = collections.Counter()
        self.streams = set()
        self.per_mailbox_max = 0

    # ------------------------------------------------------------ subscriptions
    def create(self, kind, account, mailbox, folders, event_types, anchor, limit_key, backend,
               timeout_s=None, status_frequency_s=None, url=None, delegate=False):
        s = Subscription()
        raw = b"sim" + os.urandom(24) + next(self._sub_counter).to_bytes(4, "big")
        s.id = base64.b64encode(b"\x1c\x00" + backend.encode()[:20] + raw).decode()
        s.kind = kind
        s.account = account
        s.mailbox = mailbox
        s.folders = folders
        s.event_types = event_types
        s.queue = collections.deque()
        s.seq = 0
        s.created = s.last_active = time.monotonic()
        s.anchor = anchor
        s.timeout_s = timeout_s
        s.status_frequency_s = status_frequency_s
        s.url = url
        s.stream = None
        s.detached_since = time.monotonic()
        s.missed = False
        s.alive = True
        s.push_task = None
        s.wake = None
        s.limit_key = limit_key
        s.backend = backend
        s.delegate = delegate      # created without impersonation (owned by the account)
        s.watermark = watermark_for(s.id, 0)
        self.subs[s.id] = s
        self.sim.stats.subscriptions["created"] += 1
        mailbox.subs_created += 1
        self.by_mailbox[mailbox.smtp].add(s.id)
        self.per_limit_key[limit_key] += 1
        n = len(self.by_mailbox[mailbox.smtp])
        if n > self.per_mailbox_max:
            self.per_mailbox_max = n
        st = self.sim.stats
        st.subs_peak = max(st.subs_peak, len(self.subs))
        st.per_mailbox_peak = max(st.per_mailbox_peak, n)
        if kind == "push":
            s.wake = asyncio.Event()
            s.push_task = asyncio.ensure_future(self._push_loop(s))
        return s

    def count_for(self, limit_key):
        return self.per_limit_key.get(limit_key, 0)

    def remove(self, sub, reason="", notify_stream_code=None, why="lost"):
        """End a subscription; why: unsubscribed, expired or lost (counted)."""
        if not sub.alive:
            return
        sub.alive = False
        self.sim.stats.subscriptions[why] += 1
        self.subs.pop(sub.id, None)
        ids = self.by_mailbox.get(sub.mailbox.smtp)
        if ids is not None:
            ids.discard(sub.id)
            if not ids:
                del self.by_mailbox[sub.mailbox.smtp]
        self.per_limit_key[sub.limit_key] -= 1
        if self.per_limit_key[sub.limit_key] <= 0:
            del self.per_limit_key[sub.limit_key]
        if sub.stream is not None:
            stream = sub.stream
            sub.stream = None
            stream.lost(sub, notify_stream_code)
        if sub.push_task is not None and sub.push_task is not asyncio.current_task():
            sub.push_task.cancel()
        log.debug("subscription %s removed: %s", sub.id, reason)

    def live_per_mailbox_max(self):
        return max((len(v) for v in self.by_mailbox.values()), default=0)

    def restart(self):
        for sub in list(self.subs.values()):
            self.remove(sub, "restart")
        for st in list(self.streams):
            st.abort()

    # ------------------------------------------------------------ events
    def raise_item_event(self, mailbox, etype, item_id_, changekey):
        """Item Created/Modified/Deleted in the calendar, as Exchange reports it."""
        cal_id = cal.folder_id(mailbox.smtp, "calendar")
        root_id = cal.folder_id(mailbox.smtp, "msgfolderroot")
        folder_ck = cal.changekey(int(time.time()) % 100000000)
        events = [(etype, False, item_id_, changekey, cal_id),
                  ("ModifiedEvent", True, cal_id, folder_ck, root_id),
                  ("FreeBusyChangedEvent", False, item_id_, changekey, cal_id)]
        now = time.time()
        delivered = 0
        for sid in list(self.by_mailbox.get(mailbox.smtp, ())):
            sub = self.subs.get(sid)
            if sub is None:
                continue
            if sub.folders is not None and "calendar" not in sub.folders and \
                    "msgfolderroot" not in sub.folders:
                continue
            added = False
            for typ, is_folder, oid, ck, parent in events:
                if typ not in sub.event_types:
                    continue
                ev = Event()
                ev.type = typ
                ev.ts = now
                ev.is_folder = is_folder
                ev.id = oid
                ev.changekey = ck
                ev.parent = parent
                sub.seq += 1
                ev.watermark = watermark_for(sub.id, sub.seq)
                sub.queue.append(ev)
                added = True
                delivered += 1
            if added:
                self._wake(sub)
        self.sim.stats.events_raised += delivered
        return delivered

    def _wake(self, sub):
        if sub.stream is not None:
            sub.stream.wake.set()
        if sub.wake is not None:
            sub.wake.set()

    def mark_missed(self, sub):
        sub.missed = True
        self._wake(sub)

    # ------------------------------------------------------------ notification XML
    def notification_el(self, sub, with_watermarks, events):
        real = self.sim.config.profile("realserver")
        with_watermarks = with_watermarks and not real  # a realserver sends none at all
        n = m("Notification")
        n.append(t("SubscriptionId", text=sub.id))
        if with_watermarks:
            n.append(t("PreviousWatermark", text=sub.watermark))
        more = len(sub.queue) > len(events)
        n.append(t("MoreEvents", text="true" if more else "false"))
        if not events:
            se = n.append(t("StatusEvent"))
            if with_watermarks:
                se.append(t("Watermark", text=sub.watermark))
            return n
        for ev in events:
            e = n.append(t(ev.type))
            if with_watermarks:
                e.append(t("Watermark", text=ev.watermark))
            e.append(t("TimeStamp", text=cal.iso9(ev.ts) if real else cal.iso(ev.ts)))
            e.append(t("FolderId" if ev.is_folder else "ItemId",
                       {"Id": ev.id, "ChangeKey": ev.changekey}))
            e.append(t("ParentFolderId", {"Id": ev.parent,
                                          "ChangeKey": "AQAAAA=="}))
        return n

    def take_events(self, sub):
        evs = list(itertools.islice(sub.queue, 0, MAX_EVENTS_PER_NOTIFICATION))
        return evs

    def commit_events(self, sub, evs):
        for _ in evs:
            sub.queue.popleft()
        if evs:
            sub.watermark = evs[-1].watermark

    # ------------------------------------------------------------ expiry
    async def reaper(self):
        while True:
            await asyncio.sleep(max(0.05, min(1.0, self.sim.config.minute_seconds / 10.0)))
            try:
                self.expire_once()
            except Exception:  # noqa: BLE001
                log.exception("reaper failed")

    def expire_once(self):
        now = time.monotonic()
        minute = self.sim.config.minute_seconds
        for sub in list(self.subs.values()):
            if sub.kind == "streaming":
                if sub.stream is None and now - sub.detached_since > 30 * minute:
                    self.remove(sub, "streaming subscription without connection for 30 minutes",
                                why="expired")
            elif sub.kind == "pull":
                if now - sub.last_active > sub.timeout_s:
                    self.remove(sub, "pull timeout", why="expired")

    # ------------------------------------------------------------ push
    async def _push_loop(self, sub):
        sim = self.sim
        stats = sim.stats
        send_status = True  # Exchange notifies right after Subscribe
        try:
            while sub.alive:
                if not sub.queue and not sub.missed and not send_status:
                    sub.wake.clear()
                    try:
                        await asyncio.wait_for(sub.wake.wait(), sub.status_frequency_s)
                    except asyncio.TimeoutError:
                        send_status = True
                    continue
                evs = self.take_events(sub)
                body = self._send_notification_body(sub, evs)
                result = await self._post(sub, body)
                delay = 30 * sim.config.minute_seconds / 60.0
                while result == "failed":
                    if delay > sub.status_frequency_s:
                        stats.push["expired"] += 1
                        self.remove(sub, "push target did not answer", why="expired")
                        return
                    await asyncio.sleep(delay)
                    stats.push["retries"] += 1
                    result = await self._post(sub, body)
                    delay *= 2
                if result == "Unsubscribe":
                    stats.push["unsubscribe"] += 1
                    self.remove(sub, "push target answered Unsubscribe", why="unsubscribed")
                    return
                if sub.missed:
                    self.remove(sub, "missed events reported")
                    return
                if not evs:
                    stats.push["status_events"] += 1
                self.commit_events(sub, evs)
                stats.notifications_sent += 1
                send_status = False
        except asyncio.CancelledError:
            pass

    def _send_notification_body(self, sub, evs):
        sim = self.sim
        msg = m("SendNotificationResponseMessage")
        if sub.missed:
            msg.attrs = {"ResponseClass": "Error"}
            msg.append(m("MessageText", text="Events were lost; the subscription is no longer valid."))
            msg.append(m("ResponseCode", text="ErrorMissedNotificationEvents"))
            msg.append(m("DescriptiveLinkKey", text="0"))
        else:
            msg.attrs = {"ResponseClass": "Success"}
            msg.append(m("ResponseCode", text="NoError"))
        msg.append(self.notification_el(sub, True, evs))
        body = m("SendNotification", kids=[m("ResponseMessages", kids=[msg])])
        env = soap.El(soap.SOAP, "Envelope")
        hdr = env.add(soap.SOAP, "Header")
        hdr.append(t("RequestServerVersion", {"Version": sim.config.request_version_name()}))
        env.add(soap.SOAP, "Body").append(body)
        return sim.render(env)

    async def _post(self, sub, body):
        stats = self.sim.stats
        stats.push["posts"] += 1
        try:
            status, resp = await asyncio.wait_for(http_post(sub.url, body),
                                                  self.sim.config.push_timeout_s)
        except (OSError, asyncio.TimeoutError, ValueError, ssl.SSLError, asyncio.IncompleteReadError) as exc:
            log.debug("push to %s failed: %s", sub.url, exc)
            stats.push["failed"] += 1
            return "failed"
        if status != 200:
            stats.push["failed"] += 1
            return "failed"
        try:
            root = soap.parse(resp)
            st = None
            for el in root.iter("{%s}SubscriptionStatus" % M):
                st = (el.text or "").strip()
        except soap.BadRequest:
            st = None
        if st == "OK":
            stats.push["ok"] += 1
            return "OK"
        if st == "Unsubscribe":
            return "Unsubscribe"
        stats.push["failed"] += 1
        return "failed"


_NOVERIFY = None


def _noverify_ctx():
    global _NOVERIFY
    if _NOVERIFY is None:
        ctx = ssl.create_default_context()
        ctx.check_hostname = False
        ctx.verify_mode = ssl.CERT_NONE
        _NOVERIFY = ctx
    return _NOVERIFY


async def http_post(url, body, max_response=1024 * 1024):
    """Minimal HTTP/1.1 POST (one connection per request); certificates are not verified."""
    u = urllib.parse.urlsplit(url)
    if u.scheme not in ("http", "https") or not u.hostname:
        raise ValueError("unsupported push URL")
    port = u.port or (443 if u.scheme == "https" else 80)
    reader, writer = await asyncio.open_connection(
        u.hostname, port, ssl=_noverify_ctx() if u.scheme == "https" else None)
    try:
        path = (u.path or "/") + ("?" + u.query if u.query else "")
        head = ("POST %s HTTP/1.1\r\nHost: %s\r\nContent-Type: text/xml; charset=utf-8\r\n"
                "SOAPAction: \"http://schemas.microsoft.com/exchange/services/2006/messages/SendNotification\"\r\n"
                "User-Agent: ExchangeServicesClient/15.01.2507.006\r\n"
                "Content-Length: %d\r\nConnection: close\r\n\r\n" % (path, u.netloc, len(body)))
        writer.write(head.encode("latin-1") + body)
        await writer.drain()
        status_line = await reader.readuntil(b"\r\n")
        parts = status_line.decode("latin-1").split(" ", 2)
        status = int(parts[1])
        headers = {}
        while True:
            line = await reader.readuntil(b"\r\n")
            if line == b"\r\n":
                break
            k, _, v = line.decode("latin-1").partition(":")
            headers[k.strip().lower()] = v.strip()
        if headers.get("transfer-encoding", "").lower() == "chunked":
            data = b""
            while True:
                size = int((await reader.readuntil(b"\r\n")).split(b";")[0], 16)
                if size == 0:
                    break
                data += await reader.readexactly(size)
                await reader.readexactly(2)
                if len(data) > max_response:
                    raise ValueError("response too large")
        elif "content-length" in headers:
            n = int(headers["content-length"])
            if n > max_response:
                raise ValueError("response too large")
            data = await reader.readexactly(n)
        else:
            data = await reader.read(max_response)
        return status, data
    finally:
        writer.close()
