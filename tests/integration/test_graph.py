"""A hybrid deployment through the real daemon: mailboxes on premises on
EWS (tests/sim) and mailboxes in Exchange Online on Microsoft Graph
(tests/graphsim) watched by one daemon at once.  Presence flips on both
backends, neither stand-in counts a budget violation, a 429 injected on
the Graph side really happened and was waited out, Graph mailboxes stay
out of Exchange's subscription budget, a mailbox the application access
policy excludes is parked, and the [graph] configuration is checked
with file:line messages."""
import http.client
import json
import os
import re
import subprocess
import sys
import time
import unittest
import urllib.parse

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from ewsgwsim import GatewayRun, generated, iso  # noqa: E402
from ewsgwtest import (EWSGW, TOP_SRCDIR, check_config,  # noqa: E402
                       free_port, wait_for)

sys.path.insert(0, os.path.join(TOP_SRCDIR, "tests", "graphsim"))
from harness import GraphSim  # noqa: E402

GRAPH = ["adele@contoso.com", "alex@contoso.com"]
EWS = generated(2)


def graph_sections(g, secret_path, **extra):
    sec = {"client_id": g.client_id, "token_url": g.token_url,
           "url": g.graph_url, "client_secret_file": secret_path,
           "mailboxes": ", ".join(GRAPH), "delta_interval": "2s"}
    sec.update(extra)
    return {"graph": sec}


class Hybrid:
    """A graph stand-in, then an EWS simulator and a daemon for both."""

    def __init__(self, graph=None, push=None, ews=None, migrated=(),
                 exchange=None, **graph_keys):
        self.graph_opts = graph or {}
        self.graph_keys = graph_keys
        self.push = push
        self.ews = ews or EWS
        self.migrated = migrated        # in Exchange Online from the start
        self.exchange = exchange        # [exchange] keys, with Autodiscover

    def __enter__(self):
        self.g = GraphSim(**self.graph_opts).__enter__()
        try:
            self.run = GatewayRun(self.ews, sim={"generate": len(self.ews)},
                                  start=False)
            self.run.__enter__()
            for mb in self.migrated:
                self.run.sim.control("POST", "/mailboxes/%s/exchange_online"
                                     % mb, {})
            secret = self.run.d.path("graph-secret")
            fd = os.open(secret, os.O_WRONLY | os.O_CREAT | os.O_TRUNC,
                         0o600)
            os.write(fd, b"graph-secret\n")
            os.close(fd)
            secs = graph_sections(self.g, secret, **self.graph_keys)
            if self.push:
                secs["push"] = self.push
            if self.exchange is not None:
                secs["exchange"] = dict(
                    self.exchange, autodiscover="yes",
                    autodiscover_url=self.run.sim.autodiscover_url)
            self.run.rewrite_config(secs)
            self.run.d.start()
        except BaseException:
            self.__exit__(*sys.exc_info())
            raise
        return self

    def __exit__(self, et, ev, tb):
        if et is not None:
            sys.stderr.write("---- graphsim log ----\n%s\n" % self.g.log())
        try:
            if getattr(self, "run", None) is not None:
                self.run.__exit__(et, ev, tb)
        finally:
            self.g.__exit__(et, ev, tb)
        return False


def last_presence(run, mb):
    rows = run.changes(mb)
    return rows[-1]["presence"] if rows else None


