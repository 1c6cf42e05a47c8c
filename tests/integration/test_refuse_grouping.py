"""A server that refuses grouping (the simulator's refuse-grouping
profile) accepts a subscription only on a stream opened by its owner:
a second mailbox's id on a stream is answered ErrorInvalidSubscription
and the stream is closed.  The daemon must see this once, say so in
the log and the status, move every mailbox to a stream of its own
(at most [throttling] ungrouped_streams; the rest polled, their
subscriptions released) without subscribing again, keep presence
right, and release every subscription it created at stop."""
import os
import sys
import time
import unittest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from ewsgwsim import GatewayRun, generated, iso  # noqa: E402
from ewsgwtest import wait_for  # noqa: E402

N = 6


def streamed(sim):
    """{mailbox: number of streams carrying it} and the impersonated
    mailbox of every stream that carries a subscription."""
    subs = {s["id"]: s for s in sim.control("GET", "/subscriptions")[1]["subscriptions"]}
    per, owners = {}, []
    for st in sim.control("GET", "/streams")[1]["streams"]:
        mbs = {subs[i]["mailbox"] for i in st["subscription_ids"] if i in subs}
        for mb in mbs:
            per[mb] = per.get(mb, 0) + 1
        if mbs:
            owners.append((st["impersonated"], mbs))
    return per, owners


def gateway(mbs, throttling=None):
    t = {"poll_interval": "2s"}
    t.update(throttling or {})
    return GatewayRun(mbs, sim={"generate": len(mbs), "profile": "refuse-grouping"},
                      sections={"throttling": t})


class RefuseGrouping(unittest.TestCase):
    def released_at_stop(self, g):
        self.assertEqual(g.d.stop(), 0)
        st = g.sim.stats()
        subs = st["subscriptions"]
        self.assertEqual(subs["created"], subs["unsubscribed"] + subs["lost"] + subs["expired"], subs)
        self.assertEqual(g.sim.control("GET", "/subscriptions")[1]["subscriptions"], [])
        self.assertEqual(st["grouping"]["closed_by_second_stream"], 0, st["grouping"])
        return st

    def test_one_stream_per_mailbox(self):
        mbs = generated(N)
        with gateway(mbs) as g:
            g.wait_state("streaming")
            for m in mbs:
                g.wait_changes(m, 1)
            # the grouped stream really was refused
            st = g.sim.stats()
            gr = st["grouping"]
            self.assertGreaterEqual(gr["closed_by_foreign_id"], 1, gr)
            self.assertGreaterEqual(gr["refused_ids"], N - 1, gr)
            # each mailbox on exactly one stream, opened as its owner
            per, owners = wait_for(lambda: (lambda r: r if len(r[0]) == N else None)(
                streamed(g.sim)), 30, "every mailbox streamed")
            self.assertEqual(per, {m: 1 for m in mbs})
            for who, carried in owners:
                self.assertEqual(carried, {who})
            # no resubscribe loop: one subscription per mailbox
            self.assertEqual(st["subscriptions"]["created"], N, st["subscriptions"])
            status = g.status()
            self.assertTrue(status["budget"]["streaming_connections"]["grouping_refused"])
            self.assertTrue(any("refuses grouped streams" in p for p in status["problems"]),
                            status["problems"])
            self.assertEqual(g.d.log().count("refuses several mailboxes' subscriptions"), 1)
            # presence still flips, for a mailbox that was not an anchor
            m = mbs[-1]
            t0 = time.time()
            g.sim.add_item(m, {"subject": "x", "start": iso(t0 - 60), "end": iso(t0 + 3600)})
            rows = g.wait_changes(m, 2)
            self.assertEqual((rows[-1]["presence"], rows[-1]["activity"]), ("busy", "meeting"))
            self.assertEqual(rows[-1]["source"], "calendar")
            self.assertGreaterEqual(g.status()["notifications"], 1)
            self.assertEqual(g.sim.stats()["grouping"]["closed_by_foreign_id"], gr["closed_by_foreign_id"])
            g.assert_each_change_once(self)
            g.assert_no_violations(self)
            self.released_at_stop(g)

    def test_beyond_the_connection_budget_polled(self):
        mbs = generated(N)
        with gateway(mbs, {"ungrouped_streams": "3"}) as g:
            wait_for(lambda: g.states() == {"streaming": 3, "polling": 3}, 60,
                     "3 streaming, 3 polling")
            st = g.sim.stats()
            self.assertGreaterEqual(st["grouping"]["closed_by_foreign_id"], 1)
            self.assertEqual(st["subscriptions"]["created"], N, st["subscriptions"])
            # the polled mailboxes' subscriptions were released
            self.assertEqual(st["subscriptions"]["unsubscribed"], N - 3, st["subscriptions"])
            polled = [m for m in mbs if g.mailbox(m)["mode"] == "poll"]
            self.assertEqual(len(polled), 3)
            t0 = time.time()
            for m in (mbs[0], polled[-1]):
                g.sim.add_item(m, {"subject": "x", "start": iso(t0 - 60), "end": iso(t0 + 3600)})
            for m in (mbs[0], polled[-1]):
                rows = wait_for(lambda: (lambda c: c if c and c[-1]["presence"] == "busy" else None)(
                    g.changes(m)), 30, "%s busy" % m)
                self.assertEqual(rows[-1]["source"], "poll" if m in polled else "calendar")
            g.assert_no_violations(self)
            self.released_at_stop(g)

    def test_reload_removes_a_mailbox(self):
        """On such a server an Unsubscribe closes the whole stream its
        subscription is on: a mailbox a reload removes takes only its
        own stream with it; every other stream stays open and nothing
        is subscribed again."""
        mbs = generated(N)
        with gateway(mbs) as g:
            g.wait_state("streaming")
            for m in mbs:
                g.wait_changes(m, 1)
            wait_for(lambda: len(streamed(g.sim)[0]) == N or None, 30, "every mailbox streamed")
            before = {s["impersonated"]: (s["connection"], s["opened"])
                      for s in g.sim.control("GET", "/streams")[1]["streams"]
                      if s["subscription_ids"]}
            gone, kept = mbs[1], [m for m in mbs if m != mbs[1]]
            with open(g.d.path("mailboxes.txt"), "w") as f:
                f.write("".join(m + "\n" for m in kept))
            self.assertTrue(g.d.request("reload")["ok"])
            wait_for(lambda: g.sim.stats()["subscriptions"]["unsubscribed"] == 1 or None, 30,
                     "%s unsubscribed" % gone)
            g.wait_state("streaming", len(kept))
            time.sleep(1)  # time enough for a wrongly closed stream to be seen
            per, _ = streamed(g.sim)
            self.assertEqual(per, {m: 1 for m in kept})
            after = {s["impersonated"]: (s["connection"], s["opened"])
                     for s in g.sim.control("GET", "/streams")[1]["streams"]
                     if s["subscription_ids"]}
            self.assertEqual(after, {m: before[m] for m in kept})
            st = g.sim.stats()
            self.assertEqual(st["subscriptions"]["created"], N, st["subscriptions"])
            self.assertLessEqual(st["grouping"]["closed_by_unsubscribe"], 1, st["grouping"])
            # the others' presence still flips
            t0 = time.time()
            g.sim.add_item(kept[-1], {"subject": "x", "start": iso(t0 - 60), "end": iso(t0 + 3600)})
            rows = g.wait_changes(kept[-1], 2)
            self.assertEqual(rows[-1]["presence"], "busy")
            g.assert_no_violations(self)
            self.released_at_stop(g)


if __name__ == "__main__":
    unittest.main(verbosity=2)
