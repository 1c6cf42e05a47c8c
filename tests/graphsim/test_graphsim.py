#!/usr/bin/env python3
"""The Graph stand-in checked by an independent client.

Debian has no Microsoft Graph SDK, so the client here is urllib replaying the
requests of Microsoft's reference pages, and every answer is validated against
the shapes written down from those pages in docschema.py (SCHEMA.md cites
them).  Nothing of graphsim.py or of the daemon is imported: a stand-in that
drifted from the documented protocol fails here.  The certificate assertion
is built with python3-cryptography, not with the daemon's C code.
"""
import base64
import concurrent.futures
import http.server
import json
import os
import secrets
import sys
import threading
import time
import unittest
import urllib.error
import urllib.parse
import urllib.request

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
import docschema as S  # noqa: E402
from harness import GraphSim  # noqa: E402

UTC = {"Prefer": 'outlook.timezone="UTC"'}


def call(method, url, body=None, headers=None, form=None):
    h = dict(headers or {})
    data = None
    if form is not None:
        data = urllib.parse.urlencode(form).encode()
        h["Content-Type"] = "application/x-www-form-urlencoded"
    elif body is not None:
        data = json.dumps(body).encode()
        h["Content-Type"] = "application/json"
    req = urllib.request.Request(url, data=data, method=method, headers=h)
    try:
        with urllib.request.urlopen(req, timeout=30) as r:
            raw = r.read()
            return r.status, dict(r.headers.items()), json.loads(raw) if raw else None
    except urllib.error.HTTPError as e:
        raw = e.read()
        return e.code, dict(e.headers.items()), json.loads(raw) if raw else None


class Receiver:
    """A notification endpoint: answers the validation handshake (or not) and
    keeps what is POSTed."""

    def __init__(self, echo=True):
        self.got = []
        self.validations = 0
        outer = self

        class H(http.server.BaseHTTPRequestHandler):
            def log_message(self, *a):
                pass

            def do_POST(self):
                q = urllib.parse.parse_qs(urllib.parse.urlsplit(self.path).query)
                n = int(self.headers.get("Content-Length") or 0)
                raw = self.rfile.read(n) if n else b""
                if "validationToken" in q:
                    outer.validations += 1
                    tok = q["validationToken"][0] if echo else "wrong"
                    data = tok.encode()
                    self.send_response(200)
                    self.send_header("Content-Type", "text/plain")
                else:
                    outer.got.append(json.loads(raw))
                    data = b""
                    self.send_response(202)
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

        self.srv = http.server.ThreadingHTTPServer(("127.0.0.1", 0), H)
        threading.Thread(target=self.srv.serve_forever, daemon=True).start()
        self.url = "http://127.0.0.1:%d/notify" % self.srv.server_address[1]

    def wait(self, n, timeout=10):
        end = time.monotonic() + timeout
        while len(self.got) < n and time.monotonic() < end:
            time.sleep(0.05)
        return self.got

    def close(self):
        self.srv.shutdown()
        self.srv.server_close()


class Case(unittest.TestCase):
    opts = {}

    @classmethod
    def setUpClass(cls):
        cls.g = GraphSim(allow_http_notify=True, **cls.opts).start()

    @classmethod
    def tearDownClass(cls):
        cls.g.stop()

    def shape(self, value, shape):
        self.assertEqual(S.check(value, shape), [], json.dumps(value)[:600])

    def token(self):
        st, _, body = call("POST", self.g.token_url, form={
            "client_id": self.g.client_id, "scope": "https://graph.microsoft.com/.default",
            "client_secret": "graph-secret", "grant_type": "client_credentials"})
        self.assertEqual(st, 200, body)
        self.shape(body, S.TOKEN)
        return {"Authorization": "Bearer " + body["access_token"]}

    def mailbox_id(self, upn):
        return [m["id"] for m in self.g.info["mailboxes"] if m["upn"] == upn][0]


