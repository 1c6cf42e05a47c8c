#!/usr/bin/env python3
"""The daemon's Graph client (src/io/graph_client.c, driven by graphc) against
the Graph stand-in: tokens by secret and by certificate assertion, calendar
reads with paging, delta rounds, automatic replies, subscriptions, $batch,
the per-mailbox concurrency limit kept, Retry-After honoured, and the
application access policy reported.  Each injected fault is asserted in the
stand-in's counters."""
import json
import os
import subprocess
import sys
import tempfile
import threading
import time
import unittest
import http.server
import urllib.parse

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
from harness import GraphSim  # noqa: E402

BUILD = os.environ.get("top_builddir", os.path.join(HERE, "..", ".."))
GRAPHC = os.path.join(BUILD, "tests", "graphsim", "graphc")


def graphc(g, ops, secret="graph-secret", cert=None, notify=None,
           batch=False, app_rate=None):
    args = [GRAPHC, "-g", g.graph_url, "-t", g.token_url, "-i", g.client_id]
    if batch:
        args.append("-B")
    if app_rate:
        args += ["-r", str(app_rate[0]), "-w", str(app_rate[1])]
    args += ["-c", cert[0], "-k", cert[1]] if cert else ["-s", secret]
    if notify:
        args += ["-n", notify]
    p = subprocess.run(args + ops, capture_output=True, text=True, timeout=120)
    if p.returncode != 0:
        raise AssertionError("graphc: %s %s" % (p.returncode, p.stderr[-2000:]))
    lines = [json.loads(x) for x in p.stdout.splitlines() if x.strip()]
    return lines[:-1], lines[-1]["stats"]


