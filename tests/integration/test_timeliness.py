"""Presence as fast as Exchange allows: the first calendar change of a
burst is read at once (no fixed debounce delay), the changes that follow
within the window are read once more together; automatic replies, which
Exchange never notifies, are read in a continuous cycle that spends a
bounded share of the concurrency budget.  Ordering and coalescing are
asserted through the simulator's request counts, not through timing."""
import os
import sys
import time
import unittest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from ewsgwsim import GatewayRun, generated, iso  # noqa: E402
from ewsgwtest import wait_for  # noqa: E402


def count(stats, op):
    return sum(stats["requests"].get(op, {}).values())


class LeadingEdge(unittest.TestCase):
    def test_first_change_at_once_burst_in_one_trailing_read(self):
        mbs = generated(2)
        a = mbs[0]
        # A window far longer than the test waits for anything: a read
        # that waited for it would never be seen.
        with GatewayRun(mbs, sim={"generate": 2},
                        sections={"presence": {"debounce": "8s"}}) as g:
            g.wait_state("streaming")
            for m in mbs:
                g.wait_changes(m, 1)
            c0 = count(g.sim.stats(), "FindItem")
            now = time.time()
            first = g.sim.add_item(a, {"subject": "now", "start": iso(now - 60),
                                       "end": iso(now + 3600)})
            rows = g.wait_changes(a, 2, timeout=6)
            self.assertEqual((rows[-1]["presence"], rows[-1]["source"]),
                             ("busy", "calendar"))
            self.assertEqual(count(g.sim.stats(), "FindItem"), c0 + 1)
            # A burst within the window: no read for any of it yet, one
            # trailing read due at the window's end.
            second = g.sim.add_item(a, {"subject": "leave", "start": iso(now - 60),
                                        "end": iso(now + 7200), "freebusy": "OOF"})
            g.sim.control("DELETE", "/mailboxes/%s/items/%s" % (a, first["id"]))
            g.sim.control("PATCH", "/mailboxes/%s/items/%s" % (a, second["id"]),
                          {"subject": "on leave"})
            wait_for(lambda: g.mailbox(a).get("read_due"), 6,
                     "a trailing read due")
            self.assertEqual(count(g.sim.stats(), "FindItem"), c0 + 1)
            self.assertEqual(len(g.changes(a)), 2)
            # The trailing read sees the whole burst, in one request.
            rows = g.wait_changes(a, 3, timeout=30)
            self.assertEqual((rows[-1]["presence"], rows[-1]["activity"]),
                             ("away", "out-of-office"))
            self.assertEqual(count(g.sim.stats(), "FindItem"), c0 + 2)
            self.assertIsNone(g.mailbox(a).get("read_due"))
            # Nothing more to read: no further request.
            time.sleep(1)
            self.assertEqual(count(g.sim.stats(), "FindItem"), c0 + 2)
            self.assertEqual(len(g.changes(mbs[1])), 1)
            g.assert_each_change_once(self)
            g.assert_no_violations(self)


