"""The service account's problems through the real daemon and the
simulator, with 1,000 mailboxes: a wrong password (Basic and NTLM) costs
one failed login at start-up and then one per back-off step, counted by
the simulator as a domain controller would; it is reported once, and
everything recovers within one step of the fix or at once on reload.
Impersonation refused across the board does not storm either, and an
Exchange that cannot be reached is a named, unhealthy state."""
import os
import re
import signal
import socket
import sys
import time
import unittest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from ewsgwsim import ACCOUNT, PASSWORD, GatewayRun, generated  # noqa: E402
from ewsgwtest import wait_for  # noqa: E402

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)),
                                "..", "sim"))
from simharness import Simulator  # noqa: E402

N = 1000
# The shipped defaults (the harness shortens them for other tests).
DEFAULT_STEPS = {"login_retry": "1m", "login_retry_max": "30m"}


def failed_logins(g):
    return g.sim.stats()["failed_logins"]


def problems(g):
    return g.status()["problems"]


def log_lines(g, pattern):
    return [l for l in g.d.log().splitlines() if re.search(pattern, l)]


def write_password(g, pw):
    with open(g.d.password_path, "w") as f:
        f.write(pw + "\n")


def denied_answers(st):
    return sum(c.get("ErrorImpersonateUserDenied", 0)
               for c in st["requests"].values())


