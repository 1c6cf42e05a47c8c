"""The sip sink against a real SIP presence server.

Kamailio (presence + presence_xml) runs on loopback; the daemon watches
mailboxes of the EWS simulator and publishes to Kamailio over UDP, TCP,
verified TLS, with digest authentication (401 and 407, each seen
answered) and through
NAPTR/SRV records; a SIP watcher SUBSCRIBEs to the presentities and
must receive NOTIFY bodies whose PIDF/RPID follow each change: meeting
start -> busy + meeting, end -> available, out of office -> away +
vacation.  Kamailio is then restarted, losing every publication, and
the sink must publish again (after 412 for the entity tags it held,
retries for the changes made while it was down).  A wrong password and
an untrusted certificate must fail, and be seen failing.  A reload that
changes the sink's section keeps what it published.
"""
import contextlib
import os
import re
import signal
import sys
import time
import unittest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from ewsgwsim import GatewayRun, generated, iso  # noqa: E402
from ewsgwtest import wait_for  # noqa: E402
from presence_servers import (DnsServer, Kamailio, LossyRelay,  # noqa: E402
                              require_sink)
from sipwatch import Watcher, is_available, is_meeting, is_oof  # noqa: E402

FAST = {"expires": "10s", "retry_initial": "200ms", "retry_max": "2s",
        "t1": "200ms"}


def changes_of(states):
    """The sequence of distinct published states, starting from the
    first open one (NOTIFYs before the first publication are empty)."""
    out = []
    for st in states:
        if st["basic"] != "open":
            continue
        key = (tuple(sorted(st["activities"])), st["note"])
        if not out or out[-1] != key:
            out.append(key)
    return out


AVAILABLE = ((), "Available")
MEETING = (("busy", "meeting"), "In a meeting")
OOF = (("away", "vacation"), "Out of office")