class ClientTest(unittest.TestCase):
    def test_concurrency_kept_and_retry_after_honoured(self):
        with GraphSim(latency_ms=150) as g:
            for i in range(25):
                g.control("POST", "/mailboxes/adele@contoso.com/events", {
                    "subject": "m%d" % i, "start": "now+%dh" % (i + 1),
                    "end": "now+%dh+30m" % (i + 1), "showAs": "busy"})
            # Twelve reads of one mailbox at once, three of another.
            ops = ["calview:adele@contoso.com"] * 6 + ["auto:adele@contoso.com"] * 6 + \
                ["auto:alex@contoso.com"] * 3
            res, st = graphc(g, ops)
            self.assertEqual([r["action"] for r in res], ["ok"] * 15)
            cal = [r for r in res if r["op"] == "calview"]
            # 25 events, one page of $top=100 each (delta covers paging).
            self.assertTrue(all(r["items"] == 25 and r["pages"] == 1 for r in cal), cal)
            s = g.stats()
            self.assertEqual(s["violations_total"], 0, s)
            self.assertEqual(s["max_in_flight_per_mailbox"]["adele@contoso.com"], 4)
            self.assertGreater(st["waited_slot"], 0)
            self.assertEqual(st["max_in_flight_mailbox"], 4)
            self.assertEqual(s["counters"]["tokens_issued"], 1)

            # Throttling injected: every call still succeeds, after waiting.
            g.control("POST", "/stats/reset")
            g.control("POST", "/faults", {"throttle": 3, "retry_after": 1})
            res, st = graphc(g, ["auto:adele@contoso.com"] * 5)
            self.assertEqual([r["action"] for r in res], ["ok"] * 5)
            s = g.stats()
            self.assertEqual(s["faults_injected"], 3)
            self.assertEqual(s["violations_total"], 0, s)
            self.assertEqual(st["throttled"], 3)
            self.assertEqual(st["retries"], 3)
            self.assertGreaterEqual(max(r["attempts"] for r in res), 2)

    def test_app_rate_over_all_mailboxes(self):
        """Graph's per-app limit over all mailboxes, lowered in the
        stand-in to 24 requests in 2 s.  A client told the limit's
        default (130,000 per 10 s) breaks it with 30 mailboxes read at
        once, and the stand-in refuses and counts that; the same client
        given a lower app rate waits for it and breaks nothing, though
        each mailbox is far inside its own budget."""
        many = ["user%06d@contoso.com" % (i + 1) for i in range(30)]
        ops = ["auto:%s" % m for m in many]
        with GraphSim(generate=30, latency_ms=20, app_rate=24,
                      app_rate_window=2) as g:
            res, st = graphc(g, ops)
            s = g.stats()
            self.assertGreater(s["violations"]["app_rate"], 0, s)
            self.assertGreater(st["throttled"], 0, st)
            self.assertEqual(st["waited_app"], 0, st)

            g.control("POST", "/stats/reset")
            time.sleep(2.5)     # the stand-in's window is clear again
            res, st = graphc(g, ops, app_rate=(20, 2000))
            self.assertEqual([r["action"] for r in res], ["ok"] * len(ops))
            s = g.stats()
            self.assertEqual(s["violations_total"], 0, s["violations"])
            self.assertEqual(s["requests"].get("automaticReplies"), 30, s)
            self.assertEqual(st["throttled"], 0, st)
            self.assertGreater(st["waited_app"], 0, st)
            self.assertLessEqual(st["max_app_window_requests"], 20, st)
            self.assertEqual(st["app_rate"], 20, st)
            self.assertEqual(st["app_rate_window_s"], 2, st)

    def test_batches_keep_the_mailbox_limit_and_twenty_steps(self):
        """Batchable reads gathered into $batch: no batch carries more of
        a mailbox than its free slots (the stand-in refuses such steps
        with 429 and counts a violation), none more than 20 steps (the
        stand-in answers 400), and the mailbox never has more than 4 in
        flight, batch steps and single requests together."""
        with GraphSim(latency_ms=150, generate=30) as g:
            many = ["user%06d@contoso.com" % (i + 1) for i in range(30)]
            # Twelve reads of one mailbox, then one of 30 others: 42
            # batchable reads started in the same loop pass.
            ops = ["auto:adele@contoso.com"] * 6 + \
                ["calview:adele@contoso.com"] * 6 + \
                ["auto:%s" % m for m in many]
            res, st = graphc(g, ops, batch=True)
            self.assertEqual([r["action"] for r in res], ["ok"] * len(ops),
                             [r for r in res if r["action"] != "ok"][:2])
            s = g.stats()
            self.assertEqual(s["violations_total"], 0, s["violations"])
            batches = s["requests"].get("batch", 0)
            steps = s["counters"].get("batch_steps", 0)
            # 34 reads could go at once (4 of adele, 30 others): more
            # than one batch of 20 was needed, each within 20 steps.
            self.assertGreaterEqual(batches, 2, s)
            self.assertLessEqual(steps, 20 * batches, s)
            self.assertEqual(st["batches"], batches, st)
            self.assertEqual(st["batched"], steps, st)
            # adele's eight other reads waited for her slots.
            self.assertEqual(
                s["max_in_flight_per_mailbox"]["adele@contoso.com"], 4, s)
            self.assertEqual(st["max_in_flight_mailbox"], 4, st)
            self.assertGreater(st["waited_slot"], 0, st)

    def test_delta_batch_and_policy(self):
        with GraphSim(allow="adele@contoso.com") as g:
            for i in range(3):
                g.control("POST", "/mailboxes/adele@contoso.com/events", {
                    "start": "now+%dh" % (i + 1), "end": "now+%dh+30m" % (i + 1)})
            res, _ = graphc(g, ["delta:adele@contoso.com", "batch:adele@contoso.com",
                                "auto:alex@contoso.com"])
            by = {r["op"]: r for r in res}
            # Full round in pages of 2, then an empty incremental round.
            self.assertEqual((by["delta"]["action"], by["delta"]["items"],
                              by["delta"]["pages"]), ("ok", 3, 3))
            self.assertEqual((by["batch"]["action"], by["batch"]["items"],
                              by["batch"]["detail"]), ("ok", 3, "both"))
            self.assertEqual((by["auto"]["action"], by["auto"]["status"],
                              by["auto"]["code"]), ("denied", 403, "ErrorAccessDenied"))
            s = g.stats()
            self.assertEqual(s["counters"]["access_policy_denied"], 1)
            self.assertEqual(s["counters"]["delta_full"], 1)
            self.assertEqual(s["counters"]["delta_incremental"], 1)

    def test_certificate_and_subscription(self):
        from cryptography import x509
        from cryptography.hazmat.primitives import hashes, serialization
        from cryptography.hazmat.primitives.asymmetric import rsa
        from cryptography.x509.oid import NameOID
        import datetime
        d = tempfile.mkdtemp(prefix="graphc-")
        key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
        name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "ewsgw-graph")])
        now = datetime.datetime.now(datetime.timezone.utc)
        cert = (x509.CertificateBuilder().subject_name(name).issuer_name(name)
                .public_key(key.public_key()).serial_number(7).not_valid_before(now)
                .not_valid_after(now + datetime.timedelta(hours=1)).sign(key, hashes.SHA256()))
        cpath, kpath = os.path.join(d, "app.crt"), os.path.join(d, "app.key")
        with open(cpath, "wb") as fh:
            fh.write(cert.public_bytes(serialization.Encoding.PEM))
        with open(kpath, "wb") as fh:
            fh.write(key.private_bytes(serialization.Encoding.PEM,
                                       serialization.PrivateFormat.PKCS8,
                                       serialization.NoEncryption()))
        seen = []

        class H(http.server.BaseHTTPRequestHandler):
            def log_message(self, *a):
                pass

            def do_POST(self):
                q = urllib.parse.parse_qs(urllib.parse.urlsplit(self.path).query)
                tok = q.get("validationToken", [""])[0].encode()
                seen.append(tok)
                self.send_response(200)
                self.send_header("Content-Type", "text/plain")
                self.send_header("Content-Length", str(len(tok)))
                self.end_headers()
                self.wfile.write(tok)
        rx = http.server.ThreadingHTTPServer(("127.0.0.1", 0), H)
        threading.Thread(target=rx.serve_forever, daemon=True).start()
        try:
            with GraphSim(client_cert=cpath, allow_http_notify=True) as g:
                res, st = graphc(g, ["subscribe:adele@contoso.com", "auto:adele@contoso.com"],
                                 cert=(cpath, kpath),
                                 notify="http://127.0.0.1:%d/n" % rx.server_address[1])
                by = {r["op"]: r for r in res}
                self.assertEqual((by["subscribe"]["action"], by["subscribe"]["detail"]),
                                 ("ok", "deleted"))
                self.assertEqual(by["auto"]["action"], "ok")
                c = g.stats()["counters"]
                self.assertEqual(c["token_by_assertion"], 1)
                self.assertNotIn("token_by_secret", c)
                self.assertEqual(c["subscriptions_created"], 1)
                self.assertEqual(c["subscriptions_renewed"], 1)
                self.assertEqual(c["validations_ok"], 1)
                self.assertEqual(g.stats()["subscriptions"], 0)
                # A wrong secret: every call reports auth, one fetch.
                res, st = graphc(g, ["auto:adele@contoso.com"], secret="wrong")
                self.assertEqual(res[0]["action"], "auth")
                self.assertEqual(g.stats()["counters"]["token_refused"], 1)
        finally:
            rx.shutdown()
            rx.server_close()
            for f in (cpath, kpath):
                os.unlink(f)
            os.rmdir(d)


if __name__ == "__main__":
    unittest.main(verbosity=2)