class WrongPassword(unittest.TestCase):
    def wrong_from_the_start(self, auth):
        """A wrong password in the file at start-up, the default steps:
        one failed login, whatever the number of mailboxes; a reload
        tries again at once; the right password brings all back."""
        with GatewayRun(generated(N), sim={"generate": N},
                        password="Wr0ng-pass",
                        sections={"exchange": dict(DEFAULT_STEPS,
                                                   auth=auth)}) as g:
            t0 = time.monotonic()
            wait_for(lambda: any(p.startswith("authentication failing "
                                              "since ") for p in problems(g)),
                     30, "authentication failing")
            # Well into the first step: nothing but the one login.
            time.sleep(max(0, 8 - (time.monotonic() - t0)))
            fl = failed_logins(g)
            self.assertEqual(fl["total"], 1, fl)
            self.assertEqual(fl["by_account"], {ACCOUNT: 1})
            st = g.status()
            self.assertFalse(st["healthy"])
            self.assertEqual(st["exchange"]["state"], "auth-failing")
            self.assertEqual(st["exchange"]["failed_logins"], 1)
            self.assertIsNotNone(st["exchange"]["next_attempt"])
            p = [p for p in st["problems"] if p.startswith("authentication")]
            self.assertRegex(p[0], r"^authentication failing since "
                             r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ, next attempt "
                             r"at \d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ, 1 failed "
                             r"logins: ")
            # Every mailbox waits; none backs off on its own.
            self.assertEqual(st["mailboxes"]["by_state"], {"subscribing": N})
            r = g.d.ctl("status")
            self.assertEqual(r.returncode, 1)
            self.assertIn("problem:", r.stdout)
            self.assertIn("authentication failing since", r.stdout)
            self.assertIn("exchange:", r.stdout)
            r = g.d.ctl("--json", "status")
            self.assertEqual(r.returncode, 1)
            self.assertIn('"auth-failing"', r.stdout)
            # Said once in the journal, at error level, not per request.
            self.assertEqual(len(log_lines(g, r" err: authentication "
                                           r"failing")), 1, g.d.log())
            self.assertEqual(log_lines(g, r"(warning|err): .*HTTP401"), [])

            # A reload with the password still wrong tries at once.
            g.d.signal(signal.SIGHUP)
            wait_for(lambda: failed_logins(g)["total"] == 2, 15,
                     "a second login attempt right after the reload")
            wait_for(lambda: g.status()["exchange"]["failed_logins"] == 2,
                     10, "the daemon counts it too")
            time.sleep(1)
            self.assertEqual(failed_logins(g)["total"], 2)

            # The right password and a reload: everything, at once.
            write_password(g, PASSWORD)
            t1 = time.monotonic()
            g.d.signal(signal.SIGHUP)
            wait_for(lambda: g.status()["healthy"], 30, "healthy")
            self.assertLess(time.monotonic() - t1, 30)
            g.wait_state("streaming", timeout=180)
            self.assertEqual(failed_logins(g)["total"], 2)
            self.assertEqual(g.status()["exchange"]["state"], "ok")
            self.assertEqual(len(log_lines(g, r"notice: Exchange accepts the "
                                           r"service account's credentials "
                                           r"again")), 1)
            self.assertEqual(g.d.ctl("status").returncode, 0)
            g.assert_no_violations(self)

    def test_wrong_password_basic(self):
        self.wrong_from_the_start("basic")

    def test_wrong_password_ntlm(self):
        self.wrong_from_the_start("ntlm")

    def changed_while_running(self, auth):
        """The password stops working while all 1,000 stream: requests
        already in flight fail (and count), then one login per step
        (2s, 6s, 10s, 10s ...), and a fixed password is taken within one
        step without a reload."""
        with GatewayRun(generated(N), sim={"generate": N},
                        sections={"exchange": {"auth": auth},
                                  "throttling": {"backoff_max": "5s"}}) as g:
            g.wait_state("streaming", timeout=180)
            g.sim.reset_stats()
            st, _ = g.sim.control("PATCH", "/accounts/" + ACCOUNT,
                                  {"password": "S0mething-else"})
            self.assertEqual(st, 200)
            # Every connection and subscription is lost at once.
            g.sim.control("POST", "/restart")
            wait_for(lambda: failed_logins(g)["total"] > 0, 30,
                     "a refused login")
            wait_for(lambda: g.status()["exchange"]["state"] ==
                     "auth-failing", 30, "auth-failing")
            time.sleep(20)
            times = failed_logins(g)["times"]
            first = times[0]
            burst = [t for t in times if t - first < 1.0]
            after = [t for t in times if t - first >= 1.0]
            # At most what max_concurrency (10) allowed in flight.
            self.assertLessEqual(len(burst), 10, times)
            # Then one per step: 2, 6, 10, 10 s apart at the least.
            for a, b in zip([burst[-1]] + after, after):
                self.assertGreaterEqual(b - a, 1.9, times)
            self.assertLessEqual(len(after), 4, times)
            self.assertEqual(g.status()["exchange"]["failed_logins"],
                             len(times))

            # The administrator puts the password back: within one step.
            st, _ = g.sim.control("PATCH", "/accounts/" + ACCOUNT,
                                  {"password": PASSWORD})
            self.assertEqual(st, 200)
            t1 = time.monotonic()
            wait_for(lambda: g.status()["exchange"]["state"] == "ok", 15,
                     "accepted again")
            self.assertLess(time.monotonic() - t1, 12)
            g.wait_state("streaming", timeout=180)
            self.assertTrue(g.status()["healthy"])
            self.assertEqual(failed_logins(g)["total"], len(times))
            g.assert_no_violations(self)

    def test_password_changed_while_running_basic(self):
        self.changed_while_running("basic")

    def test_password_changed_while_running_ntlm(self):
        self.changed_while_running("ntlm")


class Impersonation(unittest.TestCase):
    def test_rights_removed_for_everyone(self):
        """The ApplicationImpersonation role is taken away: a burst of
        refusals at most, then one attempt per step; once it is back,
        the mailboxes that were not refused stream again."""
        n = 300
        with GatewayRun(generated(n), sim={"generate": n},
                        sections={"throttling": {"backoff_max": "5s"}}) as g:
            g.wait_state("streaming", timeout=120)
            g.sim.reset_stats()
            g.sim.control("PATCH", "/accounts/" + ACCOUNT,
                          {"impersonate": []})
            g.sim.control("POST", "/restart")
            wait_for(lambda: any(p.startswith("impersonation refused since")
                                 for p in problems(g)), 60,
                     "impersonation refused")
            self.assertFalse(g.status()["healthy"])
            self.assertEqual(g.status()["exchange"]["state"],
                             "impersonation-denied")
            at = denied_answers(g.sim.stats())
            # The ten that decided it, and what was in flight with them.
            self.assertLessEqual(at, 10 + 10 + 2)
            time.sleep(15)
            later = denied_answers(g.sim.stats())
            # 2 s, 6 s, 10 s: three attempts in 15 s.
            self.assertLessEqual(later - at, 3)
            self.assertEqual(len(log_lines(g, r" err: impersonation refused "
                                           r"for \d+ mailboxes in a row")), 1)

            g.sim.control("PATCH", "/accounts/" + ACCOUNT,
                          {"impersonate": "*"})
            wait_for(lambda: g.status()["exchange"]["state"] == "ok", 20,
                     "impersonation works again")
            states = wait_for(
                lambda: (lambda s: s if s.get("streaming", 0) +
                         s.get("parked", 0) == n else None)(g.states()),
                120, "all streaming but the parked")
            self.assertLessEqual(states.get("parked", 0), later)
            self.assertEqual(failed_logins(g)["total"], 0)
            g.assert_no_violations(self)


