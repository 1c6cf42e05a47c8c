"""Autodiscover grouping: with [exchange] autodiscover the daemon asks
GetUserSettings for every mailbox (batched, at most 100 users a request)
before it subscribes, and forms its streaming groups per
GroupingInformation, so that every group keeps to Microsoft's affinity
rules (the simulator's --affinity-rules turns a breach into a
violation).  The same mailboxes grouped by address order break them:
the check can fail."""
import os
import sys
import unittest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from ewsgwsim import GatewayRun, generated  # noqa: E402

N = 150


def streams_by_backend(sim):
    """{connection: set of backends of its subscriptions}, and the
    mailboxes streamed."""
    subs = {s["id"]: s for s in sim.control("GET", "/subscriptions")[1]["subscriptions"]}
    out, streamed = {}, set()
    for st in sim.control("GET", "/streams")[1]["streams"]:
        ids = [i for i in st["subscription_ids"] if i in subs]
        out[st["connection"]] = {subs[i]["backend"] for i in ids}
        streamed.update(subs[i]["mailbox"] for i in ids)
    return out, streamed


def gateway():
    return GatewayRun(generated(N), start=False,
                      sim={"generate": N, "affinity_rules": True, "backends": 3},
                      sections={"throttling": {"subscriptions_per_connection": "30"}})


class Grouping(unittest.TestCase):
    def test_groups_follow_grouping_information(self):
        mbs = generated(N)
        with gateway() as g:
            g.rewrite_config({"exchange": {
                "autodiscover": "yes",
                "autodiscover_url": g.sim.autodiscover_url}})
            g.d.start()
            g.wait_state("streaming")
            st = g.sim.stats()
            ad = st["autodiscover"]
            # 150 users: two requests, none over 100.
            self.assertEqual((ad["requests"], ad["users"]), (2, N))
            self.assertLessEqual(ad["max_users"], 100)
            by_conn, streamed = streams_by_backend(g.sim)
            self.assertEqual(streamed, set(mbs))
            for conn, backends in by_conn.items():
                self.assertEqual(len(backends), 1, (conn, backends))
            # Mailboxes of three servers: at least a group per server.
            self.assertEqual(len(set().union(*by_conn.values())), 3)
            self.assertGreaterEqual(len(by_conn), 3)
            log = g.d.log()
            self.assertIn("Autodiscover: %d of %d mailboxes placed" % (N, N), log)
            g.assert_no_violations(self)

    def test_address_order_breaks_the_rules(self):
        with gateway() as g:
            g.d.start()
            g.wait_state("streaming")
            st = g.sim.stats()
            self.assertEqual(st["autodiscover"]["requests"], 0)
            self.assertGreater(st["violations"].get("affinity_anchor_group", 0)
                               + st["violations"].get("affinity_mixed_stream", 0), 0)


if __name__ == "__main__":
    unittest.main(verbosity=2)
