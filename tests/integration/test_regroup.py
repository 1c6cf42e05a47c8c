"""Periodic re-discovery: with [exchange] autodiscover the daemon asks
Autodiscover again for every mailbox once per autodiscover_interval, a
batch at a time.  A mailbox moved to another server (the simulator's
move: its subscription lost, then a new server and GroupingInformation)
is regrouped: off its old group's stream, subscribed and streamed in a
group of its new server, every other server's group left alone, its
presence still right, and no affinity rule broken."""
import os
import sys
import time
import unittest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from ewsgwsim import GatewayRun, generated, iso  # noqa: E402
from ewsgwtest import wait_for  # noqa: E402

N = 30


def placement(sim):
    """{mailbox: backend of the stream carrying it}, {backend: set of
    (connection, opened) of its streams}; None when a stream mixes
    backends."""
    subs = {s["id"]: s for s in sim.control("GET", "/subscriptions")[1]["subscriptions"]}
    where, streams = {}, {}
    for st in sim.control("GET", "/streams")[1]["streams"]:
        ids = [i for i in st["subscription_ids"] if i in subs]
        backends = {subs[i]["backend"] for i in ids}
        if len(backends) > 1:
            return None, None
        for i in ids:
            where[subs[i]["mailbox"]] = subs[i]["backend"]
        for b in backends:
            streams.setdefault(b, set()).add((st["connection"], st["opened"]))
    return where, streams


def all_placed(sim, what="every mailbox streamed"):
    return wait_for(lambda: (lambda r: r if r[0] and len(r[0]) == N else None)(
        placement(sim)), 30, what)


def gateway():
    return GatewayRun(generated(N), start=False,
                      sim={"generate": N, "affinity_rules": True, "backends": 3},
                      sections={"throttling": {"subscriptions_per_connection": "20"}})


def start(g, exchange):
    """Start with Autodiscover (exchange merged in); every mailbox
    published and streamed: its placement."""
    ex = {"autodiscover": "yes", "autodiscover_url": g.sim.autodiscover_url}
    ex.update(exchange)
    g.rewrite_config({"exchange": ex})
    g.d.start()
    g.wait_state("streaming")
    for m in g.mailboxes:
        g.wait_changes(m, 1)
    return all_placed(g.sim)


