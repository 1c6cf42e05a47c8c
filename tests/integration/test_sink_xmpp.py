"""The xmpp sink against a real XMPP server.

Prosody runs on loopback with external components; the daemon connects
as a component over plain TCP and over verified TLS, and a test user
(slixmpp) subscribes to the JIDs of watched mailboxes and must see
their presence follow the calendar: a meeting -> <show>dnd</show>, its
end -> available, automatic replies -> xa.  Prosody is then restarted:
the sink reconnects with back-off, changes made meanwhile arrive, and
the user, logging in again, gets the current presence (the component
answers the probes).  The subscriptions survive a restart of the daemon
through the subscribers file.  A wrong secret and an untrusted
certificate must fail, and be seen failing.  A reload that changes the
sink's section keeps the presence its probes are answered with.
"""
import os
import re
import signal
import sys
import time
import unittest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from ewsgwsim import GatewayRun, generated, iso  # noqa: E402
from ewsgwtest import wait_for  # noqa: E402
from presence_servers import Prosody, require_sink  # noqa: E402
from xmppwatch import XmppWatcher  # noqa: E402

AVAILABLE = ("available", None, "Available")
MEETING = ("available", "dnd", "In a meeting")
OOF = ("available", "xa", "Out of office")


def private_file(directory, name, text):
    """A file only its owner may read (as secrets must be); its path."""
    path = os.path.join(directory, name)
    with open(os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600),
              "w") as f:
        f.write(text + "\n")
    return path


def shows(ps):
    """The distinct presences in order (repeats collapsed)."""
    out = []
    for p in ps:
        if p[0] not in ("available", "unavailable"):
            continue
        if not out or out[-1] != p:
            out.append(p)
    return out


