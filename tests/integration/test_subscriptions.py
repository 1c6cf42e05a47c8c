"""Subscription manager against the simulator: every mailbox streams
inside the throttling budgets, through drops, restarts, back-off,
ConnectionTimeout expiry, refused impersonation, password expiry, a
subscription budget smaller than the mailbox count, and both charging
models.  Each run ends with every mailbox served, correct presence,
zero violations in the simulator's statistics, and no publication lost
or duplicated."""
import os
import signal
import sys
import time
import unittest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from ewsgwsim import GatewayRun, SAMPLE, generated, iso  # noqa: E402
from ewsgwtest import wait_for  # noqa: E402


def meeting_now_plus(sim, mb, start_s, end_s, **kw):
    now = time.time()
    item = {"subject": "Planning", "start": iso(now + start_s),
            "end": iso(now + end_s)}
    item.update(kw)
    return sim.add_item(mb, item)


class Streaming(unittest.TestCase):
    def test_1000_mailboxes_service_account_budget(self):
        """1,000 mailboxes, EWSMaxConcurrency 10, 200 per connection."""
        mbs = generated(1000)
        with GatewayRun(mbs, sim={"generate": 1000, "version":
                                  "Exchange2010_SP1", "max_concurrency": 10},
                        sections={"exchange": {"version": "Exchange2010_SP1"},
                                  "throttling": {
                                      "max_concurrency": "10",
                                      "subscriptions_per_connection": "200",
                                      "charging": "service-account"}}) as g:
            g.wait_state("streaming", timeout=240)
            st = g.status()
            self.assertEqual(st["mailboxes"]["by_presence"].get("available"),
                             1000, st)
            conns = g.d.request("connections")["connections"]
            self.assertEqual(len(conns), 5)
            self.assertTrue(all(c["members"] == 200 for c in conns), conns)
            wait_for(lambda: all(c["state"] == "open" for c in
                                 g.d.request("connections")["connections"]),
                     30, "5 open connections")
            stats = g.assert_no_violations(self)
            self.assertLessEqual(stats["concurrency"]["svc-ewsgw"]["peak"], 10)
            self.assertEqual(stats["live_subscriptions"]["total"], 1000)
            aff = stats["affinity"]
            self.assertEqual(aff["gse_without_anchor"], 0, aff)
            self.assertGreater(aff["gse_with_cookie"], 0, aff)
            # A meeting now: the stream carries it, presence follows.
            meeting_now_plus(g.sim, mbs[517], -60, 3600)
            rows = g.wait_changes(mbs[517], 2)
            self.assertEqual(rows[-1]["presence"], "busy")
            self.assertEqual(rows[-1]["source"], "calendar")
            g.assert_each_change_once(self)
            # Orderly stop releases every subscription.
            self.assertEqual(g.d.stop(), 0)
            self.assertEqual(g.sim.stats()["live_subscriptions"]["total"], 0)

    def test_impersonated_charging_10000(self):
        """10,000 mailboxes with max_concurrency 10: Exchange 2013+ charges
        streams to each anchor, so 50 connections fit."""
        n = 10000
        with GatewayRun(generated(n), sim={"generate": n, "version":
                                           "Exchange2016",
                                           "max_concurrency": 10},
                        sections={"throttling": {
                            "max_concurrency": "10",
                            "charging": "impersonated"}}) as g:
            g.wait_state("streaming", timeout=600)
            conns = g.d.request("connections")["connections"]
            self.assertEqual(len(conns), n // 200)
            stats = g.assert_no_violations(self)
            self.assertLessEqual(stats["concurrency"]["svc-ewsgw"]["peak"], 10)


class Faults(unittest.TestCase):
    N = 60

    def run_fault(self, fault=None, action=None, sim=None, sections=None,
                  check=None):
        mbs = generated(self.N)
        simopts = {"generate": self.N}
        simopts.update(sim or {})
        secs = {"throttling": {"max_concurrency": "6",
                               "subscriptions_per_connection": "25",
                               "idle_timeout": "5s"}}
        secs.update(sections or {})
        with GatewayRun(mbs, sim=simopts, sections=secs) as g:
            g.wait_state("streaming")
            if fault is not None:
                g.sim.fault(fault)
            if action is not None:
                action(g)
            # Whatever happened, a new meeting reaches the sink.
            target = mbs[self.N // 2]
            before = len(g.changes(target))
            time.sleep(0.5)
            meeting_now_plus(g.sim, target, -30, 3600)
            rows = g.wait_changes(target, before + 1, timeout=60)
            self.assertEqual(rows[-1]["presence"], "busy")
            g.sim.clear_faults()
            g.wait_state("streaming", timeout=120)
            g.assert_no_violations(self)
            g.assert_each_change_once(self)
            if check is not None:
                check(g)
            return g

    def test_dropped_streams_mid_envelope(self):
        def dropped(g):
            # The simulator cut every open stream (60 mailboxes, 25 a
            # connection: 3), and the daemon saw each of them go.
            n = g.sim.stats()["faults_injected"].get("drop_streams", 0)
            self.assertEqual(n, 3)
            conns = g.d.request("connections")["connections"]
            self.assertEqual(len(conns), 3)
            self.assertGreaterEqual(sum(c["drops"] for c in conns), n)
        self.run_fault({"kind": "drop_streams", "streams": 100},
                       check=dropped)

    def test_simulator_restart_loses_all_subscriptions(self):
        def restart(g):
            g.sim.control("POST", "/restart")
            wait_for(lambda: g.status()["resubscribes"] >= self.N, 60,
                     "every mailbox resubscribed")
        self.run_fault(action=restart)

    def test_server_busy_storm_honours_backoff(self):
        def storm(g):
            g.sim.control("POST", "/restart")
            g.sim.fault({"kind": "server_busy", "backoff_ms": 700,
                         "count": 25})
            g.sim.fault({"kind": "http_status", "status": 503, "count": 10,
                         "operation": "Subscribe"})

        def stormed(g):
            # Every busy answer and every 503 was served, and the daemon
            # counted each busy one against the budget.
            st = g.sim.stats()
            self.assertEqual(st["faults_injected"].get("server_busy"), 25,
                             st["faults_injected"])
            self.assertEqual(st["faults_injected"].get("http_status"), 10,
                             st["faults_injected"])
            self.assertGreaterEqual(g.status()["throttle"]["server_busy"],
                                    25)
        self.run_fault(action=storm, check=stormed)

    def test_connection_timeout_renewal(self):
        """ConnectionTimeout of one (scaled) minute: renewed without gaps."""
        def wait_renewals(g):
            wait_for(lambda: min(c["connects"] for c in
                                 g.d.request("connections")["connections"])
                     >= 3, 60, "three renewals per connection")
        self.run_fault(action=wait_renewals, sim={"minute_seconds": 1},
                       sections={"throttling": {
                           "max_concurrency": "6",
                           "subscriptions_per_connection": "25",
                           "connection_timeout": "1"}})

    def test_missed_events_and_lost_subscriptions(self):
        def lose(g):
            g.sim.fault({"kind": "lose_subscriptions", "fraction": 0.3,
                         "seed": 7})
            g.sim.fault({"kind": "missed_events", "mailbox":
                         generated(self.N)[3]})
            wait_for(lambda: g.status()["resubscribes"] >= 10, 60,
                     "resubscribes")
        self.run_fault(action=lose)

    def test_impersonation_denied_parks_only_that_mailbox(self):
        mbs = ["alice@example.com", "bob@example.com"]
        with GatewayRun(mbs, sim={"directory": SAMPLE},
                        username="svc-limited", password="Limited1!") as g:
            wait_for(lambda: g.mailbox("bob@example.com")["state"] ==
                     "parked", 60, "bob parked")
            bob = g.mailbox("bob@example.com")
            self.assertEqual(bob["error"], "ErrorImpersonateUserDenied")
            wait_for(lambda: g.mailbox("alice@example.com")["state"] ==
                     "streaming", 60, "alice streaming")
            self.assertIn("parked", " ".join(g.status()["problems"]))
            self.assertIn("ErrorImpersonateUserDenied", g.d.log())
            r = g.d.ctl("mailboxes")
            self.assertIn("parked", r.stdout)
            g.assert_no_violations(self)

    def test_password_expiry_then_recovery(self):
        mbs = generated(10)
        with GatewayRun(mbs, sim={"generate": 10}) as g:
            g.wait_state("streaming")
            g.sim.fault({"kind": "password_expires_at",
                         "account": "svc-ewsgw", "at": time.time()})
            g.sim.control("POST", "/restart")
            wait_for(lambda: not g.status()["healthy"], 60,
                     "unhealthy status")
            self.assertTrue(any("authentication" in p
                                for p in g.status()["problems"]))
            wait_for(lambda: any("AUTHENTICATION FAILING" in m
                                 for m in g.d.notify.poll()), 10,
                     "STATUS= says so")
            self.assertEqual(g.d.ctl("status").returncode, 1)
            g.sim.clear_faults()
            g.wait_state("streaming", timeout=120)
            wait_for(lambda: g.status()["healthy"], 30, "healthy again")
            g.assert_no_violations(self)

    def test_subscription_budget_overflow_is_polled(self):
        """Only 40 subscriptions allowed: 20 mailboxes polled, promoted
        when the budget grows at reload."""
        mbs = generated(60)
        with GatewayRun(mbs, sim={"generate": 60, "version":
                                  "Exchange2010_SP1", "max_subscriptions": 40},
                        sections={"exchange": {"version": "Exchange2010_SP1",
                                               },
                                  "throttling": {"max_subscriptions": "40",
                                                 "max_concurrency": "6",
                                                 "poll_interval": "2s",
                                                 "charging":
                                                 "service-account"}}) as g:
            st = wait_for(lambda: (lambda s: s if s.get("streaming") == 40
                                   and s.get("polling") == 20 else None)(
                g.states()), 120, "40 streaming + 20 polling")
            polled = [m for m in g.d.request("mailboxes")["mailboxes"]
                      if m["mode"] == "poll"]
            self.assertEqual(len(polled), 20)
            self.assertEqual(polled[0]["reason"], "subscription budget full")
            # A polled mailbox still gets its presence.
            meeting_now_plus(g.sim, polled[0]["address"], -60, 3600)
            rows = g.wait_changes(polled[0]["address"], 2, timeout=30)
            self.assertEqual(rows[-1]["presence"], "busy")
            self.assertEqual(rows[-1]["source"], "poll")
            # The administrator raises the limit: everyone streams.
            g.sim.control("POST", "/config", {"max_subscriptions": 100})
            with open(g.d.conf_path) as f:
                text = f.read()
            g.d.write_config(text.replace("max_subscriptions = 40",
                                          "max_subscriptions = 100"))
            g.d.signal(signal.SIGHUP)
            g.wait_state("streaming", timeout=120)
            self.assertEqual(g.mailbox(polled[0]["address"])["presence"],
                             "busy")
            g.assert_each_change_once(self)
            g.assert_no_violations(self)

    def test_subscriptions_refused_by_exchange_are_polled(self):
        """Exchange allows 40 subscriptions but the configuration does not
        say so: the 20 Subscribes refused with
        ErrorExceededSubscriptionCount leave their stream groups for
        polling, so the groups hold only mailboxes that stream."""
        mbs = generated(60)
        with GatewayRun(mbs, sim={"generate": 60, "version":
                                  "Exchange2010_SP1", "max_subscriptions": 40},
                        sections={"exchange": {"version": "Exchange2010_SP1"},
                                  "throttling": {
                                      "max_concurrency": "6",
                                      "subscriptions_per_connection": "25",
                                      "poll_interval": "2s",
                                      # Each refusal backs the budget
                                      # off: keep that short here.
                                      "backoff_max": "2s",
                                      "charging": "service-account"}}) as g:
            wait_for(lambda: (lambda s: s if s.get("streaming") == 40
                              and s.get("polling") == 20 else None)(
                g.states()), 120, "40 streaming + 20 polling")
            rows = g.d.request("mailboxes")["mailboxes"]
            polled = [m for m in rows if m["mode"] == "poll"]
            self.assertEqual(len(polled), 20)
            for m in polled:
                self.assertEqual(m["reason"], "subscription refused", m)
                self.assertIsNone(m["connection"], m)
            conns = g.d.request("connections")["connections"]
            self.assertEqual(sum(c["members"] for c in conns), 40, conns)
            streaming = {m["address"] for m in rows if m["mode"] ==
                         "streaming"}
            for c in conns:
                self.assertIn(c["anchor"], streaming, c)
            # The refusals really came from the simulator.
            st = g.sim.stats()
            self.assertEqual(st["violations"], {"subscriptions": 20})
            self.assertEqual(st["requests"]["Subscribe"].get(
                "ErrorExceededSubscriptionCount"), 20, st["requests"])
            # A refused mailbox still gets its presence, by polling.
            g.wait_changes(polled[0]["address"], 1, timeout=30)
            meeting_now_plus(g.sim, polled[0]["address"], -60, 3600)
            rows = g.wait_changes(polled[0]["address"], 2, timeout=30)
            self.assertEqual(rows[-1]["presence"], "busy")
            self.assertEqual(rows[-1]["source"], "poll")

    def test_daemon_restart_resubscribes_within_budget(self):
        """Stop releases every subscription; a new start makes them all
        again without exceeding the budget."""
        mbs = generated(80)
        with GatewayRun(mbs, sim={"generate": 80},
                        sections={"throttling": {"max_concurrency": "4"}}) as g:
            g.wait_state("streaming")
            self.assertEqual(g.d.stop(), 0)
            self.assertEqual(g.sim.stats()["live_subscriptions"]["total"], 0)
            g.d.start()
            g.wait_state("streaming")
            st = g.assert_no_violations(self)
            self.assertEqual(st["live_subscriptions"]["total"], 80)
            self.assertLessEqual(st["concurrency"]["svc-ewsgw"]["peak"], 4)

    def test_silent_stream_is_reopened_without_loss(self):
        """A server that sends no keep-alives: after idle_timeout the
        connection is treated as dead and reopened; nothing is lost."""
        mbs = generated(10)
        with GatewayRun(mbs, sim={"generate": 10, "heartbeat_seconds": 600},
                        sections={"throttling": {"idle_timeout": "2s"}}) as g:
            g.wait_state("streaming")
            wait_for(lambda: g.d.request("connections")["connections"][0][
                "drops"] >= 2, 30, "idle connection reopened twice")
            self.assertIn("no complete message for", g.d.log())
            meeting_now_plus(g.sim, mbs[7], -60, 3600)
            rows = g.wait_changes(mbs[7], 2)
            self.assertEqual(rows[-1]["presence"], "busy")
            g.assert_no_violations(self)

    def test_trickled_comment_does_not_keep_a_stream_alive(self):
        """A stream that keeps sending bytes of one endless comment but
        never a whole envelope is as dead as a silent one: reopened after
        idle_timeout, and the next stream carries the meeting."""
        mbs = generated(10)
        with GatewayRun(mbs, sim={"generate": 10, "heartbeat_seconds": 0.5},
                        sections={"throttling": {"idle_timeout": "2s"}}) as g:
            g.wait_state("streaming")
            g.sim.fault({"kind": "trickle_comment", "delay_ms": 50,
                         "count": 2})
            before = g.d.request("connections")["connections"][0]["drops"]
            # Reopen so the next stream is the trickling one.
            g.sim.fault({"kind": "drop_streams"})
            wait_for(lambda: g.d.request("connections")["connections"][0][
                "drops"] >= before + 3, 40,
                "trickling streams taken as dead twice")
            faults = g.sim.control("GET", "/faults")[1]["faults"]
            hits = [f["hits"] for f in faults
                    if f["kind"] == "trickle_comment"]
            self.assertEqual(hits, [2], faults)
            self.assertIn("no complete message for", g.d.log())
            meeting_now_plus(g.sim, mbs[7], -60, 3600)
            rows = g.wait_changes(mbs[7], 2)
            self.assertEqual(rows[-1]["presence"], "busy")
            g.assert_no_violations(self)


if __name__ == "__main__":
    unittest.main(verbosity=2)
