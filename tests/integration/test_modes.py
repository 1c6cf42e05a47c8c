"""Push mode, poll mode and reload through the real daemon and the
simulator: push notifications answered and retried without duplicate
publications, a push subscription Exchange gave up on is made again,
polling in batches, and a reload that adds and removes mailboxes only
touches the connections that must change."""
import http.client
import os
import signal
import sys
import time
import unittest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from ewsgwsim import GatewayRun, generated, iso  # noqa: E402
from ewsgwtest import free_port, wait_for  # noqa: E402


def busy_now(sim, mb, minutes=60):
    now = time.time()
    return sim.add_item(mb, {"subject": "now", "start": iso(now - 60),
                             "end": iso(now + 60 * minutes)})


FORGED = ('<?xml version="1.0" encoding="utf-8"?>'
          '<soap:Envelope xmlns:soap="http://schemas.xmlsoap.org/soap/envelope/">'
          '<soap:Body><m:SendNotification xmlns:m="http://schemas.microsoft.com/'
          'exchange/services/2006/messages" xmlns:t="http://schemas.microsoft.com/'
          'exchange/services/2006/types"><m:ResponseMessages>'
          '<m:SendNotificationResponseMessage ResponseClass="Success">'
          '<m:ResponseCode>NoError</m:ResponseCode><m:Notification>'
          '<t:SubscriptionId>%s</t:SubscriptionId><t:PreviousWatermark>AQAAAA=='
          '</t:PreviousWatermark><t:MoreEvents>false</t:MoreEvents><t:StatusEvent>'
          '<t:Watermark>AQAAAB==</t:Watermark></t:StatusEvent></m:Notification>'
          '</m:SendNotificationResponseMessage></m:ResponseMessages>'
          '</m:SendNotification></soap:Body></soap:Envelope>')


class Push(unittest.TestCase):
    def push_run(self, n=5, extra=None):
        port = free_port()
        secs = {"exchange": {"mode": "push"},
                "push": {"listen": "127.0.0.1:%d" % port,
                         "url": "http://127.0.0.1:%d/ewsgw/push" % port,
                         "status_frequency": "1",
                         "heartbeat_timeout": "4s"}}
        secs.update(extra or {})
        return GatewayRun(generated(n), sim={"generate": n,
                                             "minute_seconds": 1,
                                             "push_timeout": 1},
                          sections=secs)

    def test_push_notifications_and_retries(self):
        with self.push_run() as g:
            g.wait_state("push")
            mb = generated(5)[2]
            busy_now(g.sim, mb)
            rows = g.wait_changes(mb, 2)
            self.assertEqual(rows[-1]["presence"], "busy")
            # Unanswered: the daemon is frozen while Exchange posts; it
            # retries, then the daemon answers the late copies too.
            g.d.signal(signal.SIGSTOP)
            try:
                now = time.time()
                g.sim.add_item(mb, {"subject": "later",
                                    "start": iso(now + 3600),
                                    "end": iso(now + 7200)})
                wait_for(lambda: g.sim.stats()["push"]["failed"] >= 1, 20,
                         "a push POST left unanswered")
            finally:
                g.d.signal(signal.SIGCONT)
            wait_for(lambda: g.sim.stats()["push"]["ok"] >
                     g.sim.stats()["push"]["failed"], 20, "answered again")
            time.sleep(2)
            # The retries changed nothing visible: no duplicate line.
            self.assertEqual([r["presence"] for r in g.changes(mb)],
                             ["available", "busy"])
            g.assert_each_change_once(self)
            g.assert_no_violations(self)

    def test_forged_notification_without_token_is_refused(self):
        """Exchange calls a URL with a secret token in it; a POST to the
        configured URL alone, even naming a live subscription, is
        answered 403 and changes nothing."""
        with self.push_run() as g:
            g.wait_state("push")
            subs = g.sim.control("GET", "/subscriptions")[1]["subscriptions"]
            self.assertEqual(len(subs), 5)
            wait_for(lambda: g.status()["push"]["ok"] >= 5, 20,
                     "the first status notifications answered")
            before = g.status()["push"]
            host_port = g.sections["push"]["url"].split("/")[2]
            body = (FORGED % subs[0]["id"]).encode()
            for path in ("/ewsgw/push", "/ewsgw/push/" + "0" * 64, "/"):
                c = http.client.HTTPConnection(host_port, timeout=10)
                c.request("POST", path, body,
                          {"Content-Type": "text/xml; charset=utf-8"})
                self.assertEqual(c.getresponse().status, 403, path)
                c.close()
            after = g.status()["push"]
            self.assertEqual(after["forbidden"] - before["forbidden"], 3)
            self.assertEqual(after["unparsable"], before["unparsable"])
            g.assert_no_violations(self)

    def test_push_subscription_lost_is_made_again(self):
        with self.push_run() as g:
            g.wait_state("push")
            before = g.status()["resubscribes"]
            # Frozen for longer than Exchange's retries: it drops them.
            g.d.signal(signal.SIGSTOP)
            try:
                wait_for(lambda: g.sim.stats()["push"]["expired"] >= 5, 30,
                         "push subscriptions expired")
            finally:
                g.d.signal(signal.SIGCONT)
            wait_for(lambda: g.status()["resubscribes"] >= before + 5, 30,
                     "resubscribed after two silent intervals")
            g.wait_state("push")
            mb = generated(5)[4]
            busy_now(g.sim, mb)
            rows = g.wait_changes(mb, 2)
            self.assertEqual(rows[-1]["presence"], "busy")
            g.assert_no_violations(self)