class HybridTest(unittest.TestCase):
    def test_presence_on_both_backends(self):
        with Hybrid() as h:
            run, g = h.run, h.g
            st = run.wait_state("streaming", count=len(EWS))
            wait_for(lambda: run.states().get("delta") == len(GRAPH), 60,
                     "Graph mailboxes watched by delta rounds")
            for mb in GRAPH + EWS:
                run.wait_changes(mb, 1)
                self.assertEqual(last_presence(run, mb), "available", mb)
            # Each mailbox on its own backend; Graph outside Exchange's
            # subscription budget.
            self.assertEqual(run.mailbox(GRAPH[0])["backend"], "graph")
            self.assertEqual(run.mailbox(GRAPH[0])["mode"], "delta")
            self.assertEqual(run.mailbox(EWS[0])["backend"], "ews")
            st = run.status()
            self.assertEqual(st["budget"]["subscriptions"]["in_use"],
                             len(EWS), st["budget"])

            # Two Graph requests answered 429 from now on.
            g.control("POST", "/faults", {"throttle": 2, "retry_after": 1})
            now = time.time()
            ev = g.control("POST", "/mailboxes/%s/events" % GRAPH[0], {
                "subject": "review", "start": iso(now - 60),
                "end": iso(now + 3600), "showAs": "busy"})
            run.sim.add_item(EWS[0], {"subject": "now",
                                      "start": iso(now - 60),
                                      "end": iso(now + 3600)})
            wait_for(lambda: last_presence(run, GRAPH[0]) == "busy", 60,
                     "Graph mailbox busy")
            wait_for(lambda: last_presence(run, EWS[0]) == "busy", 60,
                     "EWS mailbox busy")
            gs = g.stats()
            self.assertEqual(gs["faults_injected"], 2, gs)
            stg = run.status()["graph"]
            self.assertGreaterEqual(stg["throttled"], 2, stg)
            self.assertGreaterEqual(stg["retries"], 2, stg)
            # ewsgwctl status shows Graph's budgets next to Exchange's,
            # with the figures of this traffic; never the token.
            out = run.d.ctl("status").stdout
            m = re.search(r"(?m)^graph: +(\d+) calls, \d+ in flight, "
                          r"\d+ waiting; token valid for \S+ \((\d+) "
                          r"fetched", out)
            self.assertTrue(m, out)
            self.assertGreater(int(m.group(1)), 0, out)
            self.assertGreater(int(m.group(2)), 0, out)
            m = re.search(r"(?m)^graph mailbox: +(\d+) of 4 in flight at "
                          r"most, (\d+) of 10000 per 10m00s", out)
            self.assertTrue(m, out)
            self.assertTrue(1 <= int(m.group(1)) <= 4, out)
            self.assertGreater(int(m.group(2)), 0, out)
            m = re.search(r"(?m)^graph app: +(\d+) of 130000 per 10s", out)
            self.assertTrue(m, out)
            self.assertGreater(int(m.group(1)), 0, out)
            m = re.search(r"(?m)^graph 429: +(\d+) answers 429/503 "
                          r"\((\d+) retried\)", out)
            self.assertTrue(m, out)
            self.assertGreaterEqual(int(m.group(1)), 2, out)
            self.assertGreaterEqual(int(m.group(2)), 2, out)
            self.assertRegex(out, r"(?m)^concurrency: ")
            self.assertNotIn("secret", out.lower())

            # Deleted (an @removed entry in the next round): free again.
            g.control("DELETE", "/mailboxes/%s/events/%s"
                      % (GRAPH[0], ev["id"]))
            wait_for(lambda: last_presence(run, GRAPH[0]) == "available",
                     60, "Graph mailbox free after the delete")
            # Automatic replies on: away.
            g.control("PUT", "/mailboxes/%s/automaticReplies" % GRAPH[1],
                      {"status": "alwaysEnabled"})
            wait_for(lambda: last_presence(run, GRAPH[1]) == "away", 60,
                     "Graph mailbox away with automatic replies on")
            self.assertEqual(last_presence(run, GRAPH[0]), "available")
            self.assertEqual(last_presence(run, EWS[1]), "available")

            detail = run.mailbox(GRAPH[0])
            self.assertTrue(detail["delta"]["token"], detail)
            self.assertGreaterEqual(detail["delta"]["rereads"], 1, detail)
            run.assert_each_change_once(self)
            gs = g.stats()
            self.assertEqual(gs["violations_total"], 0, gs["violations"])
            self.assertGreater(gs["counters"].get("delta_incremental", 0), 0, gs)
            run.assert_no_violations(self)
            m = run.d.request_raw("metrics")
            self.assertIn("ewsgw_graph_throttled_total", m)
            w = re.search(r'(?m)^ewsgw_graph_window_requests_max'
                          r'\{scope="mailbox"\} (\d+)$', m)
            self.assertTrue(w and int(w.group(1)) > 0, m)
            self.assertRegex(m, r'(?m)^ewsgw_graph_mailbox_concurrency_'
                             r'limit 4$')
            self.assertRegex(m, r'(?m)^ewsgw_graph_token_valid 1$')

    def test_access_policy_parks_the_mailbox(self):
        with Hybrid(graph={"allow": GRAPH[0]}) as h:
            run = h.run
            wait_for(lambda: run.mailbox(GRAPH[1])["state"] == "parked",
                     60, "the mailbox outside the policy parked")
            self.assertEqual(run.mailbox(GRAPH[1])["error"],
                             "ErrorAccessDenied")
            wait_for(lambda: run.mailbox(GRAPH[0])["state"] == "delta",
                     60, "the mailbox inside the policy watched")
            self.assertGreater(h.g.stats()["counters"]
                               ["access_policy_denied"], 0)
            self.assertEqual(h.g.stats()["violations_total"], 0)


class AppRateTest(unittest.TestCase):
    def test_daemon_keeps_a_lowered_app_rate(self):
        """The stand-in's limit per app over all mailboxes lowered to 12
        requests in 2 s (it refuses and counts more: see test_graphsim and
        test_graph_client), the daemon's [graph] app_rate to 8 per 2 s:
        the start-up reads of twelve Graph mailboxes wait for the app's
        budget, every mailbox is watched and published, and the stand-in
        refuses nothing."""
        many = ["user%06d@contoso.com" % (i + 1) for i in range(12)]
        with Hybrid(graph={"generate": 12, "app_rate": 12,
                           "app_rate_window": 2},
                    mailboxes=", ".join(many), app_rate="8",
                    app_rate_window="2s", delta_interval="30s") as h:
            run, g = h.run, h.g
            wait_for(lambda: run.states().get("delta") == len(many), 120,
                     "every Graph mailbox watched by delta rounds")
            for mb in many:
                run.wait_changes(mb, 1)
                self.assertEqual(last_presence(run, mb), "available", mb)
            s = g.stats()
            self.assertEqual(s["violations_total"], 0, s["violations"])
            st = run.status()["graph"]
            self.assertGreater(st["waited_app"], 0, st)
            self.assertLessEqual(st["max_app_window_requests"], 8, st)
            self.assertEqual((st["app_rate"], st["app_rate_window_s"]),
                             (8, 2), st)
            out = run.d.ctl("status").stdout
            m = re.search(r"(?m)^graph app: +(\d+) of 8 per 2s in the "
                          r"busiest window$", out)
            self.assertTrue(m, out)
            self.assertTrue(1 <= int(m.group(1)) <= 8, out)
            met = run.d.request_raw("metrics")
            w = re.search(r'(?m)^ewsgw_graph_waits_total'
                          r'\{reason="app_rate"\} (\d+)$', met)
            self.assertTrue(w and int(w.group(1)) > 0, met)
            run.assert_no_violations(self)