class TokenTest(Case):
    opts = {"token_lifetime": 2}

    def test_client_secret(self):
        auth = self.token()
        st, _, body = call("GET", self.g.graph_url + "/users/adele@contoso.com/mailboxSettings/"
                           "automaticRepliesSetting", headers=auth)
        self.assertEqual(st, 200)
        # The documented error answer for a wrong secret.
        st, _, body = call("POST", self.g.token_url, form={
            "client_id": self.g.client_id, "scope": "https://graph.microsoft.com/.default",
            "client_secret": "nope", "grant_type": "client_credentials"})
        self.assertEqual(st, 401)
        self.shape(body, S.TOKEN_ERROR)
        self.assertEqual(body["error"], "invalid_client")
        # A token past its lifetime is refused with the documented error.
        time.sleep(2.5)
        st, hdr, body = call("GET", self.g.graph_url + "/users/adele@contoso.com/calendarView"
                             "?startDateTime=2026-01-01T00:00:00Z&endDateTime=2026-01-02T00:00:00Z",
                             headers=auth)
        self.assertEqual(st, 401)
        self.shape(body, S.ERROR)
        self.assertEqual(body["error"]["code"], "InvalidAuthenticationToken")
        self.assertGreaterEqual(self.g.stats()["counters"]["token_refused"], 1)


class AssertionTest(unittest.TestCase):
    def test_certificate_assertion(self):
        from cryptography import x509
        from cryptography.hazmat.primitives import hashes, serialization
        from cryptography.hazmat.primitives.asymmetric import padding, rsa
        from cryptography.x509.oid import NameOID
        import datetime
        import tempfile
        key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
        name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "graphsim-test")])
        now = datetime.datetime.now(datetime.timezone.utc)
        cert = (x509.CertificateBuilder().subject_name(name).issuer_name(name)
                .public_key(key.public_key()).serial_number(1)
                .not_valid_before(now).not_valid_after(now + datetime.timedelta(hours=1))
                .sign(key, hashes.SHA256()))
        with tempfile.NamedTemporaryFile("wb", suffix=".pem", delete=False) as fh:
            fh.write(cert.public_bytes(serialization.Encoding.PEM))
            path = fh.name
        try:
            with GraphSim(client_cert=path) as g:
                der = cert.public_bytes(serialization.Encoding.DER)
                h = hashes.Hash(hashes.SHA256())
                h.update(der)
                x5t = base64.urlsafe_b64encode(h.finalize()).rstrip(b"=").decode()

                def jwt(aud, jti):
                    b64 = lambda d: base64.urlsafe_b64encode(json.dumps(d).encode()).rstrip(b"=").decode()  # noqa: E731
                    t = int(time.time())
                    head = b64({"alg": "PS256", "typ": "JWT", "x5t#S256": x5t})
                    body = b64({"aud": aud, "iss": g.client_id, "sub": g.client_id, "jti": jti,
                                "nbf": t, "iat": t, "exp": t + 600})
                    sig = key.sign((head + "." + body).encode(),
                                   padding.PSS(mgf=padding.MGF1(hashes.SHA256()), salt_length=32),
                                   hashes.SHA256())
                    return head + "." + body + "." + base64.urlsafe_b64encode(sig).rstrip(b"=").decode()

                def ask(assertion):
                    return call("POST", g.token_url, form={
                        "scope": "https://graph.microsoft.com/.default",
                        "client_id": g.client_id,
                        "client_assertion_type":
                            "urn:ietf:params:oauth:client-assertion-type:jwt-bearer",
                        "client_assertion": assertion, "grant_type": "client_credentials"})
                st, _, body = ask(jwt(g.token_url, "a1"))
                self.assertEqual(st, 200, body)
                self.assertEqual(S.check(body, S.TOKEN), [])
                st, _, body = ask(jwt(g.token_url, "a1"))  # replayed jti
                self.assertEqual(st, 401)
                st, _, body = ask(jwt("https://elsewhere/token", "a2"))
                self.assertEqual(st, 401)
                self.assertIn("aud", body["error_description"])
                c = g.stats()["counters"]
                self.assertEqual(c["token_by_assertion"], 1)
                self.assertEqual(c["token_refused"], 2)
        finally:
            os.unlink(path)


