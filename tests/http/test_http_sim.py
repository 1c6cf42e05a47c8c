#!/usr/bin/python3
# ewsgw - Exchange calendar presence gateway
# SPDX-License-Identifier: ISC
#
# The HTTP engine and the push listener against the EWS simulator: NTLM
# over one kept-alive connection, Basic, a refused password, the affinity
# cookie, a chunked GetStreamingEvents stream, and push notifications
# answered OK and then Unsubscribe.
import base64
import json
import os
import re
import subprocess
import sys
import tempfile
import time
import unittest
import urllib.request

TOP_SRCDIR = os.environ.get("top_srcdir", os.path.join(os.path.dirname(__file__), "..", ".."))
TOP_BUILDDIR = os.environ.get("top_builddir", TOP_SRCDIR)
HTTPC = os.path.join(TOP_BUILDDIR, "tests", "http", "httpc")
SIMDIR = os.path.join(TOP_SRCDIR, "tests", "sim")
DIRECTORY = os.path.join(SIMDIR, "directory-sample.json")

sys.path.insert(0, SIMDIR)
try:
    import lxml.etree  # noqa: F401  (the simulator needs it)
    from simharness import Simulator
except ImportError as exc:
    print("SKIP: simulator unavailable: %s" % exc)
    sys.exit(77)

if not os.access(HTTPC, os.X_OK):
    print("SKIP: %s not built" % HTTPC)
    sys.exit(77)

SOAP = "http://schemas.xmlsoap.org/soap/envelope/"
M = "http://schemas.microsoft.com/exchange/services/2006/messages"
T = "http://schemas.microsoft.com/exchange/services/2006/types"
USER, DOMAIN, PASSWORD = "svc-ewsgw", "CORP", "Passw0rd!"


def envelope(body, impersonate="alice@example.com"):
    hdr = '<t:RequestServerVersion Version="Exchange2013_SP1"/>'
    if impersonate:
        hdr += ("<t:ExchangeImpersonation><t:ConnectingSID><t:SmtpAddress>%s</t:SmtpAddress>"
                "</t:ConnectingSID></t:ExchangeImpersonation>" % impersonate)
    return ('<?xml version="1.0" encoding="utf-8"?><soap:Envelope xmlns:soap="%s" xmlns:m="%s" '
            'xmlns:t="%s"><soap:Header>%s</soap:Header><soap:Body>%s</soap:Body></soap:Envelope>'
            % (SOAP, M, T, hdr, body)).encode("utf-8")


OOF = envelope("<m:GetUserOofSettingsRequest><t:Mailbox><t:Address>alice@example.com</t:Address>"
               "</t:Mailbox></m:GetUserOofSettingsRequest>")
FOLDERS = ('<t:FolderIds><t:DistinguishedFolderId Id="calendar"/></t:FolderIds><t:EventTypes>'
           '<t:EventType>CreatedEvent</t:EventType><t:EventType>ModifiedEvent</t:EventType>'
           '</t:EventTypes>')
SUB_STREAM = envelope("<m:Subscribe><m:StreamingSubscriptionRequest>%s"
                      "</m:StreamingSubscriptionRequest></m:Subscribe>" % FOLDERS)


def gse(sub_id):
    return envelope("<m:GetStreamingEvents><m:SubscriptionIds><t:SubscriptionId>%s</t:SubscriptionId>"
                    "</m:SubscriptionIds><m:ConnectionTimeout>1</m:ConnectionTimeout>"
                    "</m:GetStreamingEvents>" % sub_id)


def sub_push(url):
    return envelope("<m:Subscribe><m:PushSubscriptionRequest>%s<t:StatusFrequency>1</t:StatusFrequency>"
                    "<t:URL>%s</t:URL></m:PushSubscriptionRequest></m:Subscribe>" % (FOLDERS, url))


def httpc(url, body, *args, timeout=60, want_log=False):
    """Run the client; returns (list of JSON lines, last body[, stderr])."""
    with tempfile.NamedTemporaryFile() as out:
        r = subprocess.run([HTTPC, "-o", out.name, *args, url], input=body,
                           capture_output=True, timeout=timeout)
        if r.returncode != 0:
            raise AssertionError("httpc failed: %s" % r.stderr.decode(errors="replace"))
        lines = [json.loads(x) for x in r.stdout.decode().splitlines() if x.strip()]
        with open(out.name, "rb") as fh:
            data = fh.read()
        return (lines, data, r.stderr.decode(errors="replace")) if want_log else (lines, data)