class OofCycle(unittest.TestCase):
    def test_automatic_replies_within_a_cycle_and_its_share(self):
        n = 24
        mbs = generated(n)
        a = mbs[0]
        # 4 % of max_concurrency 27 is one request at a time; every
        # request takes 100 ms at the simulator, so a cycle over 24
        # mailboxes cannot take less than 2.4 s if the share holds.
        with GatewayRun(mbs, sim={"generate": n, "latency_ms": 100},
                        sections={"presence": {"oof_share": "4",
                                               "oof_interval": "1s"},
                                  "throttling": {"max_concurrency": "27"}}) as g:
            g.wait_state("streaming")
            for m in mbs:
                g.wait_changes(m, 1)
            oof = g.status()["oof"]
            self.assertIn(oof["state"], ("running", "waiting"))
            self.assertEqual((oof["share_percent"], oof["slots"],
                              oof["concurrency_limit"], oof["mailboxes"]),
                             (4, 1, 27, n))
            # Two whole cycles from here: each reads every mailbox,
            # never more than the share at once.
            g.sim.reset_stats()
            c0 = g.status()["oof"]["cycles"]
            wait_for(lambda: g.status()["oof"]["cycles"] >= c0 + 2, 90,
                     "two automatic-replies cycles")
            st = g.sim.stats()
            self.assertGreaterEqual(count(st, "GetUserOofSettings"), n)
            self.assertEqual(st["in_progress"]["GetUserOofSettings"]["peak"], 1)
            self.assertNotIn("FindItem", st["requests"])
            oof = g.status()["oof"]
            self.assertGreaterEqual(oof["cycle_s"], n * 0.1)
            self.assertEqual(oof["errors"], 0)
            metrics = g.d.request_raw("metrics", until_eof_marker=True)
            self.assertIn("ewsgw_oof_slots 1\n", metrics)
            self.assertIn("ewsgw_oof_cycles_total ", metrics)
            self.assertIn("ewsgw_oof_cycle_seconds ", metrics)
            text = g.d.ctl("status").stdout
            self.assertRegex(text, r"oof cycle: +cycle \d+s over %d mailboxes, "
                             r"1 of 27 requests \(4%%\)" % n)

            # Automatic replies raise no notification: the cycle finds
            # them, on and off again.
            first = g.changes(a)[-1]
            g.sim.control("PUT", "/mailboxes/%s/oof" % a, {"state": "Enabled"})
            rows = g.wait_changes(a, 2, timeout=60)
            self.assertEqual((rows[-1]["presence"], rows[-1]["activity"],
                              rows[-1]["source"]), ("away", "out-of-office", "oof"))
            g.sim.control("PUT", "/mailboxes/%s/oof" % a, {"state": "Disabled"})
            rows = g.wait_changes(a, 3, timeout=60)
            self.assertEqual((rows[-1]["presence"], rows[-1]["source"]),
                             (first["presence"], "oof"))
            st = g.sim.stats()
            self.assertEqual((st["oof_changes"], st["events_raised"]), (2, 0))
            self.assertEqual(st["in_progress"]["GetUserOofSettings"]["peak"], 1)
            for m in mbs[1:]:
                self.assertEqual(len(g.changes(m)), 1, m)
            g.assert_each_change_once(self)
            g.assert_no_violations(self)

    def test_scheduled_replies_flip_on_their_own_timers(self):
        """Scheduled automatic replies are read once; their start and end
        are presence boundaries, so they flip on time without another
        read (the cycle is off here)."""
        mbs = generated(2)
        a = mbs[0]
        with GatewayRun(mbs, sim={"generate": 2},
                        sections={"presence": {"oof_share": "0"}}) as g:
            g.wait_state("streaming")
            for m in mbs:
                g.wait_changes(m, 1)
            r0 = count(g.sim.stats(), "GetUserOofSettings")
            t0 = int(time.time()) + 4
            st, _ = g.sim.control("PUT", "/mailboxes/%s/oof" % a,
                                  {"state": "Scheduled", "start": iso(t0), "end": iso(t0 + 3)})
            self.assertEqual(st, 200)
            self.assertTrue(g.d.request("resync " + a)["ok"])
            wait_for(lambda: count(g.sim.stats(), "GetUserOofSettings") > r0, 10,
                     "the settings read")
            r1 = count(g.sim.stats(), "GetUserOofSettings")
            self.assertLess(time.time(), t0, "the read came after the start")
            rows = g.wait_changes(a, 3, timeout=30)
            self.assertEqual([(r["presence"], r["activity"]) for r in rows],
                             [("available", None), ("away", "out-of-office"),
                              ("available", None)])
            self.assertEqual(rows[1]["since"], iso(t0))
            self.assertEqual(rows[2]["since"], iso(t0 + 3))
            self.assertEqual(count(g.sim.stats(), "GetUserOofSettings"), r1)
            self.assertEqual(len(g.changes(mbs[1])), 1)
            g.assert_each_change_once(self)
            g.assert_no_violations(self)

    def test_share_zero_turns_the_cycle_off(self):
        mbs = generated(3)
        with GatewayRun(mbs, sim={"generate": 3},
                        sections={"presence": {"oof_interval": "1s"},
                                  "throttling": {"max_concurrency": "27"}}) as g:
            g.wait_state("streaming")
            oof = g.status()["oof"]
            # The default share: 10 % of 27.
            self.assertEqual((oof["share_percent"], oof["slots"]), (10, 2))
            wait_for(lambda: g.status()["oof"]["reads"] >= 3, 30,
                     "the cycle reads")
            g.rewrite_config({"presence": {"oof_share": "0"}})
            self.assertTrue(g.d.request("reload")["ok"])
            oof = g.status()["oof"]
            self.assertEqual((oof["state"], oof["slots"]), ("off", 0))
            g.sim.reset_stats()
            time.sleep(2.5)
            self.assertNotIn("GetUserOofSettings", g.sim.stats()["requests"])
            self.assertIn("oof cycle:      off", g.d.ctl("status").stdout)
            g.assert_no_violations(self)


if __name__ == "__main__":
    unittest.main(verbosity=2)
