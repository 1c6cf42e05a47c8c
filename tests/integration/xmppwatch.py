"""A test XMPP user that watches presence, for the xmpp sink's tests.

slixmpp (python3-slixmpp) logs in to the test Prosody in a thread with
its own asyncio loop, subscribes to JIDs and records every presence
stanza it receives from them: type (available, unavailable,
subscribed, ...), show and status.
"""
import asyncio
import threading

from ewsgwtest import wait_for


class XmppWatcher:
    """One logged-in user; use as a context manager."""

    def __init__(self, jid, password, port, host="127.0.0.1"):
        try:
            import slixmpp
        except ImportError:
            import unittest
            raise unittest.SkipTest("slixmpp is not installed "
                                    "(apt-get install python3-slixmpp)")
        self.slixmpp = slixmpp
        self.jid = jid
        self.password = password
        self.addr = (host, port)
        self.lock = threading.Lock()
        self.seen = {}		# bare JID -> [(type, show, status), ...]
        self.online = threading.Event()
        self.failed = None
        self.loop = asyncio.new_event_loop()
        self.thread = threading.Thread(target=self._run, daemon=True)
        self.client = None

    def _run(self):
        asyncio.set_event_loop(self.loop)
        c = self.slixmpp.ClientXMPP(self.jid, self.password)
        c.add_event_handler("session_start", self._start)
        c.add_event_handler("presence", self._presence)
        c.add_event_handler("failed_auth", self._failed)
        c.add_event_handler("disconnected", self._disconnected)
        self.client = c
        c.connect(address=self.addr, disable_starttls=True,
                  force_starttls=False)
        self.loop.run_forever()

    async def _start(self, event):
        self.client.send_presence()
        await self.client.get_roster()
        self.online.set()

    def _failed(self, event):
        self.failed = "authentication failed"

    def _disconnected(self, event):
        self.online.clear()

    def _presence(self, p):
        t = p["type"]
        if t in ("dnd", "away", "xa", "chat"):
            t = "available"
        with self.lock:
            self.seen.setdefault(p["from"].bare, []).append(
                (t, p["show"] or None, p["status"] or None))

    def __enter__(self):
        self.thread.start()
        if not self.online.wait(30):
            self.close()
            raise AssertionError("test user %s could not log in: %s"
                                 % (self.jid, self.failed))
        return self

    def __exit__(self, *exc):
        self.close()
        return False

    async def _shutdown(self):
        self.client.disconnect()
        try:
            await asyncio.wait_for(self.client.disconnected, 5)
        except (asyncio.TimeoutError, TypeError):
            pass
        me = asyncio.current_task()
        for t in asyncio.all_tasks():
            if t is not me:
                t.cancel()

    def close(self):
        if self.client is not None and self.thread.is_alive():
            try:
                asyncio.run_coroutine_threadsafe(self._shutdown(),
                                                 self.loop).result(10)
            except Exception:
                pass
        self.loop.call_soon_threadsafe(self.loop.stop)
        self.thread.join(5)

    def reconnect(self, timeout=30):
        """Log in again (after the server restarted)."""
        self.online.clear()
        self.loop.call_soon_threadsafe(
            lambda: self.client.connect(address=self.addr,
                                        disable_starttls=True,
                                        force_starttls=False))
        if not self.online.wait(timeout):
            raise AssertionError("test user %s could not log in again"
                                 % self.jid)

    def relogin(self, timeout=30):
        """Log out and in again: the server probes every contact the
        user subscribed to, and their answers arrive as presence."""
        async def out():
            gone = asyncio.ensure_future(
                self.client.wait_until("disconnected", 10))
            self.client.disconnect()
            await gone
        asyncio.run_coroutine_threadsafe(out(), self.loop).result(15)
        self.reconnect(timeout)

    def subscribe(self, jid):
        self.loop.call_soon_threadsafe(
            lambda: self.client.send_presence(pto=jid, ptype="subscribe"))

    def presences(self, jid):
        with self.lock:
            return list(self.seen.get(jid, []))

    def wait_presence(self, jid, pred, timeout=30, what=None, after=0):
        """Wait until the latest presence from jid, of those after the
        first after ones, satisfies pred."""
        def latest():
            ps = [p for p in self.presences(jid)[after:] if p[0] in
                  ("available", "unavailable")]
            return ps[-1] if ps and pred(ps[-1]) else None
        return wait_for(latest, timeout, what or "presence of %s" % jid,
                        interval=0.1)