class CalendarTest(Case):
    def test_calendar_view_paging_and_utc(self):
        auth = self.token()
        for i in range(5):
            self.g.control("POST", "/mailboxes/adele@contoso.com/events", {
                "subject": "m%d" % i, "start": "2026-03-02T%02d:00:00Z" % (8 + i),
                "end": "2026-03-02T%02d:30:00Z" % (8 + i),
                "showAs": ["busy", "tentative", "oof", "free", "workingElsewhere"][i],
                "sensitivity": "private" if i == 2 else "normal"})
        # The documented request: List calendarView with a window, $top.
        url = (self.g.graph_url + "/users/adele@contoso.com/calendarView?startDateTime="
               "2026-03-02T00:00:00Z&endDateTime=2026-03-03T00:00:00Z&$top=2")
        seen = []
        while url:
            st, _, body = call("GET", url, headers=dict(auth, **UTC))
            self.assertEqual(st, 200, body)
            self.shape(body, S.CALENDAR_VIEW)
            seen += body["value"]
            url = body.get("@odata.nextLink")
        self.assertEqual([e["subject"] for e in seen], ["m0", "m1", "m2", "m3", "m4"])
        self.assertTrue(all(e["start"]["timeZone"] == "UTC" for e in seen))
        self.assertEqual(seen[0]["start"]["dateTime"], "2026-03-02T08:00:00.0000000")
        # Without Prefer the zone is the mailbox's, not UTC.
        st, _, body = call("GET", self.g.graph_url + "/users/adele@contoso.com/calendarView?"
                           "startDateTime=2026-03-02T00:00:00Z&endDateTime=2026-03-03T00:00:00Z",
                           headers=auth)
        self.assertNotEqual(body["value"][0]["start"]["timeZone"], "UTC")
        # A window is required.
        st, _, body = call("GET", self.g.graph_url + "/users/adele@contoso.com/calendarView",
                           headers=auth)
        self.assertEqual(st, 400)
        self.shape(body, S.ERROR)

    def test_delta_rounds(self):
        auth = self.token()
        ids = [self.g.control("POST", "/mailboxes/alex@contoso.com/events", {
            "subject": "d%d" % i, "start": "2026-04-01T%02d:00:00Z" % (9 + i),
            "end": "2026-04-01T%02d:30:00Z" % (9 + i)})["id"] for i in range(3)]
        url = (self.g.graph_url + "/users/alex@contoso.com/calendarView/delta?startDateTime="
               "2026-04-01T00:00:00Z&endDateTime=2026-04-02T00:00:00Z")
        hdr = dict(auth, Prefer='outlook.timezone="UTC", odata.maxpagesize=2')
        items, delta = [], None
        while url:
            st, _, body = call("GET", url, headers=hdr)
            self.assertEqual(st, 200, body)
            self.shape(body, S.DELTA)
            items += body["value"]
            url = body.get("@odata.nextLink")
            delta = body.get("@odata.deltaLink")
        self.assertEqual(len(items), 3)
        self.assertTrue(delta)
        # Changes: one moved out of the window, one cancelled, one deleted, one new.
        self.g.control("PATCH", "/mailboxes/alex@contoso.com/events/" + ids[0],
                       {"start": "2026-05-01T09:00:00Z", "end": "2026-05-01T10:00:00Z"})
        self.g.control("PATCH", "/mailboxes/alex@contoso.com/events/" + ids[1],
                       {"isCancelled": True})
        self.g.control("DELETE", "/mailboxes/alex@contoso.com/events/" + ids[2])
        new = self.g.control("POST", "/mailboxes/alex@contoso.com/events", {
            "subject": "n", "start": "2026-04-01T15:00:00Z", "end": "2026-04-01T16:00:00Z"})["id"]
        st, _, body = call("GET", delta, headers=hdr)
        rows = body["value"]
        while "@odata.nextLink" in body:
            st, _, body = call("GET", body["@odata.nextLink"], headers=hdr)
            rows += body["value"]
        self.shape(body, S.DELTA)
        removed = sorted(r["id"] for r in rows if "@removed" in r)
        changed = {r["id"]: r for r in rows if "@removed" not in r}
        self.assertEqual(removed, sorted([ids[0], ids[2]]))
        self.assertTrue(changed[ids[1]]["isCancelled"])
        self.assertIn(new, changed)
        st, _, body = call("GET", self.g.graph_url + "/users/alex@contoso.com/calendarView/"
                           "delta?$deltatoken=bogus", headers=auth)
        self.assertEqual(st, 410)
        self.shape(body, S.ERROR)

    def test_automatic_replies(self):
        auth = self.token()
        self.g.control("PUT", "/mailboxes/adele@contoso.com/automaticReplies", {
            "status": "scheduled", "start": "2026-03-16T08:00:00Z", "end": "2026-03-20T17:00:00Z"})
        st, _, body = call("GET", self.g.graph_url + "/users/adele@contoso.com/mailboxSettings/"
                           "automaticRepliesSetting", headers=auth)
        self.assertEqual(st, 200)
        self.shape(body, S.AUTO_REPLIES)
        self.assertEqual(body["status"], "scheduled")
        self.assertEqual(body["scheduledEndDateTime"],
                         {"dateTime": "2026-03-20T17:00:00.0000000", "timeZone": "UTC"})