# [exchange] mailboxes of which Autodiscover finds some in Exchange Online.
HYBRID_EWS = generated(4)
MOVED = HYBRID_EWS[2]           # in Exchange Online from the start
MOVES_LATER = HYBRID_EWS[3]     # moved while the daemon runs


def found_online(exchange_keys=None, graph=None, push=None, **graph_keys):
    """A daemon whose [exchange] mailboxes include MOVED, which the
    on-premises Autodiscover redirects to Exchange Online; the Graph
    stand-in holds both Exchange Online ones."""
    return Hybrid(graph=graph or {"mailboxes": ",".join(GRAPH +
                                                        HYBRID_EWS[2:])},
                  push=push, ews=HYBRID_EWS, migrated=[MOVED],
                  exchange=exchange_keys or {"autodiscover_interval": "2s"},
                  **graph_keys)


class FoundInExchangeOnline(unittest.TestCase):
    """With [graph] auto, a mailbox that Autodiscover finds in Exchange
    Online (a hybrid server's RedirectAddress to the remote routing
    address) is watched through Graph, never subscribed on EWS; one that
    moves there later is found by the periodic Autodiscover and moves
    over.  Without auto it is logged once and shown as exchange_online,
    not tried on EWS again and again."""

    def test_auto_moves_them_to_graph(self):
        with found_online(auto="yes") as h:
            run, g = h.run, h.g
            wait_for(lambda: run.mailbox(MOVED)["state"] == "delta", 60,
                     "the mailbox in Exchange Online watched on Graph")
            self.assertEqual(run.mailbox(MOVED)["backend"], "graph")
            run.wait_state("streaming", count=3)
            run.wait_changes(MOVED, 1)
            self.assertEqual(last_presence(run, MOVED), "available")
            now = time.time()
            g.control("POST", "/mailboxes/%s/events" % MOVED, {
                "subject": "review", "start": iso(now - 60),
                "end": iso(now + 3600), "showAs": "busy"})
            wait_for(lambda: last_presence(run, MOVED) == "busy", 60,
                     "the moved mailbox busy through Graph")
            st = run.sim.stats()
            # Redirected by Autodiscover, never asked on EWS.
            self.assertGreaterEqual(st["autodiscover"]["exchange_online"], 1,
                                    st["autodiscover"])
            self.assertEqual(st["exchange_online"]["refused"], 0,
                             st["exchange_online"])

            # Moved while watched on EWS: its subscription is lost, and
            # the periodic Autodiscover finds it in Exchange Online.
            run.wait_changes(MOVES_LATER, 1)
            res = run.sim.control("POST", "/mailboxes/%s/exchange_online"
                                  % MOVES_LATER, {})[1]
            self.assertEqual(len(res["lost"]), 1, res)
            wait_for(lambda: run.mailbox(MOVES_LATER)["backend"] == "graph"
                     and run.mailbox(MOVES_LATER)["state"] == "delta", 60,
                     "the mailbox moved later watched on Graph")
            g.control("POST", "/mailboxes/%s/events" % MOVES_LATER, {
                "subject": "call", "start": iso(now - 60),
                "end": iso(now + 3600), "showAs": "busy"})
            wait_for(lambda: last_presence(run, MOVES_LATER) == "busy", 60,
                     "the mailbox moved later busy through Graph")
            st = run.status()
            self.assertEqual(st["mailboxes"]["by_state"].get("delta"), 4,
                             st["mailboxes"])
            self.assertEqual(st["budget"]["subscriptions"]["in_use"], 2,
                             st["budget"])
            self.assertEqual(run.mailbox(HYBRID_EWS[0])["backend"], "ews")
            log = run.d.log()
            found = [ln for ln in log.splitlines()
                     if "Autodiscover: in Exchange Online" in ln]
            self.assertEqual(len([ln for ln in found if MOVED in ln]), 1, found)
            self.assertEqual(len(found), 2, found)
            self.assertIn("redirected to user000003@sim.mail.onmicrosoft.com",
                          log)
            run.assert_each_change_once(self)
            run.assert_no_violations(self)
            gs = g.stats()
            self.assertEqual(gs["violations_total"], 0, gs["violations"])

    def test_without_auto_shown_not_tried(self):
        # No periodic round within the test: a mailbox moved later is
        # asked about at once when EWS says it has no mailbox for it.
        with found_online({"autodiscover_interval": "1h"}) as h:
            run = h.run
            run.wait_state("streaming", count=3)
            mb = run.mailbox(MOVED)
            self.assertEqual((mb["state"], mb["backend"]),
                             ("exchange_online", "none"), mb)
            self.assertEqual(run.states().get("exchange_online"), 1)
            st = run.sim.stats()
            self.assertEqual(st["exchange_online"]["refused"], 0,
                             st["exchange_online"])
            log = run.d.log()
            self.assertEqual(log.count("Autodiscover: in Exchange Online"),
                             1, log)
            self.assertIn("set auto = yes in [graph]", log)
            self.assertEqual(run.changes(MOVED), [])

            run.wait_changes(MOVES_LATER, 1)
            run.sim.control("POST", "/mailboxes/%s/exchange_online"
                            % MOVES_LATER, {})
            wait_for(lambda: run.mailbox(MOVES_LATER)["state"] ==
                     "exchange_online", 60,
                     "the mailbox moved later shown in Exchange Online")
            st = run.sim.stats()
            # Its resubscription was refused once, then not tried again.
            self.assertEqual(st["exchange_online"]["refused"], 1,
                             st["exchange_online"])
            self.assertEqual(st["exchange_online"]["subscriptions_lost"], 1)
            self.assertEqual(run.states().get("exchange_online"), 2)
            self.assertEqual(run.status()["budget"]["subscriptions"]
                             ["in_use"], 2)
            run.assert_no_violations(self)
            self.assertEqual(h.g.stats()["violations_total"], 0)


