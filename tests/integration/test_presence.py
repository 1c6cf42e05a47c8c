"""Calendar to presence through the real daemon and the simulator:
meetings created, moved, back to back, cancelled, private, tentative,
and automatic replies switched produce exactly the expected sequence in
the file sink's change log, with since/until on the meeting boundaries."""
import json
import os
import sys
import time
import unittest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from ewsgwsim import GatewayRun, generated, iso  # noqa: E402
from ewsgwtest import wait_for  # noqa: E402


def seq(rows):
    return [(r["presence"], r["activity"]) for r in rows]


class Presence(unittest.TestCase):
    def test_calendar_sequences(self):
        mbs = generated(7)
        A, B, C, D, E, F, G = mbs
        with GatewayRun(mbs, sim={"generate": 7}) as g:
            g.wait_state("streaming")
            for m in mbs:
                g.wait_changes(m, 1)
                self.assertEqual(seq(g.changes(m)), [("available", None)])
                self.assertEqual(g.changes(m)[0]["previous"], "unknown")
            t0 = int(time.time()) + 4
            sim = g.sim
            # A: one meeting a few seconds ahead.
            sim.add_item(A, {"subject": "1:1", "start": iso(t0 + 2),
                             "end": iso(t0 + 5)})
            # B: back to back, one busy period.
            sim.add_item(B, {"subject": "a", "start": iso(t0 + 2),
                             "end": iso(t0 + 4)})
            sim.add_item(B, {"subject": "b", "start": iso(t0 + 4),
                             "end": iso(t0 + 7)})
            # C: moved earlier.
            c = sim.add_item(C, {"subject": "moved", "start": iso(t0 + 60),
                                 "end": iso(t0 + 90)})
            st, _ = sim.control("PATCH", "/mailboxes/%s/items/%s" % (C, c["id"]),
                                {"start": iso(t0 + 3), "end": iso(t0 + 6)})
            self.assertEqual(st, 200)
            # D: cancelled (deleted) before it starts.
            d = sim.add_item(D, {"subject": "gone", "start": iso(t0 + 3),
                                 "end": iso(t0 + 6)})
            # F: a private meeting now.
            sim.add_item(F, {"subject": "Secret doctor visit",
                             "start": iso(t0 - 60), "end": iso(t0 + 3600),
                             "sensitivity": "Private"})
            # G: tentative now (tentative = busy by default).
            sim.add_item(G, {"subject": "maybe", "start": iso(t0 - 60),
                             "end": iso(t0 + 3600), "freebusy": "Tentative"})
            time.sleep(1)
            st, _ = sim.control("DELETE", "/mailboxes/%s/items/%s" % (D, d["id"]))
            self.assertEqual(st, 200)

            rows = g.wait_changes(A, 3)
            self.assertEqual(seq(rows), [("available", None),
                                         ("busy", "meeting"),
                                         ("available", None)])
            self.assertEqual(rows[1]["since"], iso(t0 + 2))
            self.assertEqual(rows[1]["until"], iso(t0 + 5))
            self.assertEqual(rows[2]["since"], iso(t0 + 5))
            self.assertEqual(rows[1]["source"], "timer")

            rows = g.wait_changes(B, 3)
            self.assertEqual(seq(rows), [("available", None),
                                         ("busy", "meeting"),
                                         ("available", None)])
            self.assertEqual((rows[1]["since"], rows[1]["until"]),
                             (iso(t0 + 2), iso(t0 + 7)))

            rows = g.wait_changes(C, 3)
            self.assertEqual(seq(rows), [("available", None),
                                         ("busy", "meeting"),
                                         ("available", None)])
            self.assertEqual(rows[1]["since"], iso(t0 + 3))

            rows = g.wait_changes(F, 2)
            self.assertEqual(rows[1]["presence"], "busy")
            rows = g.wait_changes(G, 2)
            self.assertEqual(rows[1]["presence"], "busy")

            # E: automatic replies on, then off again.
            sim.control("PUT", "/mailboxes/%s/oof" % E, {"state": "Enabled"})
            self.assertTrue(g.d.request("resync " + E)["ok"])
            rows = g.wait_changes(E, 2)
            self.assertEqual(seq(rows)[-1], ("away", "out-of-office"))
            sim.control("PUT", "/mailboxes/%s/oof" % E, {"state": "Disabled"})
            g.d.request("resync " + E)
            rows = g.wait_changes(E, 3)
            self.assertEqual(seq(rows)[-1], ("available", None))

            time.sleep(max(0, t0 + 8 - time.time()))
            # D never went busy: the meeting was removed in time.
            self.assertEqual(seq(g.changes(D)), [("available", None)])
            # The private subject is nowhere: sink, state file, status, log.
            with open(g.d.path("changes.jsonl")) as f:
                self.assertNotIn("Secret", f.read())
            with open(g.d.path("state.json")) as f:
                state = json.load(f)
            self.assertIn(F, json.dumps(state))
            self.assertNotIn("Secret", json.dumps(state))
            self.assertNotIn("Secret", g.d.request_raw("mailbox " + F))
            self.assertNotIn("Secret", g.d.log())
            g.assert_each_change_once(self)
            g.assert_no_violations(self)

    def test_calendar_view_larger_than_find_count_limit(self):
        """EWSFindCountLimit 2 and five meetings ahead: the calendar is
        read in pages and the whole horizon is known."""
        mbs = generated(1)
        with GatewayRun(mbs, sim={"generate": 1, "find_count_limit": 2},
                        sections={"throttling": {"find_count_limit": "2"}},
                        start=False) as g:
            now = int(time.time())
            for k in range(5):
                g.sim.add_item(mbs[0], {"subject": "m%d" % k,
                                        "start": iso(now + 3600 * (k + 1)),
                                        "end": iso(now + 3600 * (k + 1) +
                                                   1800)})
            g.d.start()
            g.wait_state("streaming")
            tl = g.mailbox(mbs[0])["timeline"]
            self.assertEqual([e["start"] for e in tl],
                             [iso(now + 3600 * (k + 1)) for k in range(5)])
            st = g.assert_no_violations(self)
            self.assertGreaterEqual(st["requests"]["FindItem"]["NoError"], 3)


if __name__ == "__main__":
    unittest.main(verbosity=2)