class Regroup(unittest.TestCase):
    def test_moved_mailbox_regrouped(self):
        """Found by the periodic re-discovery."""
        self.move({"autodiscover_interval": "2s"}, {})

    def test_move_reported_on_the_stream(self):
        """The stream reports the move (ErrorMailboxMoveInProgress for its
        id): the mailbox is asked again at once, no periodic run needed."""
        self.move({}, {"stream_code": "ErrorMailboxMoveInProgress"})

    def test_move_done_before_resubscribe(self):
        """The move is over before the daemon subscribes again: the lost
        subscription (ErrorSubscriptionNotFound) is enough to subscribe
        it where its own address routes, not through its old group's
        server, and to ask Autodiscover at once."""
        self.move({}, {"duration_s": 0})

    def test_unreported_move_found_by_rediscover(self):
        """Nothing tells the daemon of the move (its stream is not told,
        no periodic run): `ewsgwctl rediscover` asks Autodiscover at once."""
        self.move({"autodiscover_interval": "0s"}, {"duration_s": 0, "stream_code": None},
                  rediscover=True)

    def test_regrouped_subscription_released(self):
        """Autodiscover names another grouping while the subscription
        still works (same server, GroupingInformation changed, no move):
        the mailbox subscribes again in a group of its own grouping, and
        its old subscription is released where it was made, not left to
        expire."""
        with gateway() as g:
            where0, streams0 = start(g, {"autodiscover_interval": "0s"})
            m = g.mailboxes[-1]
            home = where0[m]
            others = {b: v for b, v in streams0.items() if b != home}
            old = [s["id"] for s in g.sim.control("GET", "/subscriptions")[1]["subscriptions"]
                   if s["mailbox"] == m]
            self.assertEqual(len(old), 1)
            st, _ = g.sim.control("PATCH", "/mailboxes/%s/server" % m, {"grouping": "NEWDAG"})
            self.assertEqual(st, 200)
            r = g.d.ctl("--json", "rediscover", m)
            self.assertEqual(r.returncode, 0, r.stdout + r.stderr)
            self.assertIn('"queued":1', r.stdout)

            def alone():
                subs = {s["id"]: s for s in g.sim.control("GET", "/subscriptions")[1]["subscriptions"]}
                for s in g.sim.control("GET", "/streams")[1]["streams"]:
                    ids = [i for i in s["subscription_ids"] if i in subs]
                    if [subs[i]["mailbox"] for i in ids] == [m] and ids[0] not in old:
                        return s
                return None
            wait_for(alone, 30, "%s on a stream of its own" % m)
            subs = [s["id"] for s in g.sim.control("GET", "/subscriptions")[1]["subscriptions"]
                    if s["mailbox"] == m]
            self.assertEqual(len(subs), 1)
            self.assertNotIn(subs[0], old)
            st = g.sim.stats()
            self.assertEqual(st["subscriptions"]["unsubscribed"], 1, st["subscriptions"])
            self.assertEqual(st["subscriptions"]["created"], N + 1, st["subscriptions"])
            self.assertEqual(g.status()["regrouped"], 1)
            # the other servers' streams untouched
            where, streams = all_placed(g.sim, "every mailbox streamed again")
            self.assertEqual(where, where0)
            self.assertEqual({b: v for b, v in streams.items() if b in others}, others)
            t0 = time.time()
            g.sim.add_item(m, {"subject": "x", "start": iso(t0 - 60), "end": iso(t0 + 3600)})
            rows = wait_for(lambda: (lambda c: c if c[-1]["presence"] == "busy" else None)(
                g.changes(m)), 30, "%s busy" % m)
            g.assert_each_change_once(self)
            g.assert_no_violations(self)
            self.assertEqual(g.d.stop(), 0)
            self.assertEqual(g.sim.control("GET", "/subscriptions")[1]["subscriptions"], [])

    def move(self, exchange, how, rediscover=False):
        with gateway() as g:
            where, streams = start(g, exchange)
            m = g.mailboxes[-1]
            where0 = dict(where)
            old = where[m]
            backends = sorted(streams)
            self.assertEqual(len(backends), 3)
            new = next(b for b in backends if b != old)
            other = next(b for b in backends if b not in (old, new))
            untouched = streams[other]
            ad0 = g.sim.stats()["autodiscover"]["requests"]
            body = {"to": new, "duration_s": 1}
            body.update(how)
            st, res = g.sim.control("POST", "/mailboxes/%s/move" % m, body)
            self.assertEqual(st, 200, res)
            if rediscover:
                time.sleep(1)
                self.assertEqual(g.sim.stats()["autodiscover"]["requests"], ad0)
                self.assertEqual(placement(g.sim)[0].get(m), None)
                r = g.d.ctl("--json", "rediscover")
                self.assertEqual(r.returncode, 0, r.stdout + r.stderr)
                self.assertIn('"queued":%d' % N, r.stdout)

            def moved():
                w, s = placement(g.sim)
                return (w, s) if w and w.get(m) == new and len(w) == N else None
            where, streams = wait_for(moved, 60, "%s streamed on %s" % (m, new))
            st = g.sim.stats()
            self.assertGreaterEqual(st["moves"]["completed"], 1, st["moves"])
            self.assertGreater(st["autodiscover"]["requests"], ad0)
            self.assertGreaterEqual(g.status()["regrouped"], 1)
            self.assertIn("moved to another server", g.d.log())
            # every other mailbox where it was; the third server's streams untouched
            self.assertEqual({k: v for k, v in where.items() if k != m},
                             {k: v for k, v in where0.items() if k != m})
            self.assertEqual(streams[other], untouched)
            # its presence still flips
            t0 = time.time()
            g.sim.add_item(m, {"subject": "x", "start": iso(t0 - 60), "end": iso(t0 + 3600)})
            rows = wait_for(lambda: (lambda c: c if c[-1]["presence"] == "busy" else None)(
                g.changes(m)), 30, "%s busy" % m)
            self.assertEqual(rows[-1]["activity"], "meeting")
            g.assert_each_change_once(self)
            g.assert_no_violations(self)
            # its old subscription was released, not left to expire
            self.assertEqual(g.d.stop(), 0)
            st = g.sim.stats()
            subs = st["subscriptions"]
            self.assertEqual(subs["created"], subs["unsubscribed"] + subs["lost"] + subs["expired"], subs)
            self.assertEqual(g.sim.control("GET", "/subscriptions")[1]["subscriptions"], [])


if __name__ == "__main__":
    unittest.main(verbosity=2)