def server_of(run, mb):
    return run.sim.control("GET", "/mailboxes/%s/server" % mb)[1]


class BackOnPremises(unittest.TestCase):
    """A mailbox [graph] auto put on Graph that moves back on premises is
    followed back to EWS: when Graph answers that it has no mailbox for
    the user (404 MailboxNotEnabledForRESTAPI) Autodiscover is asked at
    once, and the periodic Autodiscover finds one moved back without any
    error.  Its Graph subscription is deleted, it is subscribed on EWS,
    its calendar read again, and the same calendar publishes no change;
    moved online again, it goes back to Graph."""

    def test_graph_error_moves_it_back_and_online_again(self):
        port = free_port()
        # No periodic Autodiscover within the test: only the errors tell.
        with found_online({"autodiscover_interval": "1h"}, auto="yes",
                          graph={"mailboxes": ",".join(GRAPH + HYBRID_EWS[2:]),
                                 "allow_http_notify": True},
                          notification_url="http://127.0.0.1:%d/graph" % port,
                          push={"listen": "127.0.0.1:%d" % port}) as h:
            run, g = h.run, h.g
            wait_for(lambda: run.mailbox(MOVED)["state"] == "push", 60,
                     "the mailbox in Exchange Online subscribed on Graph")
            run.wait_state("streaming", count=3)
            self.assertEqual(server_of(run, MOVED)["subscriptions_created"], 0)
            # The same meeting on both sides, as a move carries it.
            now = time.time()
            ev = g.control("POST", "/mailboxes/%s/events" % MOVED, {
                "subject": "review", "start": iso(now - 60),
                "end": iso(now + 3600), "showAs": "busy"})
            item = run.sim.add_item(MOVED, {"subject": "review",
                                            "start": iso(now - 60),
                                            "end": iso(now + 3600)})
            wait_for(lambda: last_presence(run, MOVED) == "busy", 60,
                     "busy through Graph")
            published = len(run.changes(MOVED))
            subs = [x for x in g.control("GET", "/subscriptions")["value"]
                    if x["mailbox"] == MOVED]
            self.assertEqual(len(subs), 1, subs)

            # Moved back on premises: Graph has no mailbox for it.
            run.sim.control("POST", "/mailboxes/%s/on_premises" % MOVED, {})
            g.control("PUT", "/mailboxes/%s/location" % MOVED,
                      {"on_premises": True})
            wait_for(lambda: run.mailbox(MOVED)["backend"] == "ews" and
                     run.mailbox(MOVED)["state"] == "streaming", 60,
                     "the mailbox back on EWS")
            gs = g.stats()
            self.assertGreaterEqual(gs["counters"].get("no_mailbox_404", 0),
                                    1, gs)
            self.assertGreaterEqual(server_of(run, MOVED)
                                    ["subscriptions_created"], 1)
            self.assertEqual(run.sim.stats()["exchange_online"]["returned"],
                             1)
            # Its Graph subscription deleted, not left to expire.
            wait_for(lambda: subs[0]["id"] not in
                     [x["id"] for x in g.control("GET",
                                                 "/subscriptions")["value"]],
                     30, "the Graph subscription deleted")
            self.assertGreaterEqual(g.stats()["counters"]
                                    .get("subscriptions_deleted", 0), 1)
            # Read again on EWS: the same calendar, no change published.
            self.assertEqual(len(run.changes(MOVED)), published,
                             run.changes(MOVED))
            self.assertEqual(last_presence(run, MOVED), "busy")
            log = run.d.log()
            self.assertEqual(log.count("Autodiscover: on premises again"), 1,
                             log[-3000:])
            # Watched on EWS now: its calendar there decides.
            run.sim.control("DELETE", "/mailboxes/%s/items/%s"
                            % (MOVED, item["id"]))
            wait_for(lambda: last_presence(run, MOVED) == "available", 60,
                     "available through EWS")

            # And online again: EWS refuses it, Autodiscover redirects.
            g.control("DELETE", "/mailboxes/%s/events/%s" % (MOVED, ev["id"]))
            g.control("PUT", "/mailboxes/%s/location" % MOVED,
                      {"on_premises": False})
            run.sim.control("POST", "/mailboxes/%s/exchange_online" % MOVED,
                            {})
            wait_for(lambda: run.mailbox(MOVED)["backend"] == "graph" and
                     run.mailbox(MOVED)["state"] == "push", 60,
                     "the mailbox on Graph again")
            self.assertEqual(last_presence(run, MOVED), "available")
            g.control("POST", "/mailboxes/%s/events" % MOVED, {
                "subject": "call", "start": iso(now - 60),
                "end": iso(now + 3600), "showAs": "busy"})
            wait_for(lambda: last_presence(run, MOVED) == "busy", 60,
                     "busy through Graph again")
            self.assertEqual([r["presence"] for r in run.changes(MOVED)]
                             [published - 1:], ["busy", "available", "busy"])
            st = run.sim.stats()
            self.assertEqual(st["exchange_online"]["migrated"], 2,
                             st["exchange_online"])
            self.assertGreaterEqual(st["exchange_online"]["refused"], 1,
                                    st["exchange_online"])
            self.assertEqual(run.status()["budget"]["subscriptions"]
                             ["in_use"], 3)
            run.assert_each_change_once(self)
            run.assert_no_violations(self)
            gs = g.stats()
            self.assertEqual(gs["violations_total"], 0, gs["violations"])

    def test_periodic_autodiscover_finds_it_back(self):
        # Graph still serves the mailbox (no error, no read for an hour):
        # only the periodic Autodiscover can tell.
        with found_online({"autodiscover_interval": "2s"}, auto="yes",
                          delta_interval="1h") as h:
            run, g = h.run, h.g
            wait_for(lambda: run.mailbox(MOVED)["state"] == "delta", 60,
                     "the mailbox in Exchange Online watched on Graph")
            run.wait_state("streaming", count=3)
            run.wait_changes(MOVED, 1)
            self.assertEqual(last_presence(run, MOVED), "available")
            run.sim.control("POST", "/mailboxes/%s/on_premises" % MOVED, {})
            wait_for(lambda: run.mailbox(MOVED)["backend"] == "ews" and
                     run.mailbox(MOVED)["state"] == "streaming", 60,
                     "the mailbox back on EWS")
            self.assertEqual(server_of(run, MOVED)["subscriptions_created"],
                             1)
            self.assertEqual(g.stats()["counters"].get("no_mailbox_404", 0),
                             0)
            self.assertEqual(len(run.changes(MOVED)), 1, run.changes(MOVED))
            now = time.time()
            run.sim.add_item(MOVED, {"subject": "now", "start": iso(now - 60),
                                     "end": iso(now + 3600)})
            wait_for(lambda: last_presence(run, MOVED) == "busy", 60,
                     "busy through EWS")
            self.assertEqual(run.status()["budget"]["subscriptions"]
                             ["in_use"], 4)
            run.assert_each_change_once(self)
            run.assert_no_violations(self)
            self.assertEqual(g.stats()["violations_total"], 0)