class SubscriptionTest(Case):
    def test_lifecycle_of_a_subscription(self):
        auth = self.token()
        rx = Receiver()
        try:
            exp = time.strftime("%Y-%m-%dT%H:%M:%S.0000000Z", time.gmtime(time.time() + 3600))
            # The documented create request, with a lifecycle URL.
            st, _, sub = call("POST", self.g.graph_url + "/subscriptions", headers=auth, body={
                "changeType": "created,updated,deleted", "notificationUrl": rx.url,
                "lifecycleNotificationUrl": rx.url + "?lc=1",
                "resource": "/users/adele@contoso.com/events", "expirationDateTime": exp,
                "clientState": "secretClientValue"})
            self.assertEqual(st, 201, sub)
            self.shape(sub, S.SUBSCRIPTION)
            self.assertEqual(rx.validations, 2)
            ev = self.g.control("POST", "/mailboxes/adele@contoso.com/events", {
                "start": "now+1h", "end": "now+2h"})
            got = rx.wait(1)
            self.shape(got[0], S.NOTIFICATIONS)
            n = got[0]["value"][0]
            self.assertEqual((n["changeType"], n["clientState"], n["resourceData"]["id"]),
                             ("created", "secretClientValue", ev["id"]))
            self.g.control("POST", "/subscriptions/%s/lifecycle" % sub["id"], {"event": "missed"})
            got = rx.wait(2)
            self.shape(got[1], S.NOTIFICATIONS)
            self.assertEqual(got[1]["value"][0]["lifecycleEvent"], "missed")
            # Renew, within and beyond the limit.
            exp2 = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(time.time() + 4000 * 60))
            st, _, body = call("PATCH", self.g.graph_url + "/subscriptions/" + sub["id"],
                               headers=auth, body={"expirationDateTime": exp2})
            self.assertEqual(st, 200, body)
            self.shape(body, S.SUBSCRIPTION)
            exp3 = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(time.time() + 4300 * 60))
            st, _, body = call("PATCH", self.g.graph_url + "/subscriptions/" + sub["id"],
                               headers=auth, body={"expirationDateTime": exp3})
            self.assertEqual(st, 400)
            self.shape(body, S.ERROR)
            # subscriptionRemoved ends it: renewals then find nothing.
            self.g.control("POST", "/subscriptions/%s/lifecycle" % sub["id"],
                           {"event": "subscriptionRemoved"})
            rx.wait(3)
            self.assertEqual(rx.got[2]["value"][0]["lifecycleEvent"], "subscriptionRemoved")
            st, _, body = call("PATCH", self.g.graph_url + "/subscriptions/" + sub["id"],
                               headers=auth, body={"expirationDateTime": exp2})
            self.assertEqual(st, 404)
            c = self.g.stats()["counters"]
            self.assertEqual(c["change_notifications_delivered"], 1)
            self.assertEqual(c["lifecycle_notifications_delivered"], 2)
        finally:
            rx.close()

    def test_validation_must_echo(self):
        auth = self.token()
        rx = Receiver(echo=False)
        try:
            exp = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(time.time() + 3600))
            st, _, body = call("POST", self.g.graph_url + "/subscriptions", headers=auth, body={
                "changeType": "updated", "notificationUrl": rx.url,
                "resource": "/users/adele@contoso.com/events", "expirationDateTime": exp,
                "clientState": "x"})
            self.assertEqual(st, 400)
            self.shape(body, S.ERROR)
            self.assertIn("validation", body["error"]["message"])
            self.assertGreaterEqual(self.g.stats()["counters"]["validations_failed"], 1)
        finally:
            rx.close()


