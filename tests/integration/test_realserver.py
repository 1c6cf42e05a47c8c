"""The real daemon against a server of the simulator's realserver profile:
its own namespace prefixes, no XML declaration (one before the first
envelope of a stream), text/xml without charset, no watermarks, a status
envelope at a fixed cadence, a notification for every subscription in
every envelope, ConnectionStatus Closed twice, nine fractional digits,
duplicate time zone elements and Detailed free/busy without
MergedFreeBusy.  Presence must come out exactly as from Exchange, in
streaming and in poll mode, and no stream may be taken for broken."""
import os
import sys
import time
import unittest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from ewsgwsim import GatewayRun, generated, iso  # noqa: E402
from ewsgwtest import wait_for  # noqa: E402


def seq(rows):
    return [(r["presence"], r["activity"]) for r in rows]


class RealServer(unittest.TestCase):
    def test_streaming(self):
        mbs = generated(3)
        a, b, c = mbs
        # ConnectionTimeout of one (2 s) minute: the stream ends with two
        # Closed envelopes several times during the test.
        with GatewayRun(mbs, sim={"generate": 3, "profile": "realserver",
                                  "minute_seconds": 2, "heartbeat_seconds": 1},
                        sections={"throttling": {"connection_timeout": "1"}}) as g:
            g.wait_state("streaming")
            for m in mbs:
                g.wait_changes(m, 1)
            t0 = int(time.time()) + 3
            g.sim.add_item(a, {"subject": "x", "start": iso(t0), "end": iso(t0 + 3)})
            g.sim.add_item(b, {"subject": "y", "start": iso(t0 - 60), "end": iso(t0 + 3600),
                               "freebusy": "Tentative"})
            rows = g.wait_changes(a, 3)
            self.assertEqual(seq(rows), [("available", None), ("busy", "meeting"),
                                         ("available", None)])
            self.assertEqual((rows[1]["since"], rows[1]["until"]), (iso(t0), iso(t0 + 3)))
            self.assertEqual(seq(g.wait_changes(b, 2))[-1], ("busy", "tentative"))
            # several stream ends (each Closed twice) went by; still streaming
            wait_for(lambda: g.sim.stats()["requests"].get("GetStreamingEvents", {})
                     .get("NoError", 0) >= 3, 20, "three GetStreamingEvents")
            # status envelopes every second, each with a StatusEvent
            # notification for every subscription: none is a change to read
            reads = g.sim.stats()["requests"].get("FindItem", {})
            time.sleep(3.5)
            self.assertEqual(g.sim.stats()["requests"].get("FindItem", {}), reads)
            g.sim.add_item(c, {"subject": "z", "start": iso(time.time() - 60),
                               "end": iso(time.time() + 3600)})
            self.assertEqual(seq(g.wait_changes(c, 2))[-1], ("busy", "meeting"))
            self.assertEqual(g.states().get("streaming"), 3)
            log = g.d.log()
            self.assertNotIn("unusable stream", log)
            self.assertNotIn("BadStream", log)
            self.assertNotIn("IdleTimeout", log)
            # automatic replies (nine fractional digits in Duration)
            g.sim.control("PUT", "/mailboxes/%s/oof" % a, {"state": "Enabled"})
            self.assertTrue(g.d.request("resync " + a)["ok"])
            self.assertEqual(seq(g.wait_changes(a, 4))[-1], ("away", "out-of-office"))
            g.assert_each_change_once(self)
            g.assert_no_violations(self)

    def test_poll_mode(self):
        mbs = generated(2)
        with GatewayRun(mbs, sim={"generate": 2, "profile": "realserver"},
                        sections={"exchange": {"mode": "poll"},
                                  "throttling": {"poll_interval": "2s"}}) as g:
            g.wait_state("polling")
            g.sim.add_item(mbs[0], {"subject": "p", "start": iso(time.time() - 60),
                                    "end": iso(time.time() + 3600), "freebusy": "OOF"})
            rows = g.wait_changes(mbs[0], 2)
            self.assertEqual(seq(rows)[-1], ("away", "out-of-office"))
            self.assertEqual(rows[-1]["source"], "poll")
            self.assertEqual(seq(g.changes(mbs[1])), [("available", None)])
            g.assert_no_violations(self)


if __name__ == "__main__":
    unittest.main(verbosity=2)