class Unreachable(unittest.TestCase):
    def test_simulator_stopped_then_back(self):
        n = 50
        with GatewayRun(generated(n), sim={"generate": n},
                        sections={"exchange": {"connect_timeout": "2s"},
                                  "throttling": {"backoff_max": "4s"}}) as g:
            g.wait_state("streaming")
            url = g.sim.ews_url
            port = int(url.split(":")[2].split("/")[0])
            t0 = time.monotonic()
            g.sim.stop()
            st = wait_for(lambda: (lambda s: s if not s["healthy"] else None)(
                g.status()), 10, "unhealthy")
            # Within twice the connect timeout.
            self.assertLess(time.monotonic() - t0, 4.0)
            p = [p for p in st["problems"] if p.startswith("cannot reach")]
            self.assertTrue(p[0].startswith("cannot reach Exchange at %s: "
                                            % url), p)
            self.assertEqual(st["exchange"]["state"], "unreachable")
            self.assertEqual(g.d.ctl("status").returncode, 1)
            wait_for(lambda: any("EXCHANGE UNREACHABLE" in m
                                 for m in g.d.notify.poll()), 10,
                     "STATUS= says so")
            time.sleep(10)
            # One line for the state change, at warning; no request-level
            # "transient" line once it is known.
            log = g.d.log().splitlines()
            said = [i for i, l in enumerate(log)
                    if " warning: cannot reach Exchange at " in l]
            self.assertEqual(len(said), 1, "\n".join(log))
            self.assertEqual([l for l in log[said[0]:]
                              if re.search(r" (info|warning): .*transient",
                                           l)], [])

            # Exchange comes back on the same port (its subscriptions
            # lost, like a restarted server).
            g.sim = Simulator(generate=n, minute_seconds=60,
                              heartbeat_seconds=2, version="Exchange2016",
                              listen="127.0.0.1:%d" % port).__enter__()
            wait_for(lambda: g.status()["healthy"], 30, "healthy again")
            g.wait_state("streaming", timeout=120)
            self.assertEqual(len([l for l in g.d.log().splitlines()
                                  if "notice: Exchange at %s reachable again"
                                  % url in l]), 1)
            g.assert_no_violations(self)

    def test_connect_timeout(self):
        """A server that never completes the TCP handshake: named within
        twice the connect timeout, with curl's reason."""
        srv = socket.socket()
        srv.bind(("127.0.0.1", 0))
        srv.listen(0)
        port = srv.getsockname()[1]
        filler = socket.socket()
        filler.connect(("127.0.0.1", port))	# the queue is now full
        try:
            with GatewayRun(generated(5), sim={"generate": 5}, start=False,
                            sections={"exchange": {
                                "connect_timeout": "2s"}}) as g:
                url = "http://127.0.0.1:%d/EWS/Exchange.asmx" % port
                with open(g.d.conf_path) as f:
                    text = f.read()
                g.d.write_config(text.replace(g.sim.ews_url, url))
                t0 = time.monotonic()
                g.d.start()
                st = wait_for(lambda: (lambda s: s if not s["healthy"]
                                       else None)(g.status()), 10,
                              "unhealthy")
                self.assertLess(time.monotonic() - t0, 4.5)
                p = [p for p in st["problems"]
                     if p.startswith("cannot reach")]
                self.assertRegex(p[0], r"^cannot reach Exchange at %s: .*"
                                 r"(Timeout was reached|[Tt]imed out)"
                                 % re.escape(url))
        finally:
            filler.close()
            srv.close()


if __name__ == "__main__":
    unittest.main(verbosity=2)