class Notifications(unittest.TestCase):
    """Change notifications through the push listener: subscriptions
    made (the validation handshake answered), a change seen without any
    poll, renewal before expiry, and missed, reauthorizationRequired and
    subscriptionRemoved recovered, and the subscriptions deleted at stop."""

    def test_notifications_and_lifecycle(self):
        port = free_port()
        with Hybrid(graph={"allow_http_notify": True,
                           "sub_max_minutes": 2},
                    notification_url="http://127.0.0.1:%d/graph" % port,
                    subscription_lifetime="1m",
                    delta_interval="1h",
                    push={"listen": "127.0.0.1:%d" % port}) as h:
            run, g = h.run, h.g
            wait_for(lambda: run.states().get("push") == len(GRAPH), 60,
                     "Graph mailboxes subscribed")
            run.wait_state("streaming", count=len(EWS))
            gs = g.stats()
            self.assertEqual(gs["counters"]["subscriptions_created"], 2, gs)
            self.assertGreaterEqual(gs["counters"]["validations_ok"], 2, gs)
            self.assertEqual(run.mailbox(GRAPH[0])["mode"], "push")
            for mb in GRAPH:
                run.wait_changes(mb, 1)

            # A change arrives by notification (no poll for an hour).
            now = time.time()
            g.control("POST", "/mailboxes/%s/events" % GRAPH[0], {
                "subject": "call", "start": iso(now - 60),
                "end": iso(now + 3600), "showAs": "busy"})
            wait_for(lambda: last_presence(run, GRAPH[0]) == "busy", 30,
                     "busy by notification")
            st = run.status()["graph_notifications"]
            self.assertGreaterEqual(st["received"], 1, st)
            self.assertEqual(st["forged"], 0, st)

            subs = {s["mailbox"]: s["id"] for s in
                    g.control("GET", "/subscriptions")["value"]}
            views = g.stats()["requests"].get("calendarView", 0)
            g.control("POST", "/subscriptions/%s/lifecycle" % subs[GRAPH[1]],
                      {"event": "missed"})
            wait_for(lambda: g.stats()["requests"].get("calendarView", 0)
                     > views, 30, "calendar read again after missed")
            renewed = g.stats()["counters"].get("subscriptions_renewed", 0)
            g.control("POST", "/subscriptions/%s/lifecycle" % subs[GRAPH[1]],
                      {"event": "reauthorizationRequired"})
            wait_for(lambda: g.stats()["counters"].get(
                "subscriptions_renewed", 0) > renewed, 30,
                "renewed after reauthorizationRequired")
            g.control("POST", "/subscriptions/%s/lifecycle" % subs[GRAPH[0]],
                      {"event": "subscriptionRemoved"})
            wait_for(lambda: g.stats()["counters"]["subscriptions_created"]
                     == 3, 30, "subscribed again after subscriptionRemoved")
            wait_for(lambda: run.mailbox(GRAPH[0])["state"] == "push", 30,
                     "watched again")
            # The new subscription delivers.
            g.control("PUT", "/mailboxes/%s/automaticReplies" % GRAPH[0],
                      {"status": "alwaysEnabled"})
            run.d.request("resync " + GRAPH[0])
            wait_for(lambda: last_presence(run, GRAPH[0]) == "away", 30,
                     "away after a resync")
            # One minute lifetimes: renewed before they expire, never
            # lost.
            wait_for(lambda: g.stats()["counters"].get(
                "subscriptions_renewed", 0) >= renewed + 3, 90,
                "renewals before expiry")
            gs = g.stats()
            self.assertEqual(gs["counters"].get("subscriptions_expired", 0),
                             0, gs)
            self.assertEqual(gs["counters"]["subscriptions_created"], 3, gs)
            self.assertEqual(gs["violations_total"], 0, gs["violations"])
            run.assert_no_violations(self)
            # No token: refused before the body, counted.
            c = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
            c.request("POST", "/graph/" + "0" * 64, body=b"{}",
                      headers={"Content-Type": "application/json"})
            self.assertEqual(c.getresponse().status, 403)
            c.close()
            self.assertGreaterEqual(run.status()["push"]["forbidden"], 1)

            # A wrong clientState: accepted on the wire (Graph would only
            # retry) but dropped and counted; neither the change nor the
            # lifecycle event (subscriptionRemoved would subscribe again)
            # has any effect.
            sub = [x for x in g.control("GET", "/subscriptions")["value"]
                   if x["mailbox"] == GRAPH[1]][0]
            before = run.status()["graph_notifications"]
            created = g.stats()["counters"]["subscriptions_created"]
            forged = {"subscriptionId": sub["id"],
                      "subscriptionExpirationDateTime":
                      sub["expirationDateTime"],
                      "clientState": "f" * 64, "tenantId": g.tenant}
            change = dict(forged, changeType="updated",
                          resource=sub["resource"] + "/AAMkForged=",
                          resourceData={"id": "AAMkForged="})
            lifecycle = dict(forged, lifecycleEvent="subscriptionRemoved")
            for url, note in ((sub["notificationUrl"], change),
                              (sub["lifecycleNotificationUrl"], lifecycle)):
                u = urllib.parse.urlsplit(url)
                c = http.client.HTTPConnection(u.hostname, u.port,
                                               timeout=10)
                c.request("POST", u.path, body=json.dumps(
                    {"value": [note]}).encode(),
                    headers={"Content-Type": "application/json"})
                self.assertEqual(c.getresponse().status, 202)
                c.close()
            wait_for(lambda: run.status()["graph_notifications"]["forged"]
                     == before["forged"] + 2, 30, "forged ones counted")
            # A genuine change after them is seen: they were processed.
            now = time.time()
            g.control("POST", "/mailboxes/%s/events" % GRAPH[1], {
                "subject": "late", "start": iso(now - 60),
                "end": iso(now + 3600), "showAs": "busy"})
            wait_for(lambda: last_presence(run, GRAPH[1]) == "busy", 30,
                     "busy by the genuine notification")
            after = run.status()["graph_notifications"]
            self.assertEqual(after["forged"], before["forged"] + 2, after)
            self.assertEqual(after["received"], before["received"] + 1,
                             after)
            self.assertEqual(g.stats()["counters"]["subscriptions_created"],
                             created)
            self.assertEqual(run.mailbox(GRAPH[1])["state"], "push")
            self.assertIn(sub["id"], [x["id"] for x in g.control(
                "GET", "/subscriptions")["value"]])
            gs = g.stats()

            # Stopped: each live subscription deleted, none left behind
            # to notify until it expires.
            live = g.control("GET", "/subscriptions")["value"]
            self.assertEqual(sorted(x["mailbox"] for x in live),
                             sorted(GRAPH))
            self.assertEqual(gs["counters"].get("subscriptions_deleted", 0),
                             0, gs)
            self.assertEqual(run.d.stop(), 0, run.d.log()[-3000:])
            gs = g.stats()
            self.assertEqual(gs["counters"].get("subscriptions_deleted", 0),
                             len(GRAPH), gs)
            self.assertEqual(g.control("GET", "/subscriptions")["value"], [])
            self.assertEqual(gs["violations_total"], 0, gs["violations"])