class EngineAgainstSimulator(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.sim = Simulator(directory=DIRECTORY, auth="ntlm,basic", minute_seconds=1).start()

    @classmethod
    def tearDownClass(cls):
        cls.sim.stop()

    def auth_stats(self):
        return self.sim.stats()["auth"]

    def test_ntlm_keepalive(self):
        before = self.auth_stats()
        lines, body = httpc(self.sim.ews_url, OOF, "-a", "ntlm", "-u", DOMAIN + "\\" + USER,
                            "-p", PASSWORD, "-n", "3", "-A", "alice@example.com")
        self.assertEqual([x["result"] for x in lines], ["ok"] * 3, lines)
        self.assertEqual([x["status"] for x in lines], [200] * 3)
        self.assertIn(b"GetUserOofSettingsResponse", body)
        after = self.auth_stats()
        # One handshake: the authenticated connection carried all three.
        self.assertEqual(after.get("ntlm_ok_v2", 0) - before.get("ntlm_ok_v2", 0), 1)
        self.assertEqual(after.get("ntlm_challenges", 0) - before.get("ntlm_challenges", 0), 1)

    def test_ntlm_trace_redacted(self):
        lines, _, log = httpc(self.sim.ews_url, OOF, "-v", "-a", "ntlm", "-u", DOMAIN + "\\" + USER,
                              "-p", PASSWORD, want_log=True)
        self.assertEqual(lines[0]["result"], "ok", lines)
        self.assertIn("> Authorization: NTLM <redacted>", log)
        self.assertIn("< WWW-Authenticate: NTLM <redacted>", log)
        # No NTLMSSP message (base64 "TlRMTVNTUA"), password or cookie value leaks.
        self.assertNotIn("TlRMTVNTUA", log)
        self.assertNotIn(PASSWORD, log)

    def test_ntlm_wrong_password(self):
        lines, _ = httpc(self.sim.ews_url, OOF, "-a", "ntlm", "-u", DOMAIN + "\\" + USER,
                         "-p", "wrong")
        self.assertEqual(lines[0]["result"], "auth", lines)
        self.assertEqual(lines[0]["status"], 401)
        self.assertIn("NTLM", lines[0]["www_authenticate"])

    def test_basic(self):
        lines, _ = httpc(self.sim.ews_url, OOF, "-a", "basic", "-u", USER, "-p", PASSWORD)
        self.assertEqual(lines[0]["result"], "ok", lines)

    def test_no_credentials_lists_offers(self):
        lines, _ = httpc(self.sim.ews_url, OOF)
        self.assertEqual(lines[0]["result"], "auth")
        offers = lines[0]["www_authenticate"].split("\n")
        self.assertEqual(offers[0], "NTLM")
        self.assertTrue(offers[1].startswith("Basic"), offers)

    def test_affinity_cookie_and_stream(self):
        auth = ("-a", "basic", "-u", USER, "-p", PASSWORD, "-A", "alice@example.com")
        lines, body = httpc(self.sim.ews_url, SUB_STREAM, *auth)
        self.assertEqual(lines[0]["result"], "ok", lines)
        cookie = lines[0]["cookie"]
        self.assertTrue(cookie, lines)
        sub_id = re.search(rb"SubscriptionId>([^<]+)<", body).group(1).decode()
        # The stream ends by itself after ConnectionTimeout (one simulated minute).
        lines, data = httpc(self.sim.ews_url, gse(sub_id), "-s", "-C", cookie, *auth)
        self.assertEqual(lines[0]["result"], "ok", lines)
        self.assertGreaterEqual(lines[0]["chunks"], 1)
        self.assertEqual(lines[0]["body_len"], len(data))
        self.assertIn(b"GetStreamingEventsResponse", data)
        self.assertIn(b"ConnectionStatus", data)
        self.assertEqual(self.sim.stats()["affinity"].get("gse_cookie_mismatch", 0), 0)

    def test_push_ok_then_unsubscribe(self):
        before = self.sim.stats()["push"]
        listener = subprocess.Popen([HTTPC, "-P", "/ewsgw/push", "-n", "2"], stdout=subprocess.PIPE,
                                    stderr=subprocess.PIPE)
        try:
            url = json.loads(listener.stdout.readline())["url"]
            self.assertRegex(url, r"^http://127\.0\.0\.1:\d+/ewsgw/push/[0-9a-f]{64}$")
            lines, body = httpc(self.sim.ews_url, sub_push(url), "-a", "basic", "-u", USER,
                                "-p", PASSWORD, "-A", "alice@example.com")
            self.assertEqual(lines[0]["result"], "ok", lines)
            sub_id = re.search(rb"SubscriptionId>([^<]+)<", body).group(1).decode()
            out, err = listener.communicate(timeout=30)
        finally:
            if listener.poll() is None:
                listener.kill()
                listener.wait()
        got = [json.loads(x) for x in out.decode().splitlines() if x.strip()]
        self.assertEqual([g["answer"] for g in got], ["OK", "Unsubscribe"], (got, err))
        self.assertEqual({g["subscription"] for g in got}, {sub_id})
        # The simulator read both answers: one OK, then Unsubscribe ended it.
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline and \
                self.sim.stats()["push"].get("unsubscribe", 0) - before.get("unsubscribe", 0) < 1:
            time.sleep(0.2)
        after = self.sim.stats()["push"]
        self.assertEqual(after.get("unsubscribe", 0) - before.get("unsubscribe", 0), 1, after)
        self.assertGreaterEqual(after.get("ok", 0) - before.get("ok", 0), 1, after)
        self.assertEqual(after.get("failed", 0) - before.get("failed", 0), 0, after)

if __name__ == "__main__":
    unittest.main(verbosity=2)