class PolicyTest(Case):
    opts = {"allow": "adele@contoso.com"}

    def test_access_policy(self):
        auth = self.token()
        st, _, body = call("GET", self.g.graph_url + "/users/alex@contoso.com/mailboxSettings/"
                           "automaticRepliesSetting", headers=auth)
        self.assertEqual(st, 403)
        self.shape(body, S.ERROR)
        self.assertEqual(body["error"]["code"], "ErrorAccessDenied")
        st, _, body = call("GET", self.g.graph_url + "/users/adele@contoso.com/mailboxSettings/"
                           "automaticRepliesSetting", headers=auth)
        self.assertEqual(st, 200)
        self.assertEqual(self.g.stats()["counters"]["access_policy_denied"], 1)


class OnPremisesTest(Case):
    def test_mailbox_moved_on_premises(self):
        auth = self.token()
        cv = (self.g.graph_url + "/users/alex@contoso.com/calendarView?startDateTime="
              "2026-03-02T00:00:00Z&endDateTime=2026-03-03T00:00:00Z")
        self.assertEqual(call("GET", cv, headers=auth)[0], 200)
        self.g.control("PUT", "/mailboxes/alex@contoso.com/location", {"on_premises": True})
        # Microsoft's KB 4462988: 404 MailboxNotEnabledForRESTAPI for a
        # mailbox hosted on an Exchange server, for reads and subscriptions.
        st, _, body = call("GET", cv, headers=auth)
        self.assertEqual(st, 404)
        self.shape(body, S.ERROR)
        self.assertEqual(body["error"]["code"], "MailboxNotEnabledForRESTAPI")
        st, _, body = call("POST", self.g.graph_url + "/subscriptions", headers=auth, body={
            "changeType": "created,updated,deleted", "notificationUrl": "https://127.0.0.1:1/n",
            "resource": "/users/alex@contoso.com/events",
            "expirationDateTime": "2099-01-01T00:00:00Z", "clientState": "x"})
        self.assertEqual((st, body["error"]["code"]), (404, "MailboxNotEnabledForRESTAPI"))
        st, _, body = call("GET", self.g.graph_url + "/users/nobody@contoso.com/calendarView"
                           "?startDateTime=2026-03-02T00:00:00Z&endDateTime=2026-03-03T00:00:00Z",
                           headers=auth)
        self.assertEqual((st, body["error"]["code"]), (404, "ErrorInvalidUser"))
        self.g.control("PUT", "/mailboxes/alex@contoso.com/location", {"on_premises": False})
        self.assertEqual(call("GET", cv, headers=auth)[0], 200)
        self.assertEqual(self.g.stats()["counters"]["no_mailbox_404"], 2)


class ThrottleTest(Case):
    opts = {"latency_ms": 400, "rate": 12, "rate_window": 60}

    def test_concurrency_rate_and_retry_after(self):
        auth = self.token()
        url = self.g.graph_url + "/users/adele@contoso.com/mailboxSettings/automaticRepliesSetting"
        with concurrent.futures.ThreadPoolExecutor(6) as ex:
            res = list(ex.map(lambda _: call("GET", url, headers=auth), range(6)))
        codes = sorted(r[0] for r in res)
        self.assertEqual(codes.count(200), 4)
        self.assertEqual(codes.count(429), 2)
        r429 = [r for r in res if r[0] == 429][0]
        self.assertEqual(r429[1]["Retry-After"], "2")
        self.shape(r429[2], S.ERROR)
        st = self.g.stats()
        self.assertEqual(st["violations"]["mailbox_concurrency"], 2)
        self.assertEqual(st["max_in_flight_per_mailbox"]["adele@contoso.com"], 4)
        # Coming back before Retry-After is a counted breach.
        call("GET", url, headers=auth)
        self.assertEqual(self.g.stats()["violations"]["retry_after_ignored"], 1)
        time.sleep(2.1)
        # Injected throttling is a fault, not a violation.
        self.g.control("POST", "/faults", {"throttle": 1, "retry_after": 1})
        self.assertEqual(call("GET", url, headers=auth)[0], 429)
        self.assertEqual(self.g.stats()["faults_injected"], 1)
        time.sleep(1.1)
        # Rate: 12 per window; 5 granted so far (4 + 1); 7 more pass, then 429.
        codes = [call("GET", url, headers=auth)[0] for _ in range(8)]
        self.assertEqual(codes, [200] * 7 + [429])
        self.assertEqual(self.g.stats()["violations"]["mailbox_rate"], 1)