class XmppSink(unittest.TestCase):
    def setUp(self):
        require_sink("xmpp")

    def sinks(self, g):
        return {s["name"]: s for s in g.d.request("sinks")["sinks"]}

    def detail_count(self, g, sink, what):
        d = self.sinks(g)[sink]["detail"]
        m = re.search(r"(\d+) %s" % re.escape(what), d)
        self.assertIsNotNone(m, d)
        return int(m.group(1))

    def test_prosody(self):
        mbs = generated(3)
        A, B, C = mbs
        with Prosody() as p:
            p.register("watcher", "watcher-pw")
            secret = private_file(p.dir, "component-secret",
                                  Prosody.SECRET)
            wrong = private_file(p.dir, "wrong-secret", "not-the-secret")
            fast = {"reconnect_min": "200ms", "reconnect_max": "1s",
                    "timeout": "5s"}
            subs = os.path.join(p.dir, "subscribers")
            secs = {
                "sink xmpp": dict(fast, type="xmpp", domain=
                                  "presence.localhost", server="127.0.0.1:%d"
                                  % p.component_port, secret_file=secret,
                                  subscribers_file=subs),
                "sink xmpp-tls": dict(fast, type="xmpp", domain=
                                      "tlspresence.localhost",
                                      server="localhost:%d" % p.tls_port,
                                      tls="yes", ca_file=p.ca,
                                      secret_file=secret),
                "sink xmpp-badsecret": dict(fast, type="xmpp", domain=
                                            "badsecret.localhost",
                                            server="127.0.0.1:%d"
                                            % p.component_port,
                                            secret_file=wrong),
                "sink xmpp-untrusted": dict(fast, type="xmpp", domain=
                                            "untrusted.localhost",
                                            server="localhost:%d"
                                            % p.tls_port, tls="yes",
                                            secret_file=secret),
            }
            domains = ("presence.localhost", "tlspresence.localhost")

            def jid(m, dom):
                return "%s@%s" % (m.split("@")[0], dom)

            with GatewayRun(mbs, sim={"generate": 3}, sections=secs) as g, \
                    XmppWatcher("watcher@localhost", "watcher-pw",
                                p.c2s_port) as w:
                g.wait_state("streaming")
                for m in mbs:
                    g.wait_changes(m, 1)
                for dom in domains:
                    for m in mbs:
                        w.subscribe(jid(m, dom))
                for dom in domains:
                    for m in mbs:
                        w.wait_presence(jid(m, dom), lambda x: x == AVAILABLE,
                                        what="%s available" % jid(m, dom))

                t0 = int(time.time()) + 3
                g.sim.add_item(A, {"subject": "sync", "start": iso(t0),
                                   "end": iso(t0 + 3)})
                g.sim.control("PUT", "/mailboxes/%s/oof" % B,
                              {"state": "Enabled"})
                self.assertTrue(g.d.request("resync " + B)["ok"])
                for dom in domains:
                    w.wait_presence(jid(B, dom), lambda x: x == OOF,
                                    what="%s out of office" % jid(B, dom))
                    wait_for(lambda: shows(w.presences(jid(A, dom))) ==
                             [AVAILABLE, MEETING, AVAILABLE], 30,
                             "%s: dnd, then available" % jid(A, dom))

                # A wrong secret and an untrusted certificate fail.
                wait_for(lambda: "not-authorized" in
                         self.sinks(g)["xmpp-badsecret"]["detail"], 30,
                         "the wrong secret refused")
                wait_for(lambda: "certificate verification failed" in
                         self.sinks(g)["xmpp-untrusted"]["detail"], 30,
                         "the untrusted certificate refused")
                for bad in ("xmpp-badsecret", "xmpp-untrusted"):
                    self.assertFalse(self.sinks(g)[bad]["healthy"])
                    self.assertEqual(self.sinks(g)[bad]["delivered"], 0)
                    self.assertGreater(self.sinks(g)[bad]["queue"], 0)

                # Prosody restarts; C's meeting starts meanwhile.
                p.stop()
                now = int(time.time())
                g.sim.add_item(C, {"subject": "long", "start": iso(now + 1),
                                   "end": iso(now + 3600)})
                g.wait_changes(C, 2)
                wait_for(lambda: not self.sinks(g)["xmpp"]["healthy"], 30,
                         "the sink noticing the server gone")
                self.assertGreater(self.sinks(g)["xmpp"]["queue"], 0)
                p.start()
                w.reconnect()
                for dom in domains:
                    w.wait_presence(jid(C, dom), lambda x: x == MEETING,
                                    what="%s in the meeting" % jid(C, dom))
                    w.wait_presence(jid(B, dom), lambda x: x == OOF,
                                    what="%s still away" % jid(B, dom))
                    w.wait_presence(jid(A, dom), lambda x: x == AVAILABLE,
                                    what="%s still available" % jid(A, dom))
                wait_for(lambda: self.sinks(g)["xmpp"]["queue"] == 0, 30,
                         "the queue drained")
                self.assertGreaterEqual(self.detail_count(g, "xmpp",
                                                          "connects"), 2)
                self.assertGreaterEqual(self.detail_count(g, "xmpp-tls",
                                                          "connects"), 2)

                # The daemon restarts: the subscriptions are in the file,
                # so B's return reaches the user, who did nothing.
                with open(subs) as f:
                    self.assertIn("%s watcher@localhost"
                                  % jid(B, "presence.localhost"), f.read())
                g.d.stop()
                g.d.start()
                g.wait_state("streaming")
                g.sim.control("PUT", "/mailboxes/%s/oof" % B,
                              {"state": "Disabled"})
                g.d.request("resync " + B)
                w.wait_presence(jid(B, "presence.localhost"),
                                lambda x: x == AVAILABLE,
                                what="B back, after the daemon restarted")

                # A reload stops watching C: its JID goes unavailable
                # (for the sink that kept its subscribers in the file).
                with open(g.d.path("mailboxes.txt"), "w") as f:
                    f.write("%s\n%s\n" % (A, B))
                g.d.signal(signal.SIGHUP)
                w.wait_presence(jid(C, "presence.localhost"),
                                lambda x: x[0] == "unavailable",
                                what="C unavailable after the reload")
                self.assertNotIn(Prosody.SECRET, g.d.log())
                g.assert_no_violations(self)
                # A clean stop with the sinks still failing (and, under
                # the sanitizers, no leak).
                self.assertEqual(g.d.stop(), 0, g.d.log()[-3000:])

    def test_reload(self):
        """A reload keeps the presence the component answers probes
        with.  A meeting for A, B available; the user logs in again
        (Prosody probes every JID the user subscribed to) after each
        reload and must get dnd for A, available for B: after reloading
        the same file (the sink stays), after changing the timeout (a
        new sink that keeps the stream: no new connection), and after
        moving to the TLS port (a new sink with a stream of its own)."""
        mbs = generated(2)
        A, B = mbs
        with Prosody() as p:
            p.register("watcher", "watcher-pw")
            secret = private_file(p.dir, "component-secret",
                                  Prosody.SECRET)
            sec = {"type": "xmpp", "domain": "presence.localhost",
                   "server": "127.0.0.1:%d" % p.component_port,
                   "secret_file": secret, "reconnect_min": "200ms",
                   "reconnect_max": "1s", "timeout": "5s"}
            ja, jb = ("%s@presence.localhost" % m.split("@")[0]
                      for m in mbs)
            with GatewayRun(mbs, sim={"generate": 2},
                            sections={"sink xmpp": sec}) as g, \
                    XmppWatcher("watcher@localhost", "watcher-pw",
                                p.c2s_port) as w:
                g.wait_state("streaming")
                for j in (ja, jb):
                    w.subscribe(j)
                now = int(time.time())
                g.sim.add_item(A, {"subject": "long", "start": iso(now - 60),
                                   "end": iso(now + 3600)})
                self.assertTrue(g.d.request("resync " + A)["ok"])
                w.wait_presence(ja, lambda x: x == MEETING, what="A dnd")
                w.wait_presence(jb, lambda x: x == AVAILABLE,
                                what="B available")

                def probes_answered(when):
                    n = {j: len(w.presences(j)) for j in (ja, jb)}
                    w.relogin()
                    w.wait_presence(ja, lambda x: x == MEETING, after=n[ja],
                                    what="A dnd, probed %s" % when)
                    w.wait_presence(jb, lambda x: x == AVAILABLE,
                                    after=n[jb],
                                    what="B available, probed %s" % when)

                self.assertTrue(g.d.request("reload")["ok"])
                probes_answered("after reloading the same file")
                self.assertNotIn("reconfigured", g.d.log())

                connects = self.detail_count(g, "xmpp", "connects")
                self.assertEqual(connects, 1)
                g.rewrite_config({"sink xmpp": {"timeout": "4s"}})
                self.assertTrue(g.d.request("reload")["ok"])
                probes_answered("after a reload that kept the stream")
                self.assertIn("presence of 2 JIDs taken over, 0 to "
                              "announce; keeping the stream", g.d.log())
                self.assertEqual(self.detail_count(g, "xmpp", "connects"),
                                 connects)
                self.assertTrue(self.sinks(g)["xmpp"]["healthy"])

                g.rewrite_config({"sink xmpp": {
                    "server": "localhost:%d" % p.tls_port, "tls": "yes",
                    "ca_file": p.ca}})
                self.assertTrue(g.d.request("reload")["ok"])
                wait_for(lambda: "online localhost:%d" % p.tls_port in
                         self.sinks(g)["xmpp"]["detail"], 30,
                         "the stream over TLS")
                probes_answered("after a reload that moved the stream")
                self.assertIn("connecting anew: connection settings "
                              "changed", g.d.log())
                g.assert_no_violations(self)
                self.assertEqual(g.d.stop(), 0, g.d.log()[-3000:])


if __name__ == "__main__":
    unittest.main(verbosity=2)