class Batching(unittest.TestCase):
    """The start-up reads of many Graph mailboxes travel in JSON $batch
    requests of up to 20 steps, each step inside its mailbox's limits
    (the stand-in counts a batch carrying more of a mailbox than its free
    slots as a violation)."""

    def quiet_snapshot(self, run, g):
        """The stand-in's stats and the daemon's Graph status at one
        moment with no call of the daemon under way: status says every
        call it made has its result, before and after the stats were
        taken, with no call made in between.  A snapshot taken while a
        batch is on the wire counts it on one side only."""
        def ok():
            st = run.status()["graph"]
            if st["calls"] != sum(st["results"].values()):
                return None
            gs = g.stats()
            again = run.status()["graph"]
            return (gs, st) if again == st else None
        return wait_for(ok, 30, "the Graph calls of the start-up answered",
                        interval=0.2)

    def test_startup_reads_batched(self):
        many = ["user%06d@contoso.com" % (i + 1) for i in range(30)]
        # One day between delta rounds (the first comes at a random
        # phase of it): the requests counted are the start-up reads.
        with Hybrid(graph={"generate": len(many)}, delta_interval="1d",
                    mailboxes=", ".join(many)) as h:
            run, g = h.run, h.g
            for mb in many:
                run.wait_changes(mb, 1)
                self.assertEqual(last_presence(run, mb), "available", mb)
            gs, st = self.quiet_snapshot(run, g)
            batches = gs["requests"].get("batch", 0)
            steps = gs["counters"].get("batch_steps", 0)
            self.assertGreater(batches, 0, gs)
            self.assertLessEqual(steps, 20 * batches, gs)
            # Fewer requests than reads: several steps a batch.
            self.assertGreater(steps, 2 * batches, gs)
            self.assertEqual(gs["violations_total"], 0, gs["violations"])
            self.assertEqual(st["batches"], batches, st)
            self.assertEqual(st["batched"], steps, st)
            run.assert_no_violations(self)


