"""A reload keeps the restart-only keys: for each of exchange.url,
version, auth, username, mode and the push listener (push.listen,
push.url), change it in the file, reload, and show with the simulator's
own records that the daemon still works with the running value, that the
reload answer and the status name the key, and that the log says so once.
"""
import os
import socket
import sys
import time
import unittest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from ewsgwsim import GatewayRun, generated, iso  # noqa: E402
from ewsgwtest import free_port, wait_for  # noqa: E402

N = 5


def listening(port):
    s = socket.socket()
    s.settimeout(2)
    try:
        s.connect(("127.0.0.1", port))
        return True
    except OSError:
        return False
    finally:
        s.close()


def count(stats, op, code=None):
    codes = stats["requests"].get(op, {})
    return codes.get(code, 0) if code else sum(codes.values())


class RestartOnlyKeys(unittest.TestCase):
    def reload_keeps(self, g, changes, keys):
        """Rewrite the file with changes, reload over the status socket
        and check the answer, the status and the log name keys."""
        g.rewrite_config(changes)
        r = g.d.request("reload")
        self.assertTrue(r["ok"], r)
        self.assertEqual(sorted(r["restart_required"]), sorted(keys))
        st = g.status()
        self.assertEqual(st["reloads"], 1)
        self.assertEqual(sorted(st["restart_pending"]), sorted(keys))
        log = g.d.log()
        for k in keys:
            self.assertEqual(log.count("reload: %s changed in " % k), 1, k)

    def resync_ok(self, g, mb):
        """A calendar read after the reload: answered by the simulator,
        no error on the mailbox."""
        st = g.sim.stats()
        find = count(st, "FindItem", "NoError")
        oof = count(st, "GetUserOofSettings", "NoError")
        self.assertTrue(g.d.request("resync " + mb)["ok"])
        wait_for(lambda: count(g.sim.stats(), "FindItem", "NoError") >
                 find, 20, "the resync's FindItem at the simulator")
        wait_for(lambda: count(g.sim.stats(), "GetUserOofSettings",
                               "NoError") > oof, 20,
                 "the resync's GetUserOofSettings at the simulator")
        self.assertFalse(g.mailbox(mb)["error"])

    def busy_published(self, g, mb):
        now = time.time()
        g.sim.add_item(mb, {"subject": "now", "start": iso(now - 60),
                            "end": iso(now + 3600)})
        rows = g.wait_changes(mb, 2)
        self.assertEqual(rows[-1]["presence"], "busy")

    def test_url(self):
        with GatewayRun(generated(N), sim={"generate": N}) as g:
            g.wait_state("streaming")
            old = g.config["exchange"]["url"]
            dead = "http://127.0.0.1:%d/EWS/Exchange.asmx" % free_port()
            self.reload_keeps(g, {"exchange": {"url": dead}},
                              ["exchange.url"])
            self.assertEqual(g.config["exchange"]["url"], dead)
            # Requests still reach the simulator at the old URL.
            self.resync_ok(g, generated(N)[0])
            self.busy_published(g, generated(N)[1])
            self.assertTrue(old.startswith("http://127.0.0.1:"))
            g.assert_no_violations(self)

    def test_version(self):
        # An Exchange 2013 server refuses requests for a later version.
        with GatewayRun(generated(N), sim={"generate": N,
                                           "version": "Exchange2013"}) as g:
            g.wait_state("streaming")
            self.reload_keeps(g, {"exchange": {"version": "Exchange2016"}},
                              ["exchange.version"])
            self.resync_ok(g, generated(N)[0])
            self.busy_published(g, generated(N)[1])
            st = g.sim.stats()
            for op, codes in st["requests"].items():
                self.assertNotIn("ErrorInvalidServerVersion", codes, op)
            g.assert_no_violations(self)

    def test_auth(self):
        with GatewayRun(generated(N), sim={"generate": N}) as g:
            g.wait_state("streaming")
            self.reload_keeps(g, {"exchange": {"auth": "ntlm"}},
                              ["exchange.auth"])
            basic = g.sim.stats()["auth"].get("basic_ok", 0)
            self.resync_ok(g, generated(N)[0])
            auth = g.sim.stats()["auth"]
            self.assertGreater(auth.get("basic_ok", 0), basic)
            self.assertEqual(auth.get("ntlm_challenges", 0), 0, auth)
            g.assert_no_violations(self)

    def test_username(self):
        # svc-limited exists but has another password: using it would
        # fail authentication.
        with GatewayRun(generated(N), sim={"generate": N}) as g:
            g.wait_state("streaming")
            self.reload_keeps(g, {"exchange": {"username": "svc-other"}},
                              ["exchange.username"])
            self.resync_ok(g, generated(N)[0])
            self.busy_published(g, generated(N)[1])
            st = g.sim.stats()
            self.assertEqual(st["auth"].get("basic_failed", 0), 0,
                             st["auth"])
            self.assertEqual(sorted(st["concurrency"]), ["svc-ewsgw"])
            g.assert_no_violations(self)

    def test_mode(self):
        # Streaming to push: no push subscription (there is no listener
        # for it) and the streams carry on.
        port = free_port()
        with GatewayRun(generated(N), sim={"generate": N}) as g:
            g.wait_state("streaming")
            subscribes = count(g.sim.stats(), "Subscribe")
            self.reload_keeps(g, {
                "exchange": {"mode": "push"},
                "push": {"listen": "127.0.0.1:%d" % port,
                         "url": "http://127.0.0.1:%d/ewsgw/push" % port}},
                ["exchange.mode", "push.listen", "push.url"])
            self.assertEqual(g.status()["mode"], "streaming")
            self.busy_published(g, generated(N)[2])
            self.assertEqual(g.changes(generated(N)[2])[-1]["source"],
                             "calendar")
            self.assertEqual(g.states().get("streaming"), N)
            self.assertEqual(count(g.sim.stats(), "Subscribe"), subscribes)
            kinds = {s["kind"] for s in
                     g.sim.control("GET", "/subscriptions")[1][
                         "subscriptions"]}
            self.assertEqual(kinds, {"streaming"})
            self.assertFalse(listening(port))
            g.assert_no_violations(self)

    def test_push_listener(self):
        a, b = free_port(), free_port()
        url_a = "http://127.0.0.1:%d/ewsgw/push" % a
        secs = {"exchange": {"mode": "push"},
                "push": {"listen": "127.0.0.1:%d" % a, "url": url_a,
                         "status_frequency": "1",
                         "heartbeat_timeout": "4s"}}
        with GatewayRun(generated(N), sim={"generate": N,
                                           "minute_seconds": 1,
                                           "push_timeout": 1},
                        sections=secs) as g:
            g.wait_state("push")
            self.reload_keeps(g, {"push": {
                "listen": "127.0.0.1:%d" % b,
                "url": "http://127.0.0.1:%d/ewsgw/push" % b}},
                ["push.listen", "push.url"])
            self.assertTrue(listening(a))
            self.assertFalse(listening(b))
            # Subscriptions made after the reload still name the old URL:
            # the simulator loses them all, the daemon subscribes again.
            before = g.status()["resubscribes"]
            g.sim.control("POST", "/restart")
            wait_for(lambda: g.status()["resubscribes"] >= before + N, 30,
                     "subscribed again")
            g.wait_state("push")
            subs = g.sim.control("GET", "/subscriptions")[1][
                "subscriptions"]
            self.assertEqual(len(subs), N)
            # The registered URL is push.url plus a secret token.
            for s in subs:
                self.assertTrue(s["url"].startswith(url_a + "/"), s["url"])
            failed = g.sim.stats()["push"]["failed"]
            self.busy_published(g, generated(N)[3])
            self.assertEqual(g.sim.stats()["push"]["failed"], failed)
            g.assert_no_violations(self)


if __name__ == "__main__":
    unittest.main(verbosity=2)
