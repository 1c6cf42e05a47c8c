"""A hybrid deployment through the real daemon: mailboxes on premises on
EWS (tests/sim) and mailboxes in Exchange Online on Microsoft Graph
(tests/graphsim) watched by one daemon at once.  Presence flips on both
backends, neither stand-in counts a budget violation, a 429 injected on
the Graph side really happened and was waited out, Graph mailboxes stay
out of Exchange's subscription budget, a mailbox the application access
policy excludes is parked, and the [graph] configuration is checked
with file:line messages."""
import os
import sys
import time
import unittest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from ewsgwsim import GatewayRun, generated, iso  # noqa: E402
from ewsgwtest import TOP_SRCDIR, check_config, wait_for  # noqa: E402

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

    def __init__(self, graph=None, **graph_keys):
        self.graph_opts = graph or {}
        self.graph_keys = graph_keys

    def __enter__(self):
        self.g = GraphSim(**self.graph_opts).__enter__()
        try:
            self.run = GatewayRun(EWS, sim={"generate": len(EWS)},
                                  start=False)
            self.run.__enter__()
            secret = self.run.d.path("graph-secret")
            fd = os.open(secret, os.O_WRONLY | os.O_CREAT | os.O_TRUNC,
                         0o600)
            os.write(fd, b"graph-secret\n")
            os.close(fd)
            self.run.rewrite_config(graph_sections(self.g, secret,
                                                   **self.graph_keys))
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


if __name__ == "__main__":
    unittest.main()