class GraphVerify(unittest.TestCase):
    """ewsgw --verify and ewsgwctl verify check the Graph side: the token,
    Calendars.Read, MailboxSettings.Read and an application access policy,
    each missing piece named with its fix."""

    OUTSIDE = "outside@contoso.com"

    def verify(self, run):
        r = subprocess.run([EWSGW, "--verify", "--json", "-c",
                            run.d.conf_path], capture_output=True,
                           text=True, timeout=120)
        doc = json.loads(r.stdout)
        checks = {c["name"]: c for c in doc["checks"]
                  if c["name"].startswith("graph-")}
        return r.returncode, checks, r.stdout

    def test_verify_graph(self):
        with Hybrid(graph={"mailboxes": ",".join(GRAPH + [self.OUTSIDE]),
                           "allow": ",".join(GRAPH)},
                    verify_outside=self.OUTSIDE) as h:
            run, g = h.run, h.g
            wait_for(lambda: run.states().get("delta") == len(GRAPH), 60,
                     "Graph mailboxes watched")
            # Through the daemon: the same Graph client and budget.
            calls = run.status()["graph"]["calls"]
            r = run.d.ctl("--json", "verify")
            doc = json.loads(r.stdout)
            got = {c["name"]: c["verdict"] for c in doc["checks"]
                   if c["name"].startswith("graph-")}
            self.assertEqual(got, {"graph-token": "PASS",
                                   "graph-calendars": "PASS",
                                   "graph-mailbox-settings": "PASS",
                                   "graph-access-policy": "PASS"}, r.stdout)
            self.assertGreaterEqual(run.status()["graph"]["calls"],
                                    calls + 3)

            # From the shell, everything in place.
            rc, c, out = self.verify(run)
            self.assertEqual(rc, 0, out)
            self.assertEqual({k: v["verdict"] for k, v in c.items()},
                             got, out)
            self.assertEqual(c["graph-calendars"]["mailbox"], GRAPH[0])
            denied = g.stats()["counters"]["access_policy_denied"]
            self.assertGreater(denied, 0)

            # Calendars.Read not granted.
            g.control("PUT", "/policy", {"roles": ["MailboxSettings.Read"]})
            rc, c, out = self.verify(run)
            self.assertEqual(rc, 1, out)
            self.assertEqual(c["graph-calendars"]["verdict"], "FAIL")
            self.assertIn("lacks the application permission "
                          "Calendars.Read", c["graph-calendars"]["summary"])
            self.assertIn("Application permissions > Calendars.Read, then "
                          "Grant admin consent", c["graph-calendars"]["fix"])
            self.assertEqual(c["graph-mailbox-settings"]["verdict"], "PASS")
            self.assertEqual(c["graph-access-policy"]["verdict"], "WARN")
            self.assertGreater(g.stats()["counters"]
                               ["permission_denied_Calendars.Read"], 0)

            # MailboxSettings.Read not granted.
            g.control("PUT", "/policy", {"roles": ["Calendars.Read"]})
            rc, c, out = self.verify(run)
            self.assertEqual(rc, 1, out)
            self.assertEqual(c["graph-calendars"]["verdict"], "PASS")
            self.assertEqual(c["graph-mailbox-settings"]["verdict"], "FAIL")
            self.assertIn("MailboxSettings.Read",
                          c["graph-mailbox-settings"]["summary"])
            self.assertIn("MailboxSettings.Read",
                          c["graph-mailbox-settings"]["fix"])
            self.assertEqual(c["graph-access-policy"]["verdict"], "PASS")

            # No application access policy: the app reads any mailbox.
            g.control("PUT", "/policy", {"roles": ["Calendars.ReadWrite",
                                                   "MailboxSettings.Read"],
                                         "allow": None})
            rc, c, out = self.verify(run)
            self.assertEqual(c["graph-calendars"]["verdict"], "PASS", out)
            self.assertEqual(c["graph-access-policy"]["verdict"], "WARN")
            self.assertIn("New-ApplicationAccessPolicy -AppId %s"
                          % g.client_id, c["graph-access-policy"]["fix"])
            self.assertIn("no application access policy",
                          c["graph-access-policy"]["summary"])

            # A policy that leaves out a watched mailbox.
            g.control("PUT", "/policy", {"allow": [GRAPH[1]]})
            rc, c, out = self.verify(run)
            self.assertEqual(rc, 1, out)
            self.assertEqual(c["graph-calendars"]["verdict"], "FAIL")
            self.assertIn("application access policy refuses %s"
                          % GRAPH[0], c["graph-calendars"]["summary"])
            self.assertIn("Test-ApplicationAccessPolicy",
                          c["graph-calendars"]["fix"])
            self.assertGreater(g.stats()["counters"]["access_policy_denied"],
                               denied)

            # A client secret the token endpoint refuses.
            refused = g.stats()["counters"].get("token_refused", 0)
            with open(run.d.path("graph-secret"), "w") as f:
                f.write("not-the-secret\n")
            rc, c, out = self.verify(run)
            self.assertEqual(rc, 1, out)
            self.assertEqual(list(c), ["graph-token"], out)
            self.assertEqual(c["graph-token"]["verdict"], "FAIL")
            self.assertIn("client secret", c["graph-token"]["fix"])
            self.assertNotIn("not-the-secret", out)
            self.assertGreater(g.stats()["counters"]["token_refused"],
                               refused)
            self.assertEqual(g.stats()["violations_total"], 0)