class AppRateTest(Case):
    opts = {"app_rate": 5, "app_rate_window": 60}

    def test_app_rate_counts_every_mailbox_and_batch_step(self):
        auth = self.token()
        url = self.g.graph_url + "/users/%s/mailboxSettings/automaticRepliesSetting"
        self.assertEqual(call("GET", url % "adele@contoso.com", headers=auth)[0], 200)
        self.assertEqual(call("GET", url % "alex@contoso.com", headers=auth)[0], 200)
        # Three steps of a $batch count three, not one: five reached.
        st, _, body = call("POST", self.g.graph_url + "/$batch", headers=auth, body={
            "requests": [{"id": str(i), "method": "GET",
                          "url": "/users/alex@contoso.com/mailboxSettings/automaticRepliesSetting"}
                         for i in (1, 2, 3)]})
        self.assertEqual(st, 200)
        self.assertEqual([r["status"] for r in body["responses"]], [200] * 3)
        # The sixth, to a mailbox far inside its own budget: the app's
        # limit refuses it.
        st, h, body = call("GET", url % "adele@contoso.com", headers=auth)
        self.assertEqual(st, 429)
        self.assertEqual(h["Retry-After"], "2")
        self.shape(body, S.ERROR)
        s = self.g.stats()
        self.assertEqual(s["violations"]["app_rate"], 1, s)
        self.assertEqual(s["violations"]["mailbox_rate"], 0, s)
        self.assertEqual(s["violations_total"], 1, s)


class BatchTest(Case):
    def test_batch(self):
        auth = self.token()
        # The documented batch shape: ids, methods, relative urls, headers.
        st, _, body = call("POST", self.g.graph_url + "/$batch", headers=auth, body={"requests": [
            {"id": "1", "method": "GET", "url": "/users/adele@contoso.com/calendarView?"
             "startDateTime=2026-03-02T00:00:00Z&endDateTime=2026-03-03T00:00:00Z",
             "headers": UTC},
            {"id": "2", "method": "GET",
             "url": "/users/adele@contoso.com/mailboxSettings/automaticRepliesSetting"},
            {"id": "3", "method": "GET", "url": "/users/nobody@contoso.com/calendarView?"
             "startDateTime=2026-03-02T00:00:00Z&endDateTime=2026-03-03T00:00:00Z"}]})
        self.assertEqual(st, 200, body)
        self.shape(body, S.BATCH)
        by = {r["id"]: r for r in body["responses"]}
        self.shape(by["1"]["body"], S.CALENDAR_VIEW)
        self.shape(by["2"]["body"], S.AUTO_REPLIES)
        self.assertEqual(by["3"]["status"], 404)
        self.shape(by["3"]["body"], S.ERROR)
        reqs = [{"id": str(i), "method": "GET",
                 "url": "/users/alex@contoso.com/mailboxSettings/automaticRepliesSetting"}
                for i in range(21)]
        st, _, body = call("POST", self.g.graph_url + "/$batch", headers=auth,
                           body={"requests": reqs})
        self.assertEqual(st, 400)
        self.shape(body, S.ERROR)
        # Six steps on one mailbox: two more than the four Graph runs at once.
        st, _, body = call("POST", self.g.graph_url + "/$batch", headers=auth,
                           body={"requests": reqs[:6]})
        statuses = sorted(r["status"] for r in body["responses"])
        self.assertEqual(statuses, [200] * 4 + [429] * 2)
        self.assertEqual(self.g.stats()["violations"]["batch_concurrency"], 2)


if __name__ == "__main__":
    unittest.main(verbosity=2)
