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


if __name__ == "__main__":
    unittest.main(verbosity=2)