class GraphConfig(unittest.TestCase):
    def write(self, d, text):
        path = os.path.join(d, "ewsgw.conf")
        with open(path, "w") as f:
            f.write(text)
        return path

    def test_errors_name_file_and_line(self):
        import tempfile
        with tempfile.TemporaryDirectory() as d:
            secret = os.path.join(d, "secret")
            with open(secret, "w") as f:
                f.write("s3cret-value\n")
            os.chmod(secret, 0o644)
            base = ("[exchange]\nurl = https://ex.example.com/EWS/"
                    "Exchange.asmx\nauth = oauth2\ntenant = t\n"
                    "client_id = c\nclient_secret_file = %s\n" % secret)
            # Line 7: [graph]; 8: client_secret_file readable by all.
            os.chmod(secret, 0o600)
            path = self.write(d, base + "[graph]\nclient_secret_file = "
                              "%s\nmailboxes = a@contoso.com b@contoso.com"
                              "\ndelta_interval = 0s\n" % secret)
            rc, out = check_config(path)
            self.assertNotEqual(rc, 0)
            self.assertIn("%s:7: missing required key 'client_id' in "
                          "[graph]" % path, out)
            self.assertIn("%s:10: value 0s for 'delta_interval'" % path, out)
            self.assertIn("tenant_id", out)
            os.chmod(secret, 0o644)
            path = self.write(d, base.replace(secret, secret + "x") +
                              "[graph]\nclient_id = c\ntenant_id = t\n"
                              "client_secret_file = %s\nmailboxes = "
                              "a@contoso.com\n" % secret)
            with open(secret + "x", "w") as f:
                f.write("other\n")
            os.chmod(secret + "x", 0o600)
            rc, out = check_config(path)
            self.assertNotEqual(rc, 0)
            self.assertIn("%s:10: client_secret_file '%s' is readable by "
                          "everyone" % (path, secret), out)
            self.assertNotIn("s3cret", out)
            # The same address on both backends.
            os.chmod(secret, 0o600)
            path = self.write(d, base + "[mailboxes]\nmailbox = "
                              "a@contoso.com\n[graph]\nclient_id = c\n"
                              "tenant_id = t\nclient_secret_file = %s\n"
                              "mailboxes = a@contoso.com\n" % secret)
            rc, out = check_config(path)
            self.assertNotEqual(rc, 0)
            self.assertIn("%s:13: duplicate mailbox 'a@contoso.com' "
                          "(first at %s:8)" % (path, path), out)
            path = self.write(d, base + "[graph]\nclient_id = c\n"
                              "tenant_id = t\nclient_secret_file = %s\n"
                              "mailboxes = a@contoso.com\n" % secret)
            rc, out = check_config(path)
            self.assertEqual(rc, 0, out)
            # auto without Autodiscover would never find a mailbox; with
            # it, it needs the app registration like a listed mailbox.
            path = self.write(d, base + "[graph]\nclient_id = c\n"
                              "tenant_id = t\nclient_secret_file = %s\n"
                              "auto = yes\n" % secret)
            rc, out = check_config(path)
            self.assertNotEqual(rc, 0)
            self.assertIn("%s:11: auto in [graph] needs autodiscover = yes "
                          "in [exchange]" % path, out)
            path = self.write(d, base.replace("tenant = t\n", "tenant = t\n"
                                              "autodiscover = yes\n") +
                              "[graph]\nauto = yes\n")
            rc, out = check_config(path)
            self.assertNotEqual(rc, 0)
            self.assertIn("missing required key 'client_id' in [graph] "
                          "(needed for Graph mailboxes or [graph] auto)",
                          out)


if __name__ == "__main__":
    unittest.main()
