"""What sinks are promised about each change, through the real daemon and
the simulator: seq is unique and increasing per mailbox across restarts
and reloads (a consumer that deduplicates by seq loses nothing), a
mailbox removed by a reload leaves the file sink's state document, a
reload that replaces the file sink keeps the whole document, and
since says when the current state began where the calendar knows it."""
import json
import os
import signal
import sys
import time
import unittest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from ewsgwsim import GatewayRun, generated, iso  # noqa: E402
from ewsgwtest import wait_for  # noqa: E402


class DedupConsumer:
    """Keeps the largest seq seen per mailbox and drops anything not
    larger, as ewsgw-sinks(5) tells consumers to."""

    def __init__(self):
        self.last = {}
        self.accepted = []
        self.dropped = []

    def feed(self, row):
        if row["seq"] <= self.last.get(row["mailbox"], -1):
            self.dropped.append(row)
            return
        self.last[row["mailbox"]] = row["seq"]
        self.accepted.append(row)


def state_doc(g):
    try:
        with open(g.d.path("state.json")) as f:
            return json.load(f)["mailboxes"]
    except (OSError, ValueError):
        return None


def set_mailboxes(g, mbs):
    with open(g.d.path("mailboxes.txt"), "w") as f:
        f.write("\n".join(mbs) + "\n")
    g.d.signal(signal.SIGHUP)


class Seq(unittest.TestCase):
    def test_seq_across_restarts_and_reloads(self):
        mbs = generated(8)
        with GatewayRun(mbs[:5], sim={"generate": 8},
                        sections={"daemon": {"state_directory": "."}}) as g:
            statedir = g.d.dir
            g.wait_state("streaming")
            for m in mbs[:5]:
                g.wait_changes(m, 1)
            now = time.time()
            g.sim.add_item(mbs[0], {"subject": "a", "start": iso(now - 60),
                                    "end": iso(now + 3600)})
            g.wait_changes(mbs[0], 2)

            # A restart publishes every mailbox again (from "unknown").
            self.assertEqual(g.d.stop(), 0)
            g.d.start()
            for m in mbs[:5]:
                g.wait_changes(m, 2 if m != mbs[0] else 3)

            # A reload adds two and removes one ...
            set_mailboxes(g, mbs[1:7])
            for m in mbs[5:7]:
                g.wait_changes(m, 1)
            wait_for(lambda: (lambda d: d is not None and mbs[0] not in d
                              and all(m in d for m in mbs[1:7]))(
                state_doc(g)), 30, "removed mailbox out of the state file")
            # ... and another adds it back: it starts over above before.
            set_mailboxes(g, mbs[0:7])
            g.wait_changes(mbs[0], 4)
            wait_for(lambda: mbs[0] in (state_doc(g) or {}), 30,
                     "re-added mailbox in the state file")
            g.sim.add_item(mbs[6], {"subject": "b", "start": iso(now - 60),
                                    "end": iso(now + 3600)})
            g.wait_changes(mbs[6], 2)

            rows = g.changes()
            c = DedupConsumer()
            for r in rows:
                c.feed(r)
            # Nothing real was taken for a duplicate ...
            self.assertEqual(c.dropped, [])
            self.assertEqual(len(c.accepted), len(rows))
            seqs = [r["seq"] for r in rows]
            self.assertEqual(len(set(seqs)), len(seqs), seqs)
            self.assertTrue(all(s < 2 ** 53 for s in seqs), seqs)
            # ... and every redelivery is recognised as one.
            for r in rows:
                c.feed(dict(r))
            self.assertEqual(len(c.dropped), len(rows))
            self.assertEqual(len(c.accepted), len(rows))
            # Two runs, one reserved range each.
            with open(os.path.join(statedir, "seq")) as f:
                reserved = int(f.read())
            self.assertGreater(reserved, max(seqs))
            self.assertLess(reserved, max(seqs) + 2 * (1 << 20) + 1)
            g.assert_no_violations(self)

    def test_unwritable_state_directory_fails_start(self):
        with GatewayRun(generated(1), sim={"generate": 1}, start=False,
                        sections={"daemon": {"state_directory":
                                             "/nonexistent/ewsgw"}}) as g:
            g.d.start(wait_ready=False)
            rc = g.d.proc.wait(30)
            self.assertNotEqual(rc, 0)
            self.assertIn("state directory /nonexistent/ewsgw", g.d.log())