class Poll(unittest.TestCase):
    def test_poll_mode_batches(self):
        n = 150
        mbs = generated(n)
        with GatewayRun(mbs, sim={"generate": n},
                        sections={"exchange": {"mode": "poll"},
                                  "throttling": {"poll_interval": "2s"}}) as g:
            g.wait_state("polling")
            wait_for(lambda: g.status()["mailboxes"]["by_presence"].get(
                "available") == n, 30, "presence for every mailbox")
            busy_now(g.sim, mbs[120])
            rows = g.wait_changes(mbs[120], 2, timeout=30)
            self.assertEqual(rows[-1]["presence"], "busy")
            self.assertEqual(rows[-1]["source"], "poll")
            st = g.sim.stats()
            self.assertNotIn("Subscribe", st["requests"])
            # 150 mailboxes are two GetUserAvailability requests a round.
            self.assertGreaterEqual(
                st["requests"]["GetUserAvailability"]["NoError"], 2)
            g.assert_no_violations(self)

    def test_one_unknown_mailbox_does_not_fail_its_batch(self):
        mbs = generated(5) + ["nobody@example.com"]
        with GatewayRun(mbs, sim={"generate": 5},
                        sections={"exchange": {"mode": "poll"},
                                  "throttling": {"poll_interval": "2s"}}) as g:
            wait_for(lambda: g.mailbox("nobody@example.com")["state"] ==
                     "parked", 30, "the unknown mailbox parked")
            wait_for(lambda: g.status()["mailboxes"]["by_presence"].get(
                "available") == 5, 30, "the others available")
            self.assertTrue(g.mailbox("nobody@example.com")["error"])
            g.assert_no_violations(self)


class Reload(unittest.TestCase):
    def test_reload_touches_only_changed_groups(self):
        mbs = generated(60)
        with GatewayRun(mbs[:50], sim={"generate": 60},
                        sections={"throttling": {
                            "subscriptions_per_connection": "25"}}) as g:
            g.wait_state("streaming", count=50)
            conns = {c["id"]: c for c in
                     g.d.request("connections")["connections"]}
            self.assertEqual(len(conns), 2)
            # Add ten mailboxes: a third connection, the others untouched.
            with open(g.d.path("mailboxes.txt"), "w") as f:
                f.write("\n".join(mbs) + "\n")
            g.d.signal(signal.SIGHUP)
            g.wait_state("streaming", count=60)
            after = {c["id"]: c for c in
                     g.d.request("connections")["connections"]}
            self.assertEqual(len(after), 3)
            for cid, c in conns.items():
                self.assertEqual(after[cid]["connects"], c["connects"],
                                 "connection %s was reopened" % cid)
            # Remove the last five: their subscriptions are released.
            with open(g.d.path("mailboxes.txt"), "w") as f:
                f.write("\n".join(mbs[:55]) + "\n")
            g.d.signal(signal.SIGHUP)
            wait_for(lambda: g.status()["mailboxes"]["total"] == 55, 30,
                     "55 mailboxes")
            wait_for(lambda: g.sim.stats()["live_subscriptions"]["total"]
                     == 55, 30, "removed subscriptions released")
            self.assertEqual(g.d.request("connections")["connections"][0][
                "connects"], conns[min(conns)]["connects"])
            g.assert_no_violations(self)


if __name__ == "__main__":
    unittest.main(verbosity=2)