class SipSink(unittest.TestCase):
    def setUp(self):
        require_sink("sip")

    def sinks(self, g):
        return {s["name"]: s for s in g.d.request("sinks")["sinks"]}

    def detail_count(self, g, sink, what):
        d = self.sinks(g)[sink]["detail"]
        m = re.search(r"(\d+) %s" % re.escape(what), d)
        self.assertIsNotNone(m, d)
        return int(m.group(1))

    def test_kamailio(self):
        mbs = generated(3)
        A, B, C = mbs
        with Kamailio() as k, Watcher(k.port) as w:
            pw = os.path.join(k.dir, "sip-password")
            with open(os.open(pw, os.O_WRONLY | os.O_CREAT | os.O_TRUNC,
                                   0o600), "w") as f:
                f.write(Kamailio.PASSWORD + "\n")
            bad = os.path.join(k.dir, "bad-password")
            with open(os.open(bad, os.O_WRONLY | os.O_CREAT | os.O_TRUNC,
                                   0o600), "w") as f:
                f.write("not-the-password\n")
            udp = "127.0.0.1:%d" % k.port
            domains = {
                "sip-udp": ("udp.test", {"server": udp}),
                "sip-tcp": ("tcp.test", {"server": "sip:%s;transport=tcp"
                                         % udp}),
                "sip-tls": ("tls.test", {"server": "sips:localhost:%d"
                                         % k.tls_port,
                                         "ca_file": k.ca}),
                "sip-auth": ("auth.test", {"server": udp,
                                           "username": "ewsgw",
                                           "password_file": pw}),
                "sip-proxyauth": ("proxyauth.test", {
                    "server": udp, "transport": "tcp",
                    "username": "ewsgw", "password_file": pw}),
            }
            secs = {}
            for name, (dom, extra) in domains.items():
                kv = {"type": "sip", "presentity": "sip:%%l@%s" % dom}
                kv.update(FAST)
                kv.update(extra)
                secs["sink " + name] = kv
            secs["sink sip-badauth"] = dict(
                FAST, type="sip", presentity="sip:bad-%l@auth.test",
                server=udp, username="ewsgw", password_file=bad)
            secs["sink sip-untrusted"] = dict(
                FAST, type="sip", presentity="sip:%l@untrusted.test",
                server="sips:localhost:%d" % k.tls_port)

            with GatewayRun(mbs, sim={"generate": 3}, sections=secs) as g:
                g.wait_state("streaming")
                for m in mbs:
                    g.wait_changes(m, 1)

                def pres(m, dom):
                    return "sip:%s@%s" % (m.split("@")[0], dom)
                for dom, _ in domains.values():
                    for m in mbs:
                        w.subscribe(pres(m, dom))
                w.subscribe(pres("bad-" + A, "auth.test"))
                for dom, _ in domains.values():
                    for m in mbs:
                        w.wait_state(pres(m, dom), is_available,
                                     what="%s available" % pres(m, dom))

                # A meeting for A, automatic replies for B.
                t0 = int(time.time()) + 3
                g.sim.add_item(A, {"subject": "sync", "start": iso(t0),
                                   "end": iso(t0 + 3)})
                g.sim.control("PUT", "/mailboxes/%s/oof" % B,
                              {"state": "Enabled"})
                self.assertTrue(g.d.request("resync " + B)["ok"])
                for dom, _ in domains.values():
                    w.wait_state(pres(B, dom), is_oof,
                                 what="%s out of office" % pres(B, dom))
                    wait_for(lambda: changes_of(w.states(pres(A, dom))) ==
                             [AVAILABLE, MEETING, AVAILABLE], 30,
                             "%s: meeting, then available" % pres(A, dom))
                self.assertEqual([c["presence"] for c in g.changes(A)],
                                 ["available", "busy", "available"])

                # Refreshes keep the publications alive past Expires.
                wait_for(lambda: self.detail_count(g, "sip-udp",
                                                   "refreshed") > 0,
                         30, "a refresh")
                self.assertTrue(is_oof(w.states(pres(B, "udp.test"))[-1]))

                # The wrong password is refused and never published;
                # the untrusted certificate never gets a connection.
                wait_for(lambda: self.detail_count(
                    g, "sip-badauth", "auth failures") > 0, 30,
                    "digest refused")
                self.assertFalse(any(st["basic"] == "open" for st in
                                     w.states(pres("bad-" + A,
                                                   "auth.test"))))
                sk = self.sinks(g)
                self.assertGreater(sk["sip-badauth"]["failed"], 0)
                self.assertIn("401", sk["sip-badauth"]["last_error"])
                wait_for(lambda: "certificate verification failed" in
                         self.sinks(g)["sip-untrusted"]["detail"], 30,
                         "TLS verification failure")
                self.assertEqual(self.sinks(g)["sip-untrusted"]
                                 ["delivered"], 0)
                for name in domains:
                    self.assertEqual(self.sinks(g)[name]["rejected"], 0)
                    self.assertEqual(self.detail_count(
                        g, name, "auth failures"), 0)
                # Kamailio really challenged: 401 for auth.test, 407
                # for proxyauth.test, nothing for the open domains.
                for name in domains:
                    want = {"sip-auth": "401",
                            "sip-proxyauth": "407"}.get(name)
                    for code in ("401", "407"):
                        n = self.detail_count(
                            g, name, "%s challenges answered" % code)
                        if code == want:
                            self.assertGreater(n, 0, name)
                        else:
                            self.assertEqual(n, 0, name)
                self.assertGreater(self.detail_count(
                    g, "sip-badauth", "401 challenges answered"), 0)

                # Kamailio goes away; B's replies end and C's meeting
                # starts while it is down.
                failed_before = self.sinks(g)["sip-udp"]["failed"]
                k.stop()
                g.sim.control("PUT", "/mailboxes/%s/oof" % B,
                              {"state": "Disabled"})
                g.d.request("resync " + B)
                now = int(time.time())
                g.sim.add_item(C, {"subject": "long", "start": iso(now + 1),
                                   "end": iso(now + 3600)})
                g.wait_changes(C, 2)
                g.wait_changes(B, 3)
                # The server really was unreachable for the sink.
                wait_for(lambda: self.sinks(g)["sip-udp"]["failed"] >
                         failed_before, 30, "failed PUBLISH while down")
                self.assertGreater(self.sinks(g)["sip-udp"]["queue"], 0)

                k.start()
                repub = self.detail_count(g, "sip-udp",
                                          "re-published after 412")
                for dom, _ in domains.values():
                    for m in mbs:
                        w.subscribe(pres(m, dom))
                for dom, _ in domains.values():
                    w.wait_state(pres(A, dom), is_available, timeout=60,
                                 what="%s available again" % pres(A, dom))
                    w.wait_state(pres(B, dom), is_available, timeout=60,
                                 what="%s back from vacation" % pres(B, dom))
                    w.wait_state(pres(C, dom), is_meeting, timeout=60,
                                 what="%s in the meeting" % pres(C, dom))
                # The entity tags from before the restart were refused
                # with 412 and the state published afresh.
                self.assertGreater(self.detail_count(
                    g, "sip-udp", "re-published after 412"), repub)
                self.assertEqual(self.sinks(g)["sip-udp"]["queue"], 0)

                # A reload stops watching C: its publications are taken
                # back (Expires: 0), watchers see no state any more.
                with open(g.d.path("mailboxes.txt"), "w") as f:
                    f.write("%s\n%s\n" % (A, B))
                g.d.signal(signal.SIGHUP)
                for dom, _ in domains.values():
                    w.wait_state(pres(C, dom),
                                 lambda st: st["basic"] != "open",
                                 what="%s withdrawn" % pres(C, dom))
                self.assertTrue(is_available(w.states(pres(A, "udp.test"))
                                             [-1]))
                self.assertNotIn(Kamailio.PASSWORD, g.d.log())
                g.assert_no_violations(self)
                # A clean stop with the sinks still failing (and, under
                # the sanitizers, no leak).
                self.assertEqual(g.d.stop(), 0, g.d.log()[-3000:])

    def fresh_notify(self, w, p):
        """SUBSCRIBE p again and return the state its first NOTIFY
        shows: what the server holds now."""
        n = len(w.states(p))
        w.subscribe(p)
        wait_for(lambda: len(w.states(p)) > n, 10, "a NOTIFY for %s" % p)
        return w.states(p)[n]

    def test_reload(self):
        """A reload keeps what the sink published.  With expires 10s:
        a reload of the same file keeps the sink; one that changes t1
        (same server, same identity) gives a new sink that keeps the
        entity tags and refreshes them, so Kamailio still holds every
        presentity after the original Expires and every PUBLISH after
        the reload is conditional; one that moves the presentities to
        another domain publishes them there at once, with the last
        state, and removes the old ones (Expires: 0 with the tag)."""
        mbs = generated(2)
        A, B = mbs
        with Kamailio() as k, Watcher(k.port) as w:
            sec = dict(FAST, type="sip", presentity="sip:%l@udp.test",
                       server="127.0.0.1:%d" % k.port)
            with GatewayRun(mbs, sim={"generate": 2},
                            sections={"sink sip": sec}) as g:
                g.wait_state("streaming")

                def pres(m, dom):
                    return "sip:%s@%s" % (m.split("@")[0], dom)
                pa, pb = pres(A, "udp.test"), pres(B, "udp.test")
                qa, qb = pres(A, "moved.test"), pres(B, "moved.test")
                for p in (pa, pb, qa, qb):
                    w.subscribe(p)
                now = int(time.time())
                g.sim.add_item(A, {"subject": "long", "start": iso(now - 60),
                                   "end": iso(now + 3600)})
                self.assertTrue(g.d.request("resync " + A)["ok"])
                w.wait_state(pa, is_meeting, what="A in the meeting")
                w.wait_state(pb, is_available, what="B available")

                # The same file: the sink stays as it is.
                self.assertTrue(g.d.request("reload")["ok"])
                self.assertNotIn("reconfigured", g.d.log())

                # Another t1: a new sink, same server and identity.
                g.rewrite_config({"sink sip": {"t1": "300ms"}})
                seen = {p: len(w.states(p)) for p in (pa, pb)}
                sent = len(k.publishes())
                self.assertTrue(g.d.request("reload")["ok"])
                reloaded = time.monotonic()
                wait_for(lambda: "2 publications kept with their entity "
                         "tags, 0 published afresh, 0 to remove" in
                         g.d.log(), 10, "the takeover logged")
                # Past the Expires of everything published before, and
                # past Kamailio's clean-up of expired publications.
                wait_for(lambda: self.detail_count(g, "sip", "refreshed")
                         >= 2, 30, "both refreshed by the new sink")
                time.sleep(max(0, reloaded + 10 + 4 - time.monotonic()))
                for p, ok in ((pa, is_meeting), (pb, is_available)):
                    after = w.states(p)[seen[p]:]
                    self.assertTrue(all(ok(st) for st in after),
                                    "%s lapsed after the reload: %r"
                                    % (p, after))
                    st = self.fresh_notify(w, p)
                    self.assertTrue(ok(st), "%s: %r" % (p, st))
                pubs = k.publishes()[sent:]
                self.assertGreaterEqual(len(pubs), 2)
                self.assertEqual([x for x in pubs if x["if_match"] is None],
                                 [], "published afresh after the reload")

                # Another domain: published there with the last state,
                # no change needed; the old publications taken back.
                sent = len(k.publishes())
                g.rewrite_config({"sink sip": {
                    "presentity": "sip:%l@moved.test"}})
                self.assertTrue(g.d.request("reload")["ok"])
                w.wait_state(qa, is_meeting, what="A moved, in the meeting")
                w.wait_state(qb, is_available, what="B moved, available")
                for p in (pa, pb):
                    w.wait_state(p, lambda st: st["basic"] != "open",
                                 what="%s taken back" % p)
                    mine = [x for x in k.publishes()[sent:]
                            if x["uri"] == p]
                    gone = [x for x in mine if x["expires"] == 0]
                    self.assertEqual(len(gone), 1, mine)
                    self.assertIsNotNone(gone[0]["if_match"])
                self.assertIn("0 publications kept with their entity tags, "
                              "2 published afresh, 2 to remove", g.d.log())
                # The next change modifies the moved publication.
                g.sim.control("PUT", "/mailboxes/%s/oof" % B,
                              {"state": "Enabled"})
                self.assertTrue(g.d.request("resync " + B)["ok"])
                w.wait_state(qb, is_oof, what="B moved, out of office")
                last = k.publishes(qb)[-1]
                self.assertIsNotNone(last["if_match"], last)
                g.assert_no_violations(self)
                self.assertEqual(g.d.stop(), 0, g.d.log()[-3000:])

    @contextlib.contextmanager
    def one_meeting(self, mbs, w, sink, domain, what):
        """A daemon for one mailbox and one sip sink; the watcher sees
        its presentity at domain go available, meeting, available."""
        with GatewayRun(mbs, sim={"generate": 1},
                        sections={"sink sip": dict(
                            FAST, type="sip",
                            presentity="sip:%%l@%s" % domain,
                            **sink)}) as g:
            g.wait_state("streaming")
            p = "sip:%s@%s" % (mbs[0].split("@")[0], domain)
            w.subscribe(p)
            w.wait_state(p, is_available)
            t0 = int(time.time()) + 2
            g.sim.add_item(mbs[0], {"subject": "s", "start": iso(t0),
                                    "end": iso(t0 + 2)})
            wait_for(lambda: changes_of(w.states(p)) ==
                     [AVAILABLE, MEETING, AVAILABLE], 30, what)
            yield g

    def test_naptr_srv(self):
        """RFC 3263: NAPTR picks TCP, SRV names the host and port, A
        its address; no server is configured, only the domain."""
        mbs = generated(1)
        with Kamailio() as k, Watcher(k.port) as w, DnsServer({
                ("example.test", "NAPTR"): [
                    '10 50 "s" "SIP+D2T" "" _sip._tcp.example.test.'],
                ("_sip._tcp.example.test", "SRV"): [
                    "0 10 %d sip1.example.test." % k.port],
                ("sip1.example.test", "A"): ["127.0.0.1"],
                }) as dns:
            with self.one_meeting(
                    mbs, w, {"dns_servers": "127.0.0.1:%d" % dns.port},
                    "example.test",
                    "meeting through the located server") as g:
                self.assertTrue(dns.asked("example.test", "NAPTR"))
                self.assertTrue(dns.asked("_sip._tcp.example.test", "SRV"))
                self.assertTrue(dns.asked("sip1.example.test", "A"))
                self.assertIn("tcp 127.0.0.1:%d" % k.port,
                              self.sinks(g)["sip"]["detail"])

    def test_udp_loss(self):
        """RFC 3261 17.1.2.2: over UDP the first copy of every request
        is lost on the way; Timer E's retransmission must carry each
        change through, with no failure for the engine to retry."""
        mbs = generated(1)
        with Kamailio() as k, Watcher(k.port) as w, \
                LossyRelay(k.port) as relay:
            with self.one_meeting(
                    mbs, w, {"server": "127.0.0.1:%d" % relay.port},
                    "udp.test", "the meeting through a lossy path") as g:
                dropped, passed = relay.counts()
                # Three publications at least, each lost once and
                # then retransmitted unchanged (same branch).
                self.assertGreaterEqual(dropped, 3)
                self.assertGreaterEqual(passed, 3)
                with relay.lock:
                    lost = [d for d in relay.dropped
                            if d.startswith("PUBLISH ")]
                    again = set(relay.passed)
                self.assertGreaterEqual(len(lost), 3)
                self.assertTrue(all(d in again for d in lost), lost[:1])
                # The watcher can see the last NOTIFY before the
                # daemon has the 200 to its PUBLISH: wait for the
                # queue to drain, then nothing may have failed.
                def drained():
                    sk = self.sinks(g)["sip"]
                    return sk if sk["queue"] == 0 else None
                sk = wait_for(drained, 30, "the sip sink's queue to drain")
                self.assertEqual(sk["failed"], 0, sk)
                g.assert_no_violations(self)
                self.assertEqual(g.d.stop(), 0, g.d.log()[-3000:])


if __name__ == "__main__":
    unittest.main(verbosity=2)