class ReplacedFileSink(unittest.TestCase):
    def test_reload_that_replaces_the_file_sink_keeps_the_document(self):
        """A changed [sink file] section (here its interval) gets a new
        sink: its next write still holds every mailbox, not only the one
        that changed since, and the change log gets no replay."""
        mbs = generated(4)
        with GatewayRun(mbs, sim={"generate": 4}) as g:
            g.wait_state("streaming")
            for m in mbs:
                g.wait_changes(m, 1)
            wait_for(lambda: (lambda d: d is not None and
                              all(m in d for m in mbs))(state_doc(g)),
                     30, "every mailbox in the state file")
            g.rewrite_config({"sink file": {"interval": "2s"}})
            g.d.signal(signal.SIGHUP)
            wait_for(lambda: g.status()["reloads"] == 1, 30, "reload")
            now = time.time()
            g.sim.add_item(mbs[0], {"subject": "a", "start": iso(now - 60),
                                    "end": iso(now + 3600)})
            g.wait_changes(mbs[0], 2)
            doc = wait_for(lambda: (lambda d: d if d is not None and
                                    d.get(mbs[0], {}).get("presence") ==
                                    "busy" else None)(state_doc(g)),
                           30, "the change in the new sink's document")
            self.assertEqual(sorted(doc), sorted(mbs))
            for m in mbs[1:]:
                self.assertEqual(len(g.changes(m)), 1, m)
            self.assertIn("sink file: reconfigured", g.d.log())
            g.assert_no_violations(self)


class Since(unittest.TestCase):
    def test_since_at_start_up_from_the_calendar(self):
        mbs = generated(4)
        with GatewayRun(mbs, sim={"generate": 4}, start=False) as g:
            now = int(time.time())
            # A meeting under way for half an hour.
            g.sim.add_item(mbs[0], {"subject": "m", "start": iso(now - 1800),
                                    "end": iso(now + 1800)})
            # Back-to-back meetings (the first ended within lookback):
            # busy since the first began.
            g.sim.add_item(mbs[1], {"subject": "1", "start": iso(now - 3000),
                                    "end": iso(now - 120)})
            g.sim.add_item(mbs[1], {"subject": "2", "start": iso(now - 120),
                                    "end": iso(now + 600)})
            # Out of office since an hour ago, until tomorrow.
            st, _ = g.sim.control("PUT", "/mailboxes/%s/oof" % mbs[2],
                                  {"state": "Scheduled",
                                   "start": iso(now - 3600),
                                   "end": iso(now + 86400)})
            self.assertEqual(st, 200)
            # Free now; the last meeting ended two minutes ago.
            g.sim.add_item(mbs[3], {"subject": "x", "start": iso(now - 1200),
                                    "end": iso(now - 120)})
            g.d.start()
            first = {m: g.wait_changes(m, 1)[0] for m in mbs}
            self.assertEqual((first[mbs[0]]["presence"],
                              first[mbs[0]]["since"]),
                             ("busy", iso(now - 1800)))
            self.assertEqual(first[mbs[0]]["source"], "startup")
            self.assertEqual((first[mbs[1]]["presence"],
                              first[mbs[1]]["since"]),
                             ("busy", iso(now - 3000)))
            self.assertEqual((first[mbs[2]]["presence"],
                              first[mbs[2]]["activity"],
                              first[mbs[2]]["since"]),
                             ("away", "out-of-office", iso(now - 3600)))
            self.assertEqual((first[mbs[3]]["presence"],
                              first[mbs[3]]["since"]),
                             ("available", iso(now - 120)))
            wait_for(lambda: (state_doc(g) or {}).get(mbs[0], {}).get(
                "since") == iso(now - 1800), 30, "since in the state file")


if __name__ == "__main__":
    unittest.main(verbosity=2)
