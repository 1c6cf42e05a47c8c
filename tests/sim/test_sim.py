#!/usr/bin/python3
"""Tests of the EWS simulator itself (run by /usr/bin/python3; plain unittest)."""
import base64
import hashlib
import hmac
import http.server
import os
import re
import shutil
import socket
import struct
import subprocess
import sys
import threading
import time
import unittest

HERE = os.path.dirname(os.path.abspath(__file__))
sys.dont_write_bytecode = True  # the source tree may be read-only (distcheck)
sys.path.insert(0, HERE)

from lxml import etree  # noqa: E402

from sim import ntlm as simntlm  # noqa: E402
from sim.schema import Schema, find_schema_dir  # noqa: E402
from simharness import Simulator  # noqa: E402

SOAP = "http://schemas.xmlsoap.org/soap/envelope/"
M = "http://schemas.microsoft.com/exchange/services/2006/messages"
T = "http://schemas.microsoft.com/exchange/services/2006/types"
E = "http://schemas.microsoft.com/exchange/services/2006/errors"
NS = {"s": SOAP, "m": M, "t": T, "e": E}
DIRECTORY = os.path.join(HERE, "directory-sample.json")
SCHEMA_DIR = find_schema_dir()
SVC = ("svc-ewsgw", "Passw0rd!")
BASIC = "Basic " + base64.b64encode(b"svc-ewsgw:Passw0rd!").decode()


# ----------------------------------------------------------------------- client helpers
def envelope(body, impersonate=None, version="Exchange2013_SP1", id_kind="SmtpAddress"):
    hdr = '<t:RequestServerVersion Version="%s"/>' % version
    if impersonate:
        hdr += ('<t:ExchangeImpersonation><t:ConnectingSID><t:%s>%s</t:%s></t:ConnectingSID>'
                '</t:ExchangeImpersonation>' % (id_kind, impersonate, id_kind))
    return ('<?xml version="1.0" encoding="utf-8"?><soap:Envelope xmlns:soap="%s" xmlns:m="%s" '
            'xmlns:t="%s"><soap:Header>%s</soap:Header><soap:Body>%s</soap:Body></soap:Envelope>'
            % (SOAP, M, T, hdr, body)).encode("utf-8")


OOF_BODY = '<m:GetUserOofSettingsRequest><t:Mailbox><t:Address>%s</t:Address></t:Mailbox></m:GetUserOofSettingsRequest>'
SUB_STREAM = ('<m:Subscribe><m:StreamingSubscriptionRequest><t:FolderIds><t:DistinguishedFolderId Id="calendar"/>'
              '</t:FolderIds><t:EventTypes><t:EventType>CreatedEvent</t:EventType><t:EventType>ModifiedEvent'
              '</t:EventType><t:EventType>DeletedEvent</t:EventType></t:EventTypes>'
              '</m:StreamingSubscriptionRequest></m:Subscribe>')
SUB_PULL = ('<m:Subscribe><m:PullSubscriptionRequest><t:FolderIds><t:DistinguishedFolderId Id="calendar"/>'
            '</t:FolderIds><t:EventTypes><t:EventType>CreatedEvent</t:EventType></t:EventTypes>'
            '<t:Timeout>%d</t:Timeout></m:PullSubscriptionRequest></m:Subscribe>')
SUB_PUSH = ('<m:Subscribe><m:PushSubscriptionRequest><t:FolderIds><t:DistinguishedFolderId Id="calendar"/>'
            '</t:FolderIds><t:EventTypes><t:EventType>CreatedEvent</t:EventType></t:EventTypes>'
            '<t:StatusFrequency>1</t:StatusFrequency><t:URL>%s</t:URL></m:PushSubscriptionRequest></m:Subscribe>')


def gse_body(ids, timeout=1):
    return ('<m:GetStreamingEvents><m:SubscriptionIds>%s</m:SubscriptionIds><m:ConnectionTimeout>%d'
            '</m:ConnectionTimeout></m:GetStreamingEvents>'
            % ("".join("<t:SubscriptionId>%s</t:SubscriptionId>" % i for i in ids), timeout))


def getevents_body(sid, wm):
    return ('<m:GetEvents><m:SubscriptionId>%s</m:SubscriptionId><m:Watermark>%s</m:Watermark>'
            '</m:GetEvents>' % (sid, wm))


def calview_body(start, end, smtp=None):
    mbx = "<t:Mailbox><t:EmailAddress>%s</t:EmailAddress></t:Mailbox>" % smtp if smtp else ""
    return ('<m:FindItem Traversal="Shallow"><m:ItemShape><t:BaseShape>IdOnly</t:BaseShape>'
            '<t:AdditionalProperties><t:FieldURI FieldURI="item:Subject"/><t:FieldURI FieldURI="calendar:Start"/>'
            '<t:FieldURI FieldURI="calendar:End"/><t:FieldURI FieldURI="calendar:CalendarItemType"/>'
            '<t:FieldURI FieldURI="calendar:LegacyFreeBusyStatus"/></t:AdditionalProperties></m:ItemShape>'
            '<m:CalendarView StartDate="%s" EndDate="%s"/><m:ParentFolderIds><t:DistinguishedFolderId Id="calendar">'
            '%s</t:DistinguishedFolderId></m:ParentFolderIds></m:FindItem>' % (start, end, mbx))


AD = "http://schemas.microsoft.com/exchange/2010/Autodiscover"
WSA = "http://www.w3.org/2005/08/addressing"
XSI = "http://www.w3.org/2001/XMLSchema-instance"
AD_SETTINGS = ("GroupingInformation", "ExternalEwsUrl", "InternalEwsUrl", "InternalMailboxServer",
               "ExternalMailboxServer")


def ad_request(users, settings=AD_SETTINGS, to="https://autodiscover.example.com/autodiscover/autodiscover.svc",
               action=AD + "/Autodiscover/GetUserSettings", version="Exchange2013_SP1"):
    """GetUserSettings as Microsoft's reference page shows it."""
    return ('<?xml version="1.0" encoding="utf-8"?><soap:Envelope xmlns:a="%s" xmlns:wsa="%s" xmlns:xsi="%s" '
            'xmlns:soap="%s"><soap:Header><a:RequestedServerVersion>%s</a:RequestedServerVersion>'
            '<wsa:Action>%s</wsa:Action><wsa:To>%s</wsa:To></soap:Header><soap:Body>'
            '<a:GetUserSettingsRequestMessage><a:Request><a:Users>%s</a:Users><a:RequestedSettings>%s'
            '</a:RequestedSettings></a:Request></a:GetUserSettingsRequestMessage></soap:Body></soap:Envelope>'
            % (AD, WSA, XSI, SOAP, version, action, to,
               "".join("<a:User><a:Mailbox>%s</a:Mailbox></a:User>" % u for u in users),
               "".join("<a:Setting>%s</a:Setting>" % x for x in settings))).encode()


def ad_users(data):
    """-> [(ErrorCode, RedirectTarget or None, {name: value}, {name: error code})]."""
    root = xml(data)
    out = []
    for u in root.iter("{%s}UserResponse" % AD):
        rt = u.find("{%s}RedirectTarget" % AD)
        vals = {x.findtext("{%s}Name" % AD): x.findtext("{%s}Value" % AD)
                for x in u.iter("{%s}UserSetting" % AD)}
        errs = {x.findtext("{%s}SettingName" % AD): x.findtext("{%s}ErrorCode" % AD)
                for x in u.iter("{%s}UserSettingError" % AD)}
        out.append((u.findtext("{%s}ErrorCode" % AD), rt.text if rt is not None else None, vals, errs))
    return root.findtext(".//{%s}Response/{%s}ErrorCode" % (AD, AD)), out


# Mailboxes on known servers for the grouping tests (re-added fresh by each test).
PLACED = [{"smtp": "ga1@example.com", "server": 1}, {"smtp": "ga2@example.com", "server": 1},
          {"smtp": "gb1@example.com", "server": 2}, {"smtp": "gb2@example.com", "server": 2}]
AFF = {"X-PreferServerAffinity": "true"}


def strip_decl(raw):
    """The body of a stream without the XML declaration a realserver puts first."""
    if raw.startswith(b"<?xml"):
        return raw[raw.index(b"?>") + 2:].lstrip()
    return raw

class Conn:
    """A raw HTTP/1.1 client on one TCP connection (NTLM is per connection)."""

    def __init__(self, url, timeout=10):
        hostport = url.split("//", 1)[1].split("/", 1)[0]
        host, port = hostport.rsplit(":", 1)
        self.path = "/" + url.split("//", 1)[1].split("/", 1)[1]
        self.sock = socket.create_connection((host, int(port)), timeout=timeout)
        self.buf = b""

    def close(self):
        self.sock.close()

    def _fill(self):
        d = self.sock.recv(65536)
        if not d:
            raise ConnectionError("closed")
        self.buf += d

    def _line(self):
        while b"\r\n" not in self.buf:
            self._fill()
        line, self.buf = self.buf.split(b"\r\n", 1)
        return line

    def _exact(self, n):
        while len(self.buf) < n:
            self._fill()
        d, self.buf = self.buf[:n], self.buf[n:]
        return d

    def send(self, body, headers=None, method="POST", path=None):
        h = {"Host": "127.0.0.1", "Content-Type": "text/xml; charset=utf-8",
             "Content-Length": str(len(body))}
        h.update(headers or {})
        head = "%s %s HTTP/1.1\r\n" % (method, path or self.path) + "".join(
            "%s: %s\r\n" % kv for kv in h.items()) + "\r\n"
        self.sock.sendall(head.encode() + body)

    def read_head(self):
        status = int(self._line().split()[1])
        headers = []
        while True:
            line = self._line()
            if not line:
                break
            k, _, v = line.decode().partition(":")
            headers.append((k.strip().lower(), v.strip()))
        return status, headers

    def chunks(self):
        """Yield raw chunk payloads until the terminating chunk."""
        while True:
            size = int(self._line().split(b";")[0], 16)
            if size == 0:
                self._line()
                return
            yield self._exact(size)
            self._exact(2)

    def request(self, body, headers=None, method="POST", path=None):
        self.send(body, headers, method, path)
        status, hdrs = self.read_head()
        hd = dict(hdrs)
        if hd.get("transfer-encoding") == "chunked":
            data = b"".join(self.chunks())
        else:
            data = self._exact(int(hd.get("content-length", "0")))
        return status, hdrs, data


def post(url, body, auth=BASIC, headers=None):
    c = Conn(url)
    try:
        h = {"Authorization": auth} if auth else {}
        h.update(headers or {})
        return c.request(body, h)
    finally:
        c.close()


def xml(data):
    return etree.fromstring(data)


def code_of(data):
    root = xml(data)
    rc = root.find(".//{%s}ResponseCode" % M)
    if rc is None:
        rc = root.find(".//{%s}ResponseCode" % E)
    return rc.text if rc is not None else None


def split_envelopes(data):
    """Split a streaming body into complete envelopes (by end tag of the root element)."""
    out = []
    text = data.decode("utf-8")
    while text.strip():
        mo = re.match(r"\s*<([\w.-]+:)?Envelope\b", text)
        assert mo, "stream does not start with an Envelope: %r" % text[:80]
        end_tag = "</%sEnvelope>" % (mo.group(1) or "")
        j = text.index(end_tag) + len(end_tag)
        out.append(text[:j])
        text = text[j:]
    return out


# ----------------------------------------------------------------------- independent NTLMv2 client
def md4_hash_for_test(data):
    try:
        return hashlib.new("md4", data).digest()
    except ValueError:
        return simntlm.md4(data)  # verified against RFC 1320 vectors in test_md4


def ntlmv2_type3(challenge, user, domain, password):
    """Hand-built NTLMv2 AUTHENTICATE message (MS-NLMP 3.3.2)."""
    assert challenge[:8] == b"NTLMSSP\x00" and struct.unpack("<I", challenge[8:12])[0] == 2
    server_chal = challenge[24:32]
    ti_len, _, ti_off = struct.unpack("<HHI", challenge[40:48])
    target_info = challenge[ti_off:ti_off + ti_len]
    nt_hash = md4_hash_for_test(password.encode("utf-16-le"))
    v2key = hmac.new(nt_hash, (user.upper() + domain).encode("utf-16-le"), hashlib.md5).digest()
    cchal = os.urandom(8)
    ts = struct.pack("<Q", int((time.time() + 11644473600) * 1e7))
    blob = b"\x01\x01" + b"\x00" * 6 + ts + cchal + b"\x00" * 4 + target_info + b"\x00" * 4
    nt = hmac.new(v2key, server_chal + blob, hashlib.md5).digest() + blob
    lm = hmac.new(v2key, server_chal + cchal, hashlib.md5).digest() + cchal
    fields = [lm, nt, domain.encode("utf-16-le"), user.encode("utf-16-le"), b"WS".decode().encode("utf-16-le")]
    off = 64
    msg = b"NTLMSSP\x00" + struct.pack("<I", 3)
    payload = b""
    for f in fields + [b""]:
        msg += struct.pack("<HHI", len(f), len(f), off + len(payload))
        payload += f
    msg += struct.pack("<I", 0xE2088235)
    return msg + payload


TYPE1 = base64.b64encode(b"NTLMSSP\x00" + struct.pack("<II", 1, 0xE2088297) + b"\x00" * 16).decode()


def ntlm_login(conn, user, domain, password, body):
    st, hdrs, _ = conn.request(body, {"Authorization": "NTLM " + TYPE1})
    assert st == 401, st
    chal = [v for k, v in hdrs if k == "www-authenticate" and v.startswith("NTLM ")][0]
    t3 = ntlmv2_type3(base64.b64decode(chal[5:]), user, domain, password)
    return conn.request(body, {"Authorization": "NTLM " + base64.b64encode(t3).decode()})


class PushTarget:
    def __init__(self, answers, tls=None):
        self.answers = list(answers)  # HTTP status or "OK"/"Unsubscribe" per POST; last repeats
        self.posts = []
        outer = self

        class H(http.server.BaseHTTPRequestHandler):
            def do_POST(self):  # noqa: N802
                n = int(self.headers.get("Content-Length", "0"))
                outer.posts.append((time.monotonic(), self.rfile.read(n)))
                ans = outer.answers[min(len(outer.posts) - 1, len(outer.answers) - 1)]
                if isinstance(ans, int):
                    self.send_response(ans)
                    self.send_header("Content-Length", "0")
                    self.end_headers()
                    return
                body = ('<s:Envelope xmlns:s="%s"><s:Body><m:SendNotificationResult xmlns:m="%s">'
                        '<m:SubscriptionStatus>%s</m:SubscriptionStatus></m:SendNotificationResult>'
                        '</s:Body></s:Envelope>' % (SOAP, M, ans)).encode()
                self.send_response(200)
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, *a):
                pass
        self.srv = http.server.ThreadingHTTPServer(("127.0.0.1", 0), H)
        scheme = "http"
        if tls:
            import ssl
            ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
            ctx.load_cert_chain(*tls)
            self.srv.socket = ctx.wrap_socket(self.srv.socket, server_side=True)
            scheme = "https"
        self.url = "%s://127.0.0.1:%d/listener" % (scheme, self.srv.server_address[1])
        threading.Thread(target=self.srv.serve_forever, daemon=True).start()

    def close(self):
        self.srv.shutdown()
        self.srv.server_close()


DEFAULTS = {"max_concurrency": 27, "max_subscriptions": 5000, "hanging_connection_limit": 10,
            "charging": "impersonated", "heartbeat_s": 0.3, "latency_ms": 0, "minute_seconds": 1.0,
            "backoff_ms": 500, "strict_affinity": False, "affinity_rules": False, "profiles": []}


SHARED = {}


def setUpModule():  # noqa: N802 - one simulator for all SimTestCase classes
    SHARED["sim"] = Simulator(directory=DIRECTORY, minute_seconds=1, heartbeat_seconds=0.3,
                              backoff_ms=500, schema_dir=SCHEMA_DIR, seed=7).start()


def tearDownModule():  # noqa: N802
    SHARED.pop("sim").stop()


class SimTestCase(unittest.TestCase):
    sim = None

    @classmethod
    def setUpClass(cls):
        cls.sim = SHARED["sim"]
        cls.url = cls.sim.ews_url

    def setUp(self):
        s = self.sim
        s.control("DELETE", "/faults")
        s.control("POST", "/restart")
        s.control("POST", "/config", DEFAULTS)
        s.control("POST", "/stats/reset")

    def assertNoViolations(self):
        st = self.sim.stats()
        self.assertEqual(st["violations_total"], 0, st["violations"])

    def subscribe(self, who="alice@example.com", body=SUB_STREAM, headers=None):
        st, hdrs, data = post(self.url, envelope(body, who), headers=headers)
        self.assertEqual(st, 200, data)
        self.assertEqual(code_of(data), "NoError", data)
        root = xml(data)
        return root.find(".//{%s}SubscriptionId" % M).text, root, hdrs

    def open_stream(self, ids, who=None, timeout=1, auth=BASIC, headers=None):
        c = Conn(self.url, timeout=15)
        h = {"Authorization": auth}
        h.update(headers or {})
        c.send(envelope(gse_body(ids, timeout), who), h)
        st, hdrs = c.read_head()
        return c, st, hdrs


# ----------------------------------------------------------------------- authentication
class AuthTests(SimTestCase):
    def test_md4(self):
        self.assertEqual(simntlm.md4(b"").hex(), "31d6cfe0d16ae931b73c59d7e0c089c0")
        self.assertEqual(simntlm.md4(b"message digest").hex(), "d9130a8164549fe818874806e1c7014b")
        self.assertEqual(simntlm.md4(b"a" * 1000).hex(), simntlm.md4(b"a" * 1000).hex())

    def test_offers_in_configured_order(self):
        st, hdrs, _ = post(self.url, envelope(OOF_BODY % "alice@example.com"), auth=None)
        self.assertEqual(st, 401)
        offers = [v for k, v in hdrs if k == "www-authenticate"]
        self.assertIn("NTLM", offers)
        self.assertTrue(offers.index("NTLM") < [i for i, o in enumerate(offers) if o.startswith("Basic")][0])

    def test_ntlmv2_handshake_and_connection_stays_authenticated(self):
        c = Conn(self.url)
        body = envelope(OOF_BODY % "alice@example.com", "alice@example.com")
        st, _, data = ntlm_login(c, "svc-ewsgw", "CORP", "Passw0rd!", body)
        self.assertEqual(st, 200, data)
        self.assertEqual(code_of(data), "NoError")
        st, _, data = c.request(body)  # no Authorization header on the same connection
        self.assertEqual(st, 200)
        c.close()
        st, _, _ = post(self.url, body, auth=None)  # a new connection is not authenticated
        self.assertEqual(st, 401)
        self.assertGreaterEqual(self.sim.stats()["auth"].get("ntlm_ok_v2", 0), 1)

    def test_ntlm_wrong_password_and_unknown_user(self):
        body = envelope(OOF_BODY % "alice@example.com", "alice@example.com")
        for user, pw in (("svc-ewsgw", "wrong"), ("nobody", "Passw0rd!")):
            c = Conn(self.url)
            try:
                st, _, _ = ntlm_login(c, user, "CORP", pw, body)
                self.assertEqual(st, 401)
            except ConnectionError:
                pass  # the server may close after a failed handshake
            finally:
                c.close()

    def test_ntlmv1_accepted(self):
        c = Conn(self.url)
        body = envelope(OOF_BODY % "alice@example.com", "alice@example.com")
        st, hdrs, _ = c.request(body, {"Authorization": "NTLM " + TYPE1})
        chal = [v for k, v in hdrs if k == "www-authenticate" and v.startswith("NTLM ")][0]
        if not simntlm.ntlmv1_available():
            self.skipTest("no DES available for NTLMv1")
        t3 = simntlm.client_authenticate_v1(base64.b64decode(chal[5:]), "svc-ewsgw", "CORP", "Passw0rd!")
        st, _, _ = c.request(body, {"Authorization": "NTLM " + base64.b64encode(t3).decode()})
        c.close()
        self.assertEqual(st, 200)

    def test_basic(self):
        body = envelope(OOF_BODY % "alice@example.com", "alice@example.com")
        self.assertEqual(post(self.url, body)[0], 200)
        bad = "Basic " + base64.b64encode(b"svc-ewsgw:nope").decode()
        self.assertEqual(post(self.url, body, auth=bad)[0], 401)
        self.assertEqual(post(self.url, body, auth="Basic !!!")[0], 401)

    def test_libcurl_ntlm(self):
        curl = shutil.which("curl")
        if not curl:
            self.skipTest("curl not installed")
        body = envelope(OOF_BODY % "alice@example.com", "alice@example.com")
        for pw, want in (("Passw0rd!", "200"), ("bad", "401")):
            r = subprocess.run([curl, "-sS", "--ntlm", "-u", "CORP\\svc-ewsgw:" + pw, "-H",
                                "Content-Type: text/xml", "--data-binary", "@-", "-o", "/dev/null",
                                "-w", "%{http_code}", self.url], input=body, capture_output=True, timeout=20)
            self.assertEqual(r.stdout.decode(), want, r.stderr)

    def test_failed_logins_counted(self):
        """Each refused login attempt is counted once, by account, with its
        time; challenges, malformed headers and good logins are not."""
        body = envelope(OOF_BODY % "alice@example.com", "alice@example.com")

        def failed():
            return self.sim.stats()["failed_logins"]
        self.assertEqual(failed(), {"total": 0, "by_account": {}, "times": []})
        bad = "Basic " + base64.b64encode(b"svc-ewsgw:nope").decode()
        t0 = time.time()
        for _ in range(3):
            self.assertEqual(post(self.url, body, auth=bad)[0], 401)
        self.assertEqual(post(self.url, body, auth="Basic !!!")[0], 401)
        self.assertEqual(post(self.url, body, auth=None)[0], 401)
        self.assertEqual(post(self.url, body)[0], 200)
        f = failed()
        self.assertEqual(f["total"], 3)
        self.assertEqual(f["by_account"], {"svc-ewsgw": 3})
        self.assertTrue(all(t0 - 1 <= t <= time.time() + 1 for t in f["times"]), f)
        # NTLM: the challenge is not a login; the AUTHENTICATE message is.
        c = Conn(self.url)
        try:
            st, _, _ = ntlm_login(c, "svc-ewsgw", "CORP", "wrong", body)
            self.assertEqual(st, 401)
        except ConnectionError:
            pass
        finally:
            c.close()
        c = Conn(self.url)
        st, _, _ = ntlm_login(c, "svc-ewsgw", "CORP", "Passw0rd!", body)
        c.close()
        self.assertEqual(st, 200)
        self.assertEqual(failed()["total"], 4)
        self.assertEqual(self.sim.stats()["auth"]["ntlm_failed"], 1)
        # An expired password refuses the right one too.
        self.sim.fault({"kind": "password_expires_at", "account": "svc-ewsgw", "at": time.time() - 1})
        self.assertEqual(post(self.url, body)[0], 401)
        self.sim.fault({"kind": "password_restored", "account": "svc-ewsgw"})
        self.assertEqual(failed()["by_account"], {"svc-ewsgw": 5})
        self.sim.control("POST", "/stats/reset")
        self.assertEqual(failed()["total"], 0)

    def test_account_changed_live(self):
        """PATCH /accounts/NAME changes the password and the impersonation scope."""
        body = envelope(OOF_BODY % "alice@example.com", "alice@example.com")
        new = "Basic " + base64.b64encode(b"svc-ewsgw:N3w-pass").decode()
        try:
            st, data = self.sim.control("PATCH", "/accounts/svc-ewsgw", {"password": "N3w-pass"})
            self.assertEqual(st, 200, data)
            self.assertEqual(post(self.url, body)[0], 401)
            self.assertEqual(post(self.url, body, auth=new)[0], 200)
            st, _ = self.sim.control("PATCH", "/accounts/svc-ewsgw", {"impersonate": []})
            self.assertEqual(st, 200)
            st, _, data = post(self.url, body, auth=new)
            self.assertEqual((st, code_of(data)), (500, "ErrorImpersonateUserDenied"))
            self.assertEqual(self.sim.control("PATCH", "/accounts/nobody", {})[0], 404)
            self.assertEqual(self.sim.control("PATCH", "/accounts/svc-ewsgw",
                                              {"impersonate": 7})[0], 400)
        finally:
            self.sim.control("PATCH", "/accounts/svc-ewsgw",
                             {"password": "Passw0rd!", "impersonate": "*"})
        self.assertEqual(post(self.url, body)[0], 200)
        self.assertEqual(self.sim.stats()["failed_logins"]["total"], 1)

    def test_password_expiry_fault(self):
        body = envelope(OOF_BODY % "alice@example.com", "alice@example.com")
        self.sim.fault({"kind": "password_expires_at", "account": "svc-ewsgw", "at": time.time() - 1})
        self.assertEqual(post(self.url, body)[0], 401)
        self.sim.fault({"kind": "password_restored", "account": "svc-ewsgw"})
        self.assertEqual(post(self.url, body)[0], 200)


# ----------------------------------------------------------------------- impersonation and reads
class ImpersonationTests(SimTestCase):
    def fault_code(self, who, kind="SmtpAddress", auth=BASIC):
        st, _, data = post(self.url, envelope(OOF_BODY % "alice@example.com", who, id_kind=kind), auth=auth)
        return st, code_of(data)

    def test_errors(self):
        limited = "Basic " + base64.b64encode(b"svc-limited:Limited1!").decode()
        self.assertEqual(self.fault_code("bob@example.com", auth=limited), (500, "ErrorImpersonateUserDenied"))
        self.assertEqual(self.fault_code("alice@example.com", auth=limited), (200, "NoError"))
        self.assertEqual(self.fault_code("ghost@example.com"), (500, "ErrorNonExistentMailbox"))
        self.assertEqual(self.fault_code("carol.external@mail.example.net"), (500, "ErrorNonExistentMailbox"))
        self.assertEqual(self.fault_code("carol@corp.example.local", "PrincipalName"), (200, "NoError"))
        self.assertEqual(self.fault_code("S-1-5-21-1111111111-2222222222-3333333333-1002", "SID"), (200, "NoError"))
        self.assertEqual(self.fault_code("alice@example.com", "PrimarySmtpAddress"), (200, "NoError"))
        # SOAP fault layout
        _, _, data = post(self.url, envelope(OOF_BODY % "alice@example.com", "ghost@example.com"))
        root = xml(data)
        self.assertEqual(root.find(".//faultcode").text, "a:ErrorNonExistentMailbox")
        self.assertIsNotNone(root.find(".//{%s}Fault/detail/{%s}ResponseCode" % (SOAP, E)))

    def test_calendar_view_recurrence(self):
        # bob: weekly Monday+Thursday 09:00-09:30 UTC since 2026-01-05 (a Monday)
        st, _, data = post(self.url, envelope(calview_body("2026-03-01T00:00:00Z", "2026-03-15T00:00:00Z"),
                                              "bob@example.com"))
        self.assertEqual(st, 200, data)
        items = xml(data).findall(".//{%s}CalendarItem" % T)
        starts = [i.find("{%s}Start" % T).text for i in items]
        self.assertEqual(starts, ["2026-03-02T09:00:00Z", "2026-03-05T09:00:00Z",
                                  "2026-03-09T09:00:00Z", "2026-03-12T09:00:00Z"])
        self.assertTrue(all(i.find("{%s}CalendarItemType" % T).text == "Occurrence" for i in items))
        ids = {i.find("{%s}ItemId" % T).get("Id") for i in items}
        self.assertEqual(len(ids), 4)
        # GetItem on an occurrence id
        oid = items[1].find("{%s}ItemId" % T).get("Id")
        body = ('<m:GetItem><m:ItemShape><t:BaseShape>Default</t:BaseShape></m:ItemShape><m:ItemIds>'
                '<t:ItemId Id="%s"/></m:ItemIds></m:GetItem>' % oid)
        st, _, data = post(self.url, envelope(body, "bob@example.com"))
        self.assertEqual(xml(data).find(".//{%s}Start" % T).text, "2026-03-05T09:00:00Z")

    def test_calendar_view_kinds_and_schema_order(self):
        st, _, data = post(self.url, envelope(calview_body("2020-01-01T00:00:00Z", "2030-01-01T00:00:00Z"),
                                              "alice@example.com"))
        fb = [i.text for i in xml(data).findall(".//{%s}LegacyFreeBusyStatus" % T)]
        for want in ("Busy", "Tentative", "OOF", "WorkingElsewhere", "Free"):
            self.assertIn(want, fb)
        self.assertEqual(len(xml(data).findall(".//{%s}CalendarItem" % T)), 14)
        if SCHEMA_DIR:
            self.assertSchemaValid(data)

    def assertSchemaValid(self, data):
        schema = Schema(SCHEMA_DIR)
        body = xml(data).find("{%s}Body" % SOAP)
        err = schema.validate(body[0])
        self.assertIsNone(err, err)

    @unittest.skipUnless(SCHEMA_DIR, "ews-schema not available")
    def test_responses_schema_valid(self):
        """Responses follow messages.xsd (streaming's m:Notification is the documented exception)."""
        _, _, d = post(self.url, envelope(SUB_PULL % 5, "alice@example.com"))
        self.assertSchemaValid(d)
        sid = xml(d).find(".//{%s}SubscriptionId" % M).text
        wm = xml(d).find(".//{%s}Watermark" % M).text
        self.sim.add_item("alice@example.com", {"subject": "x", "start": "now", "end": "now+1h"})
        for body in (getevents_body(sid, wm), getevents_body(sid, wm),
                     "<m:Unsubscribe><m:SubscriptionId>%s</m:SubscriptionId></m:Unsubscribe>" % sid,
                     '<m:GetServerTimeZones ReturnFullTimeZoneData="true"><m:Ids><t:Id>UTC</t:Id></m:Ids>'
                     '</m:GetServerTimeZones>'):
            self.assertSchemaValid(post(self.url, envelope(body))[2])
        for body in (SUB_STREAM, OOF_BODY % "bob@example.com",
                     '<m:GetFolder><m:FolderShape><t:BaseShape>AllProperties</t:BaseShape></m:FolderShape>'
                     '<m:FolderIds><t:DistinguishedFolderId Id="calendar"/><t:DistinguishedFolderId Id="root"/>'
                     '<t:DistinguishedFolderId Id="contacts"/></m:FolderIds></m:GetFolder>',
                     '<m:GetItem><m:ItemShape><t:BaseShape>AllProperties</t:BaseShape></m:ItemShape><m:ItemIds>'
                     '<t:ItemId Id="AAMkAGSimZm9v"/></m:ItemIds></m:GetItem>'):
            self.assertSchemaValid(post(self.url, envelope(body, "bob@example.com"))[2])

    def test_availability(self):
        body = ('<m:GetUserAvailabilityRequest><t:TimeZone><t:Bias>-60</t:Bias><t:StandardTime><t:Bias>0</t:Bias>'
                '<t:Time>03:00:00</t:Time><t:DayOrder>5</t:DayOrder><t:Month>10</t:Month><t:DayOfWeek>Sunday'
                '</t:DayOfWeek></t:StandardTime><t:DaylightTime><t:Bias>-60</t:Bias><t:Time>02:00:00</t:Time>'
                '<t:DayOrder>5</t:DayOrder><t:Month>3</t:Month><t:DayOfWeek>Sunday</t:DayOfWeek></t:DaylightTime>'
                '</t:TimeZone><m:MailboxDataArray>%s</m:MailboxDataArray><t:FreeBusyViewOptions><t:TimeWindow>'
                '<t:StartTime>2026-03-02T00:00:00</t:StartTime><t:EndTime>2026-03-03T00:00:00</t:EndTime>'
                '</t:TimeWindow><t:MergedFreeBusyIntervalInMinutes>30</t:MergedFreeBusyIntervalInMinutes>'
                '<t:RequestedView>DetailedMerged</t:RequestedView></t:FreeBusyViewOptions>'
                '</m:GetUserAvailabilityRequest>')
        md = ('<t:MailboxData><t:Email><t:Address>%s</t:Address></t:Email><t:AttendeeType>Required'
              '</t:AttendeeType></t:MailboxData>')
        st, _, data = post(self.url, envelope(body % (md % "bob@example.com" + md % "ghost@example.com")))
        self.assertEqual(st, 200, data)
        root = xml(data)
        resp = root.findall(".//{%s}FreeBusyResponse" % M)
        self.assertEqual(len(resp), 2)
        merged = resp[0].find(".//{%s}MergedFreeBusy" % T).text
        # 09:00Z = 10:00 CET (winter) -> slot 20
        self.assertEqual(len(merged), 48)
        self.assertEqual(merged[20], "2", merged)
        self.assertEqual(resp[0].find(".//{%s}StartTime" % T).text, "2026-03-02T10:00:00")
        self.assertEqual(resp[1].find(".//{%s}ResponseCode" % M).text, "ErrorMailRecipientNotFound")
        if SCHEMA_DIR:
            ImpersonationTests.assertSchemaValid(self, data)
        many = "".join(md % ("user%d@example.com" % i) for i in range(101))
        st, _, data = post(self.url, envelope(body % many))
        self.assertEqual(st, 500)

    def test_oof_states(self):
        for who, want in (("alice@example.com", "Disabled"), ("bob@example.com", "Scheduled")):
            st, _, data = post(self.url, envelope(OOF_BODY % who, who))
            self.assertEqual(xml(data).find(".//{%s}OofState" % T).text, want)
        self.sim.control("PUT", "/mailboxes/alice@example.com/oof", {"state": "Enabled"})
        st, _, data = post(self.url, envelope(OOF_BODY % "alice@example.com", "alice@example.com"))
        self.assertEqual(xml(data).find(".//{%s}OofState" % T).text, "Enabled")
        self.sim.control("PUT", "/mailboxes/alice@example.com/oof", {"state": "Disabled"})


# ----------------------------------------------------------------------- throttling
class ThrottleTests(SimTestCase):
    def test_concurrency_and_backoff_violation(self):
        self.sim.control("POST", "/config", {"max_concurrency": 2, "backoff_ms": 1500})
        self.sim.fault({"kind": "latency_ms", "ms": 600, "operation": "GetUserOofSettings"})
        results = []
        body = envelope(OOF_BODY % "alice@example.com", "alice@example.com")

        def one():
            results.append(post(self.url, body))
        ths = [threading.Thread(target=one) for _ in range(3)]
        for th in ths:
            th.start()
            time.sleep(0.05)
        for th in ths:
            th.join()
        codes = sorted(code_of(d) for _, _, d in results)
        self.assertEqual(codes, ["ErrorServerBusy", "NoError", "NoError"])
        busy = [d for _, _, d in results if code_of(d) == "ErrorServerBusy"][0]
        self.assertEqual(xml(busy).find(".//{%s}Value[@Name='BackOffMilliseconds']" % T).text, "1500")
        st = self.sim.stats()
        self.assertEqual(st["violations"], {"concurrency": 1})
        self.assertEqual(st["concurrency"]["svc-ewsgw"]["peak"], 2)
        # Slot time as the server sees it: the two admitted requests held
        # a slot for at least their 600 ms each; the refused one none.
        self.assertEqual(st["concurrency"]["svc-ewsgw"]["started"], 2)
        self.assertGreaterEqual(st["concurrency"]["svc-ewsgw"]["busy_ms"], 1200)
        oof = st["in_progress"]["GetUserOofSettings"]
        self.assertEqual(oof["started"], 2)
        self.assertGreaterEqual(oof["busy_ms"], 1200)
        self.assertLessEqual(oof["busy_ms"], st["concurrency"]["svc-ewsgw"]["busy_ms"])
        self.sim.control("DELETE", "/faults")
        post(self.url, body)  # immediately: inside the back-off window
        self.assertEqual(self.sim.stats()["violations"].get("backoff_ignored"), 1)
        time.sleep(1.6)
        self.assertEqual(code_of(post(self.url, body)[2]), "NoError")

    def test_hanging_connections_impersonated(self):
        self.sim.control("POST", "/config", {"hanging_connection_limit": 1})
        a, _, _ = self.subscribe("alice@example.com")
        b, _, _ = self.subscribe("bob@example.com")
        c1, st, _ = self.open_stream([a], "alice@example.com")
        self.assertEqual(st, 200)
        time.sleep(0.1)
        streams = self.sim.control("GET", "/streams")[1]["streams"]
        self.assertEqual([(x["impersonated"], x["subscription_ids"]) for x in streams], [("alice@example.com", [a])])
        _, _, data = post(self.url, envelope(gse_body([b]), "alice@example.com"))
        self.assertEqual(code_of(data), "ErrorExceededConnectionCount")
        c2, st, _ = self.open_stream([b], "bob@example.com")
        self.assertEqual(st, 200)
        # non-streaming requests are not charged for the streams
        self.assertEqual(code_of(post(self.url, envelope(OOF_BODY % "bob@example.com", "bob@example.com"))[2]), "NoError")
        c1.close()
        c2.close()
        s = self.sim.stats()
        self.assertEqual(s["violations"], {"hanging_connections": 1})
        self.assertEqual(s["streaming_connections"]["per_anchor_peak"]["svc-ewsgw/alice@example.com"], 1)

    def test_service_account_charging(self):
        self.sim.control("POST", "/config", {"charging": "service-account", "max_concurrency": 1})
        a, _, _ = self.subscribe("alice@example.com")
        c1, st, _ = self.open_stream([a])
        self.assertEqual(st, 200)
        time.sleep(0.1)
        st, _, data = post(self.url, envelope(OOF_BODY % "bob@example.com", "bob@example.com"))
        self.assertEqual((st, code_of(data)), (500, "ErrorServerBusy"))
        c1.close()
        self.assertEqual(self.sim.stats()["violations"], {"concurrency": 1})

    def test_subscription_limit_per_mailbox(self):
        self.sim.control("POST", "/config", {"max_subscriptions": 2})
        self.subscribe("alice@example.com")
        self.subscribe("alice@example.com")
        self.subscribe("bob@example.com")
        _, _, data = post(self.url, envelope(SUB_STREAM, "alice@example.com"))
        self.assertEqual(code_of(data), "ErrorExceededSubscriptionCount")
        st = self.sim.stats()
        self.assertEqual(st["violations"], {"subscriptions": 1})
        self.assertEqual(st["live_subscriptions"]["per_mailbox_peak"], 2)

    def test_more_than_200_ids(self):
        ids = ["id%d" % i for i in range(201)]
        _, _, data = post(self.url, envelope(gse_body(ids)))
        self.assertEqual(code_of(data), "ErrorInvalidRequest")
        self.assertEqual(self.sim.stats()["violations"], {"gse_over_200": 1})

    def test_unknown_owner(self):
        a, _, _ = self.subscribe("alice@example.com")
        limited = "Basic " + base64.b64encode(b"svc-limited:Limited1!").decode()
        _, _, data = post(self.url, envelope(gse_body([a])), auth=limited)
        self.assertEqual(code_of(data), "ErrorSubscriptionAccessDenied")
        self.assertEqual(self.sim.stats()["violations"], {"unknown_subscription_owner": 1})


# ----------------------------------------------------------------------- streaming
class StreamingTests(SimTestCase):
    def test_framing_heartbeats_notification_closed(self):
        sid, _, hdrs = self.subscribe("alice@example.com",
                                      headers={"X-AnchorMailbox": "alice@example.com",
                                               "X-PreferServerAffinity": "true"})
        cookie = [v for k, v in hdrs if k == "set-cookie" and v.startswith("X-BackEndOverrideCookie=")]
        self.assertEqual(len(cookie), 1)
        t0 = time.monotonic()
        c, st, rh = self.open_stream([sid], headers={"X-AnchorMailbox": "alice@example.com",
                                                     "Cookie": cookie[0].split(";")[0],
                                                     "X-PreferServerAffinity": "true"})
        self.assertEqual(st, 200)
        self.assertEqual(dict(rh).get("transfer-encoding"), "chunked")
        self.sim.add_item("alice@example.com", {"subject": "Grüße", "start": "now+1h", "end": "now+2h"})
        raw = b"".join(c.chunks())
        elapsed = time.monotonic() - t0
        c.close()
        self.assertTrue(0.9 <= elapsed < 3.0, elapsed)
        envs = split_envelopes(raw)
        self.assertFalse(raw.lstrip().startswith(b"<?xml"))
        statuses = []
        notes = 0
        for e in envs:
            root = xml(e.encode())
            self.assertEqual(root.find(".//{%s}GetStreamingEventsResponseMessage" % M).get("ResponseClass"), "Success")
            cs = root.find(".//{%s}ConnectionStatus" % M)
            if cs is not None:
                statuses.append(cs.text)
            n = root.findall(".//{%s}Notification" % M)
            if n:
                notes += 1
                self.assertEqual(n[0].find("{%s}SubscriptionId" % T).text, sid)
                self.assertIsNotNone(n[0].find("{%s}CreatedEvent/{%s}ItemId" % (T, T)))
        self.assertEqual(notes, 1)
        self.assertGreaterEqual(statuses.count("OK"), 2)
        self.assertEqual(statuses[-1], "Closed")
        aff = self.sim.stats()["affinity"]
        self.assertEqual((aff["gse_with_anchor"], aff["gse_with_cookie"], aff["gse_with_prefer_affinity"],
                          aff["subscribe_with_anchor"], aff["gse_cookie_mismatch"]), (1, 1, 1, 1, 0))
        self.assertNoViolations()

    def test_strict_affinity(self):
        self.sim.control("POST", "/config", {"strict_affinity": True})
        aff = {"X-AnchorMailbox": "alice@example.com", "X-PreferServerAffinity": "true"}
        a, _, hdrs = self.subscribe("alice@example.com", headers=aff)
        cookie = [v for k, v in hdrs if k == "set-cookie"][0].split(";")[0]
        b, _, _ = self.subscribe("bob@example.com", headers=dict(aff, Cookie=cookie))
        subs = self.sim.control("GET", "/subscriptions")[1]["subscriptions"]
        self.assertEqual(len({s["backend"] for s in subs}), 1)
        c, st, _ = self.open_stream([a, b], timeout=1, headers=dict(aff, Cookie=cookie))
        raw = b"".join(c.chunks())
        c.close()
        self.assertNotIn(b"ResponseClass=\"Error\"", raw)
        self.assertNoViolations()
        wrong = dict(aff, Cookie="X-BackEndOverrideCookie=MBX99.sim.example.local~1")
        _, _, data = post(self.url, envelope(gse_body([a, b])), headers=wrong)
        self.assertEqual(code_of(data), "ErrorSubscriptionNotFound")
        st = self.sim.stats()
        self.assertEqual(st["violations"], {"affinity": 2})
        self.assertEqual(st["affinity"]["gse_misrouted"], 2)

    def test_second_connection(self):
        sid, _, _ = self.subscribe("alice@example.com")
        c1, _, _ = self.open_stream([sid], timeout=2)
        time.sleep(0.2)
        c2, _, _ = self.open_stream([sid], timeout=1)
        raw = b"".join(c1.chunks())
        c1.close()
        c2.close()
        self.assertIn(b"ErrorNewEventStreamConnectionOpened", raw)
        self.assertEqual(self.sim.stats()["violations"], {"subscription_on_two_connections": 1})

    def test_reconnect_after_close_is_not_a_second_connection(self):
        """The client closes its stream and at once opens the next one while
        the old stream's server side sleeps between trickled bytes: not
        counted.  The same with the first stream still open is."""
        sid, _, _ = self.subscribe("alice@example.com")
        self.sim.fault({"kind": "trickle_comment", "delay_ms": 5000, "count": 2})
        c1, st, _ = self.open_stream([sid], timeout=2)
        self.assertEqual(st, 200)
        self.assertEqual(next(c1.chunks()), b"<!--")
        c1.close()
        c2, _, _ = self.open_stream([sid], timeout=1)
        self.assertEqual(next(c2.chunks()), b"<!--")
        self.assertNoViolations()
        c3, _, _ = self.open_stream([sid], timeout=1)
        raw = b"".join(c3.chunks())
        c2.close()
        c3.close()
        self.assertIn(b"ConnectionStatus", raw)
        self.assertEqual(self.sim.stats()["violations"], {"subscription_on_two_connections": 1})
        self.assertEqual(self.sim.stats()["faults_injected"], {"trickle_comment": 2})

    def test_bad_ids_and_restart(self):
        sid, _, _ = self.subscribe("alice@example.com")
        c, st, _ = self.open_stream([sid], timeout=5)
        time.sleep(0.2)
        self.sim.control("POST", "/restart")
        with self.assertRaises((ConnectionError, OSError, ValueError)):
            for _ in c.chunks():
                pass
        c.close()
        _, _, data = post(self.url, envelope(gse_body([sid])))
        self.assertEqual(code_of(data), "ErrorSubscriptionNotFound")
        self.assertEqual(self.sim.control("GET", "/subscriptions")[1]["subscriptions"], [])

    def test_lose_and_missed(self):
        a, _, _ = self.subscribe("alice@example.com")
        b, _, _ = self.subscribe("bob@example.com")
        c, _, _ = self.open_stream([a, b], timeout=2)
        time.sleep(0.2)
        self.sim.fault({"kind": "lose_subscriptions", "ids": [a]})
        self.sim.fault({"kind": "missed_events", "ids": [b]})
        raw = b"".join(c.chunks())
        c.close()
        self.assertIn(b"ErrorSubscriptionNotFound", raw)
        self.assertIn(b"ErrorMissedNotificationEvents", raw)
        self.assertTrue(raw.rstrip().endswith(b"Envelope>"))
        self.assertEqual(self.sim.stats()["faults_injected"],
                         {"lose_subscriptions": 1, "missed_events": 1})

    def test_streaming_expiry_without_connection(self):
        self.sim.control("POST", "/config", {"minute_seconds": 0.01})  # 30 minutes = 0.3 s
        sid, _, _ = self.subscribe("alice@example.com")
        time.sleep(0.8)
        _, subs = self.sim.control("GET", "/subscriptions")
        self.assertNotIn(sid, [s["id"] for s in subs["subscriptions"]])

    def test_drop_and_chunk_split(self):
        sid, _, _ = self.subscribe("alice@example.com")
        self.sim.fault({"kind": "chunk_split", "min": 1, "max": 3})
        c, _, _ = self.open_stream([sid], timeout=1)
        self.sim.add_item("alice@example.com", {"subject": "Ünïcödé ☕", "start": "now", "end": "now+1h"})
        parts = list(c.chunks())
        c.close()
        self.assertGreater(len(parts), 50)
        raw = b"".join(parts)
        self.assertIn("Closed".encode(), raw)
        split_envelopes(raw)
        self.sim.control("DELETE", "/faults")
        c, _, _ = self.open_stream([sid], timeout=5)
        time.sleep(0.4)
        _, res = self.sim.fault({"kind": "drop_streams"})
        self.assertEqual(res["faults"][0]["dropped"], 1)
        self.assertEqual(self.sim.stats()["faults_injected"], {"drop_streams": 1})
        got = b""
        with self.assertRaises((ConnectionError, OSError, ValueError)):
            for p in c.chunks():
                got += p
        c.close()
        self.assertFalse(got.rstrip().endswith(b"Envelope>"))
        # the subscription survives a dropped connection
        self.assertIn(sid, [s["id"] for s in self.sim.control("GET", "/subscriptions")[1]["subscriptions"]])


    def test_drop_per_envelope(self):
        sid, _, _ = self.subscribe("alice@example.com")
        self.sim.fault({"kind": "drop_streams", "probability": 1.0, "count": 1})
        c, _, _ = self.open_stream([sid], timeout=1)
        got = b""
        with self.assertRaises((ConnectionError, OSError, ValueError)):
            for p in c.chunks():
                got += p
        c.close()
        self.assertTrue(got and b"</s:Envelope>" not in got, got)
        c, _, _ = self.open_stream([sid], timeout=1)  # count exhausted: the next stream is whole
        raw = b"".join(c.chunks())
        c.close()
        self.assertTrue(raw.endswith(b"</s:Envelope>"))
        self.assertEqual(self.sim.stats()["faults_injected"], {"drop_streams": 1})


# ----------------------------------------------------------------------- Autodiscover and servers
class PlacedTestCase(SimTestCase):
    def setUp(self):
        super().setUp()
        for mb in PLACED:
            st, _ = self.sim.control("POST", "/mailboxes", mb)
            self.assertEqual(st, 200)

    def ad(self, users, **kw):
        st, hdrs, data = post(self.sim.autodiscover_url, ad_request(users, **kw))
        self.assertEqual(st, 200, data)
        self.assertEqual(dict(hdrs)["content-type"], "text/xml; charset=utf-8")
        return ad_users(data)

    def cookie_of(self, hdrs):
        return [v for k, v in hdrs if k == "set-cookie"][0].split(";")[0]


class AutodiscoverTests(PlacedTestCase):
    def test_get_user_settings_batch(self):
        self.sim.control("POST", "/mailboxes", {"smtp": "moved@example.com",
                                                "autodiscover_redirect": {"address": "moved@eu.example.com"}})
        self.sim.control("POST", "/mailboxes", {"smtp": "elsewhere@example.com",
                                                "autodiscover_redirect": {"url": "https://ad.eu.example.com/"
                                                                                 "autodiscover/autodiscover.svc"}})
        users = ["ga1@example.com", "GB1@example.com", "nobody@example.com", "moved@example.com",
                 "elsewhere@example.com"]
        top, got = self.ad(users, settings=AD_SETTINGS + ("NoSuchSetting",))
        self.assertEqual(top, "NoError")
        self.assertEqual([g[0] for g in got], ["NoError", "NoError", "InvalidUser", "RedirectAddress",
                                               "RedirectUrl"])
        servers = self.sim.control("GET", "/servers")[1]["servers"]
        self.assertIn("ga1@example.com", servers["MBX01.sim.example.local"]["mailboxes"])
        a1, b1 = got[0][2], got[1][2]
        self.assertEqual(a1["GroupingInformation"], "SIMDAG01")
        self.assertEqual(b1["GroupingInformation"], "SIMDAG02")
        self.assertEqual(a1["InternalMailboxServer"], "MBX01.sim.example.local")
        self.assertEqual(b1["InternalMailboxServer"], "MBX02.sim.example.local")
        self.assertEqual(a1["ExternalEwsUrl"], self.url)
        self.assertEqual(a1["InternalEwsUrl"], self.url)
        self.assertEqual(a1["ExternalMailboxServer"], "mail.sim.example.local")
        self.assertEqual(got[0][3], {"NoSuchSetting": "InvalidSetting"})
        self.assertIsNone(got[0][1])
        self.assertEqual(got[3][1], "moved@eu.example.com")
        self.assertTrue(got[4][1].startswith("https://ad.eu.example.com/"))
        # alice's server is the one its address hashes to, as EWS routes X-AnchorMailbox
        _, (alice,) = self.ad(["alice@example.com"])
        srv = self.sim.control("GET", "/mailboxes/alice@example.com/server")[1]
        self.assertEqual(alice[2]["InternalMailboxServer"], srv["server"])
        st = self.sim.stats()
        self.assertEqual(st["autodiscover"]["users"], 6)
        self.assertEqual(st["autodiscover"]["max_users"], 5)
        self.assertEqual(st["autodiscover"]["redirects"], 2)
        self.assertNoViolations()

    def test_limits_and_errors(self):
        top, got = self.ad(["user%d@example.com" % i for i in range(101)])
        self.assertEqual((top, got), ("InvalidRequest", []))
        self.assertEqual(self.sim.stats()["violations"], {"autodiscover_over_100": 1})
        top, got = self.ad(["alice@example.com"] * 100)
        self.assertEqual((top, len(got)), ("NoError", 100))
        st, _, data = post(self.sim.autodiscover_url, ad_request(["alice@example.com"], action="urn:nothing"))
        self.assertEqual(st, 500)
        self.assertIn(b"ActionNotSupported", data)
        st, _, _ = post(self.sim.autodiscover_url, ad_request(["alice@example.com"]), auth=None)
        self.assertEqual(st, 401)
        # the limited account sees only alice
        limited = "Basic " + base64.b64encode(b"svc-limited:Limited1!").decode()
        _, _, data = post(self.sim.autodiscover_url, ad_request(["alice@example.com", "bob@example.com"]),
                          auth=limited)
        self.assertEqual([g[0] for g in ad_users(data)[1]], ["NoError", "InvalidUser"])

    def test_exchange2010_has_no_grouping_information(self):
        with Simulator(directory=DIRECTORY, version="Exchange2010_SP2", schema_dir=SCHEMA_DIR) as sim:
            _, _, data = post(sim.autodiscover_url, ad_request(["alice@example.com"]))
            top, ((code, _, vals, errs),) = ad_users(data)
            self.assertEqual((top, code), ("NoError", "NoError"))
            self.assertNotIn("GroupingInformation", vals)
            self.assertEqual(errs, {"GroupingInformation": "SettingIsNotAvailable"})
            self.assertTrue(vals["InternalMailboxServer"].startswith("MBX"))


class AffinityRuleTests(PlacedTestCase):
    def test_microsoft_procedure_is_clean(self):
        self.sim.control("POST", "/config", {"affinity_rules": True, "strict_affinity": True})
        a1, _, h = self.subscribe("ga1@example.com", headers=dict(AFF, **{"X-AnchorMailbox": "ga1@example.com"}))
        cookie = self.cookie_of(h)
        self.assertIn("MBX01", cookie)
        a2, _, _ = self.subscribe("ga2@example.com", headers=dict(AFF, Cookie=cookie,
                                                                  **{"X-AnchorMailbox": "ga1@example.com"}))
        b1, _, hb = self.subscribe("gb1@example.com", headers=dict(AFF, **{"X-AnchorMailbox": "gb1@example.com"}))
        self.assertIn("MBX02", self.cookie_of(hb))
        c, st, _ = self.open_stream([a1, a2], who="ga1@example.com",
                                    headers=dict(AFF, Cookie=cookie, **{"X-AnchorMailbox": "ga1@example.com"}))
        self.assertEqual(st, 200)
        raw = b"".join(c.chunks())
        c.close()
        self.assertNotIn(b"ResponseClass=\"Error\"", raw)
        self.assertNoViolations()
        self.assertTrue(b1)

    def test_breaches_are_counted(self):
        self.sim.control("POST", "/config", {"affinity_rules": True})
        a1, _, h = self.subscribe("ga1@example.com", headers=dict(AFF, **{"X-AnchorMailbox": "ga1@example.com"}))
        cookie_a = self.cookie_of(h)
        self.subscribe("ga2@example.com")                                  # no anchor at all
        self.subscribe("gb1@example.com", headers=dict(AFF, **{"X-AnchorMailbox": "ga1@example.com"}))
        self.subscribe("ga1@example.com", headers=dict(AFF, **{"X-AnchorMailbox": "ga2@example.com"}))
        b2, _, _ = self.subscribe("gb2@example.com", headers=dict(AFF, Cookie=cookie_a,
                                                                  **{"X-AnchorMailbox": "gb1@example.com"}))
        c, _, _ = self.open_stream([a1, b2], who="ga1@example.com",
                                   headers=dict(AFF, **{"X-AnchorMailbox": "ga1@example.com"}))
        b"".join(c.chunks())
        c.close()
        st = self.sim.stats()
        self.assertEqual(st["violations"], {"affinity_no_anchor": 1, "affinity_anchor_group": 1,
                                            "affinity_cookie_group": 1, "affinity_mixed_stream": 1})
        self.assertEqual(st["affinity"]["affinity_anchor_not_first"], 1)
        # once the group has its cookie the anchor may live elsewhere (it moved):
        # the cookie routes, as Microsoft describes
        self.sim.control("POST", "/stats/reset")
        self.sim.control("POST", "/mailboxes/ga1@example.com/move", {"to": 4, "duration_s": 0})
        self.subscribe("ga2@example.com", headers=dict(AFF, Cookie=cookie_a,
                                                       **{"X-AnchorMailbox": "ga1@example.com"}))
        self.assertNoViolations()
        # without the rules they are only counted
        self.sim.control("POST", "/config", {"affinity_rules": False})
        self.sim.control("POST", "/stats/reset")
        self.subscribe("ga2@example.com")
        st = self.sim.stats()
        self.assertEqual(st["affinity"]["affinity_no_anchor"], 1)
        self.assertNoViolations()


class MoveTests(PlacedTestCase):
    def test_exchange_online_and_back(self):
        who = "ga1@example.com"
        hdr = dict(AFF, **{"X-AnchorMailbox": who})
        self.subscribe(who, headers=hdr)
        st, res = self.sim.control("POST", "/mailboxes/%s/exchange_online" % who, {})
        self.assertEqual((st, len(res["lost"])), (200, 1), res)
        (online,) = self.ad([who])[1]
        self.assertEqual((online[0], online[1]), ("RedirectAddress", "ga1@sim.mail.onmicrosoft.com"))
        _, _, data = post(self.url, envelope(SUB_STREAM, who), headers=hdr)
        self.assertEqual(code_of(data), "ErrorNonExistentMailbox")
        # Offboarded: on its server again, Autodiscover answers its settings.
        st, res = self.sim.control("POST", "/mailboxes/%s/on_premises" % who, {})
        self.assertEqual((st, res["grouping"]), (200, "SIMDAG01"), res)
        (back,) = self.ad([who])[1]
        self.assertEqual((back[0], back[1], back[2]["GroupingInformation"]), ("NoError", None, "SIMDAG01"))
        self.subscribe(who, headers=hdr)
        srv = self.sim.control("GET", "/mailboxes/%s/server" % who)[1]
        self.assertEqual((srv["exchange_online"], srv["subscriptions_created"]), (False, 2), srv)
        # Only a mailbox in Exchange Online can come back.
        st, res = self.sim.control("POST", "/mailboxes/%s/on_premises" % who, {})
        self.assertEqual(st, 400, res)
        eo = self.sim.stats()["exchange_online"]
        self.assertEqual((eo["migrated"], eo["returned"], eo["refused"]), (1, 1, 1), eo)
        self.assertNoViolations()

    def test_move_loses_subscriptions_then_regroups(self):
        a1, _, _ = self.subscribe("ga1@example.com", headers=dict(AFF, **{"X-AnchorMailbox": "ga1@example.com"}))
        a2, _, _ = self.subscribe("ga2@example.com", headers=dict(AFF, **{"X-AnchorMailbox": "ga1@example.com"}))
        c, _, _ = self.open_stream([a1, a2], who="ga1@example.com", timeout=2)
        time.sleep(0.2)
        st, res = self.sim.control("POST", "/mailboxes/ga2@example.com/move", {"to": 3, "duration_s": 0.8})
        self.assertEqual(st, 200, res)
        self.assertEqual((res["from"], res["to"], res["grouping"], res["lost"]),
                         ("MBX01.sim.example.local", "MBX03.sim.example.local", "SIMDAG03", [a2]))
        # during the move: refused, Autodiscover still names the old server
        _, _, data = post(self.url, envelope(SUB_STREAM, "ga2@example.com"))
        self.assertEqual(code_of(data), "ErrorMailboxMoveInProgress")
        _, _, data = post(self.url, envelope(OOF_BODY % "ga2@example.com", "ga2@example.com"))
        self.assertEqual(code_of(data), "ErrorMailboxMoveInProgress")
        _, _, data = post(self.url, envelope(calview_body("2026-01-01T00:00:00Z", "2026-01-02T00:00:00Z"),
                                             "ga2@example.com"))
        self.assertEqual(code_of(data), "ErrorMailboxMoveInProgress")
        _, (mid,) = self.ad(["ga2@example.com"])
        self.assertEqual(mid[2]["GroupingInformation"], "SIMDAG01")
        raw = b"".join(c.chunks())   # the stream went on for ga1 and reported ga2's loss
        c.close()
        self.assertIn(b"ErrorSubscriptionNotFound", raw)
        self.assertIn(a2.encode(), raw)
        self.assertTrue(raw.rstrip().endswith(b"Envelope>"))
        time.sleep(0.7)
        _, (after,) = self.ad(["ga2@example.com"])
        self.assertEqual((after[2]["GroupingInformation"], after[2]["InternalMailboxServer"]),
                         ("SIMDAG03", "MBX03.sim.example.local"))
        sid, _, h = self.subscribe("ga2@example.com", headers=dict(AFF, **{"X-AnchorMailbox": "ga2@example.com"}))
        self.assertIn("MBX03", self.cookie_of(h))
        subs = {x["id"]: x for x in self.sim.control("GET", "/subscriptions")[1]["subscriptions"]}
        self.assertEqual(set(subs), {a1, sid})
        m = self.sim.stats()["moves"]
        self.assertEqual((m["started"], m["completed"], m["subscriptions_lost"]), (1, 1, 1))
        self.assertEqual(m["refused"], 3)
        self.assertNoViolations()

    def test_move_unreported_on_the_stream(self):
        a1, _, _ = self.subscribe("ga1@example.com", headers=dict(AFF, **{"X-AnchorMailbox": "ga1@example.com"}))
        a2, _, _ = self.subscribe("ga2@example.com", headers=dict(AFF, **{"X-AnchorMailbox": "ga1@example.com"}))
        c, _, _ = self.open_stream([a1, a2], who="ga1@example.com", timeout=2)
        time.sleep(0.2)
        st, res = self.sim.control("POST", "/mailboxes/ga2@example.com/move",
                                   {"duration_s": 0, "stream_code": None})
        self.assertEqual((st, res["lost"]), (200, [a2]))
        raw = b"".join(c.chunks())
        c.close()
        self.assertNotIn(b"ErrorSubscriptionNotFound", raw)
        subs = {x["id"] for x in self.sim.control("GET", "/subscriptions")[1]["subscriptions"]}
        self.assertEqual(subs, {a1})
        self.assertEqual(self.sim.stats()["moves"]["subscriptions_lost"], 1)
        self.assertNoViolations()

    def test_grouping_changed_without_a_move(self):
        a, _, _ = self.subscribe("ga1@example.com", headers=dict(AFF, **{"X-AnchorMailbox": "ga1@example.com"}))
        st, res = self.sim.control("PATCH", "/mailboxes/ga1@example.com/server", {"grouping": "NEWDAG"})
        self.assertEqual((st, res["server"], res["grouping"]), (200, "MBX01.sim.example.local", "NEWDAG"))
        _, (u,) = self.ad(["ga1@example.com"])
        self.assertEqual(u[2]["GroupingInformation"], "NEWDAG")
        subs = {x["id"] for x in self.sim.control("GET", "/subscriptions")[1]["subscriptions"]}
        self.assertEqual(subs, {a})
        for bad in ({}, {"grouping": ""}, {"grouping": 3}, []):
            st, _ = self.sim.control("PATCH", "/mailboxes/ga1@example.com/server", bad)
            self.assertEqual(st, 400, bad)
        self.assertNoViolations()

    def test_store_unavailable_and_bad_specs(self):
        st, res = self.sim.control("POST", "/mailboxes/gb1@example.com/move",
                                   {"code": "ErrorMailboxStoreUnavailable", "duration_s": 5, "grouping": "NEWDAG"})
        self.assertEqual(res["to"], "MBX03.sim.example.local")
        _, _, data = post(self.url, envelope(SUB_STREAM, "gb1@example.com"))
        self.assertEqual(code_of(data), "ErrorMailboxStoreUnavailable")
        srv = self.sim.control("GET", "/mailboxes/gb1@example.com/server")[1]
        self.assertEqual((srv["moving"], srv["moving_grouping"]), (True, "NEWDAG"))
        for bad in ({"to": 9}, {"code": "ErrorOther"}, {"duration_s": -1}, {"grouping": ""},
                    {"stream_code": ""}, {"stream_code": 3}, []):
            st, res = self.sim.control("POST", "/mailboxes/gb2@example.com/move", bad)
            self.assertEqual(st, 400, (bad, res))


# ----------------------------------------------------------------------- server profiles
class RefuseGroupingTests(SimTestCase):
    def setUp(self):
        super().setUp()
        self.sim.control("POST", "/config", {"profiles": ["refuse-grouping"]})

    def test_foreign_id_closes_the_stream(self):
        a, _, _ = self.subscribe("alice@example.com")
        b, _, _ = self.subscribe("bob@example.com")
        _, _, data = post(self.url, envelope(gse_body([a, b]), "alice@example.com"))
        root = xml(data)
        self.assertEqual(code_of(data), "ErrorInvalidSubscription")
        self.assertEqual([e.text for e in root.iter("{%s}SubscriptionId" % M)], [b])
        self.assertEqual(root.find(".//{%s}ConnectionStatus" % M).text, "Closed")
        # without impersonation no stream may carry impersonated subscriptions
        _, _, data = post(self.url, envelope(gse_body([a])))
        self.assertEqual(code_of(data), "ErrorInvalidSubscription")
        g = self.sim.stats()["grouping"]
        self.assertEqual((g["refused_ids"], g["closed_by_foreign_id"]), (2, 2))
        # each owner on its own stream works
        c, st, _ = self.open_stream([a], who="alice@example.com", timeout=1)
        raw = b"".join(c.chunks())
        c.close()
        self.assertNotIn(b"ResponseClass=\"Error\"", raw)

    def test_second_stream_and_unsubscribe_close_the_first(self):
        a1, _, _ = self.subscribe("alice@example.com")
        a2, _, _ = self.subscribe("alice@example.com")
        c1, _, _ = self.open_stream([a1, a2], who="alice@example.com", timeout=3)
        time.sleep(0.2)
        c2, _, _ = self.open_stream([a2], who="alice@example.com", timeout=3)
        t0 = time.monotonic()
        raw = b"".join(c1.chunks())
        c1.close()
        self.assertLess(time.monotonic() - t0, 2.0)
        self.assertIn(b"ErrorNewEventStreamConnectionOpened", raw)
        self.assertIn(b">Closed<", raw)
        time.sleep(0.2)
        _, _, data = post(self.url, envelope('<m:Unsubscribe><m:SubscriptionId>%s</m:SubscriptionId>'
                                             '</m:Unsubscribe>' % a2, "alice@example.com"))
        self.assertEqual(code_of(data), "NoError")
        raw = b"".join(c2.chunks())
        c2.close()
        self.assertIn(b">Closed<", raw)
        self.assertLess(time.monotonic() - t0, 2.5)
        # a1 is still valid: it can be streamed again
        c, _, _ = self.open_stream([a1], who="alice@example.com", timeout=1)
        self.assertNotIn(b"ResponseClass=\"Error\"", b"".join(c.chunks()))
        c.close()
        st = self.sim.stats()
        self.assertEqual((st["grouping"]["closed_by_second_stream"], st["grouping"]["closed_by_unsubscribe"]), (1, 1))
        self.assertEqual((st["subscriptions"]["created"], st["subscriptions"]["unsubscribed"]), (2, 1))

    def test_delegate_subscriptions(self):
        self.sim.control("POST", "/accounts", {"username": "svc-delegate", "password": "Deleg8!",
                                               "impersonate": ["alice@example.com"],
                                               "delegate": ["alice@example.com", "bob@example.com"]})
        auth = "Basic " + base64.b64encode(b"svc-delegate:Deleg8!").decode()
        body = SUB_STREAM.replace('<t:DistinguishedFolderId Id="calendar"/>',
                                  '<t:DistinguishedFolderId Id="calendar"><t:Mailbox><t:EmailAddress>%s'
                                  '</t:EmailAddress></t:Mailbox></t:DistinguishedFolderId>')
        ids = []
        for who in ("alice@example.com", "bob@example.com"):
            _, _, data = post(self.url, envelope(body % who), auth=auth)
            self.assertEqual(code_of(data), "NoError", data)
            ids.append(xml(data).find(".//{%s}SubscriptionId" % M).text)
        _, _, data = post(self.url, envelope(body % "carol.external@mail.example.net"), auth=auth)
        self.assertEqual(code_of(data), "ErrorAccessDenied")
        subs = self.sim.control("GET", "/subscriptions")[1]["subscriptions"]
        self.assertTrue(all(x["delegate"] for x in subs))
        c, st, _ = self.open_stream(ids, auth=auth, timeout=1)
        self.sim.add_item("bob@example.com", {"subject": "d", "start": "now+1h", "end": "now+2h"})
        raw = b"".join(c.chunks())
        c.close()
        self.assertIn(b"CreatedEvent", raw)
        self.assertNotIn(b"ResponseClass=\"Error\"", raw)
        # impersonating, the account's delegate subscriptions are foreign
        _, _, data = post(self.url, envelope(gse_body(ids[:1]), "alice@example.com"), auth=auth)
        self.assertEqual(code_of(data), "ErrorInvalidSubscription")
        # Exchange itself refuses delegate subscriptions
        self.sim.control("POST", "/config", {"profiles": []})
        _, _, data = post(self.url, envelope(body % "alice@example.com"), auth=auth)
        self.assertEqual(code_of(data), "ErrorSubscriptionDelegateAccessNotSupported")


class RealServerTests(SimTestCase):
    def setUp(self):
        super().setUp()
        self.sim.control("POST", "/config", {"profiles": ["realserver"], "heartbeat_s": 0.4})

    def test_unary_shapes(self):
        st, hdrs, data = post(self.url, envelope(OOF_BODY % "bob@example.com", "bob@example.com"))
        self.assertEqual(dict(hdrs)["content-type"], "text/xml")
        self.assertFalse(data.startswith(b"<?xml"))
        self.assertIsNone(re.match(rb"<(s|soap):Envelope", data))
        root = xml(data)
        self.assertEqual(root.find(".//{%s}OofState" % T).text, "Scheduled")
        self.assertRegex(root.find(".//{%s}Duration/{%s}StartTime" % (T, T)).text, r"\.\d{9}Z$")
        _, _, data = post(self.url, envelope(SUB_PULL % 1, "alice@example.com"))
        self.assertEqual(code_of(data), "NoError")
        self.assertIsNone(xml(data).find(".//{%s}Watermark" % M))
        _, _, data = post(self.url, envelope(calview_body("2000-01-01T00:00:00Z", "2100-01-01T00:00:00Z"),
                                             "alice@example.com"))
        item = xml(data).find(".//{%s}CalendarItem" % T)
        self.assertEqual(len(item.findall("{%s}StartTimeZone" % T)), 2)
        self.assertEqual(len(item.findall("{%s}EndTimeZone" % T)), 2)
        self.assertRegex(item.find("{%s}Start" % T).text, r"\.\d{9}Z$")
        avail = ('<m:GetUserAvailabilityRequest><t:TimeZone><t:Bias>0</t:Bias><t:StandardTime><t:Bias>0</t:Bias>'
                 '<t:Time>00:00:00</t:Time><t:DayOrder>1</t:DayOrder><t:Month>1</t:Month><t:DayOfWeek>Sunday'
                 '</t:DayOfWeek></t:StandardTime><t:DaylightTime><t:Bias>0</t:Bias><t:Time>00:00:00</t:Time>'
                 '<t:DayOrder>1</t:DayOrder><t:Month>1</t:Month><t:DayOfWeek>Sunday</t:DayOfWeek></t:DaylightTime>'
                 '</t:TimeZone><m:MailboxDataArray><t:MailboxData><t:Email><t:Address>alice@example.com'
                 '</t:Address></t:Email><t:AttendeeType>Required</t:AttendeeType></t:MailboxData>'
                 '</m:MailboxDataArray><t:FreeBusyViewOptions><t:TimeWindow><t:StartTime>%s</t:StartTime>'
                 '<t:EndTime>%s</t:EndTime></t:TimeWindow><t:MergedFreeBusyIntervalInMinutes>30'
                 '</t:MergedFreeBusyIntervalInMinutes><t:RequestedView>FreeBusyMerged</t:RequestedView>'
                 '</t:FreeBusyViewOptions></m:GetUserAvailabilityRequest>')
        now = time.time()
        _, _, data = post(self.url, envelope(avail % (time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(now - 86400)),
                                                      time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(now + 86400)))))
        root = xml(data)
        self.assertEqual(root.find(".//{%s}FreeBusyViewType" % T).text, "Detailed")
        self.assertIsNone(root.find(".//{%s}MergedFreeBusy" % T))
        self.assertIsNotNone(root.find(".//{%s}CalendarEventDetails" % T))
        # Autodiscover answers in the same style
        st, hdrs, data = post(self.sim.autodiscover_url, ad_request(["alice@example.com"]))
        self.assertEqual(dict(hdrs)["content-type"], "text/xml")
        self.assertEqual(ad_users(data)[1][0][0], "NoError")

    def test_stream_shapes(self):
        a, _, _ = self.subscribe("alice@example.com")
        b, _, _ = self.subscribe("bob@example.com")
        c, _, rh = self.open_stream([a, b], timeout=2, headers={"X-AnchorMailbox": "alice@example.com"})
        self.assertEqual(dict(rh)["content-type"], "text/xml")
        for k in range(6):  # events flow every 0.25 s: faster than the 0.4 s status cadence
            time.sleep(0.25)
            self.sim.add_item("alice@example.com", {"subject": "e%d" % k, "start": "now+1h", "end": "now+2h"})
        raw = b"".join(c.chunks())
        c.close()
        self.assertTrue(raw.startswith(b"<?xml"))
        self.assertEqual(raw.count(b"<?xml"), 1)
        envs = split_envelopes(strip_decl(raw))
        oks = closed = events = 0
        for e in envs:
            self.assertIsNone(re.match(r"<(s|soap):Envelope", e))
            root = xml(e.encode())
            cs = [x.text for x in root.iter("{%s}ConnectionStatus" % M)]
            oks += cs.count("OK")
            closed += cs.count("Closed")
            notes = root.findall(".//{%s}Notification" % M)
            if cs != ["Closed"] or notes:
                self.assertEqual(sorted(n.find("{%s}SubscriptionId" % T).text for n in notes), sorted([a, b]), e)
            self.assertIsNone(root.find(".//{%s}Watermark" % T))
            for ts in root.iter("{%s}TimeStamp" % T):
                self.assertRegex(ts.text, r"\.\d{9}Z$")
            events += len(list(root.iter("{%s}CreatedEvent" % T)))
        self.assertEqual(closed, 2)
        self.assertEqual(events, 6)
        # the status envelope keeps its cadence while events flow: 2 s / 0.4 s
        self.assertTrue(3 <= oks <= 5, oks)


class OofWithoutNotificationTests(SimTestCase):
    def test_oof_change_raises_nothing(self):
        a, _, _ = self.subscribe("alice@example.com")
        c, _, _ = self.open_stream([a], who="alice@example.com", timeout=1)
        time.sleep(0.2)
        st, res = self.sim.control("PUT", "/mailboxes/alice@example.com/oof", {"state": "Enabled"})
        self.assertEqual((st, res["state"]), (200, "Enabled"))
        raw = b"".join(c.chunks())
        c.close()
        self.assertNotIn(b"Notification", raw)
        stats = self.sim.stats()
        self.assertEqual((stats["oof_changes"], stats["events_raised"], stats["notifications_sent"]), (1, 0, 0))
        _, _, data = post(self.url, envelope(OOF_BODY % "alice@example.com", "alice@example.com"))
        self.assertEqual(xml(data).find(".//{%s}OofState" % T).text, "Enabled")
        self.sim.control("PUT", "/mailboxes/alice@example.com/oof", {"state": "Disabled"})


# ----------------------------------------------------------------------- pull and push
class PullPushTests(SimTestCase):
    def test_pull(self):
        sid, root, _ = self.subscribe("alice@example.com", SUB_PULL % 1)
        wm = root.find(".//{%s}Watermark" % M).text
        self.sim.add_item("alice@example.com", {"subject": "x", "start": "now", "end": "now+1h"})
        _, _, data = post(self.url, envelope(getevents_body(sid, wm)))
        r = xml(data)
        self.assertIsNotNone(r.find(".//{%s}Notification/{%s}CreatedEvent/{%s}Watermark" % (M, T, T)))
        wm2 = r.findall(".//{%s}Watermark" % T)[-1].text
        _, _, data = post(self.url, envelope(getevents_body(sid, wm2)))
        self.assertIsNotNone(xml(data).find(".//{%s}StatusEvent" % T))
        self.sim.fault({"kind": "missed_events", "ids": [sid]})
        _, _, data = post(self.url, envelope(getevents_body(sid, wm2)))
        self.assertEqual(code_of(data), "ErrorMissedNotificationEvents")
        self.sim.control("POST", "/config", {"minute_seconds": 0.3})
        sid, _, _ = self.subscribe("alice@example.com", SUB_PULL % 1)
        time.sleep(0.8)  # pull Timeout of 1 (scaled) minute without GetEvents
        _, _, data = post(self.url, envelope(getevents_body(sid, wm)))
        self.assertEqual(code_of(data), "ErrorSubscriptionNotFound")

    def test_push_delivery_and_unsubscribe(self):
        tgt = PushTarget(["OK", "OK", "Unsubscribe"])
        try:
            sid, _, _ = self.subscribe("alice@example.com", SUB_PUSH % tgt.url)
            deadline = time.time() + 5
            while not tgt.posts and time.time() < deadline:
                time.sleep(0.02)
            self.assertIn(b"StatusEvent", tgt.posts[0][1])
            root = xml(tgt.posts[0][1])
            self.assertIsNotNone(root.find(".//{%s}SendNotification/{%s}ResponseMessages" % (M, M)))
            self.sim.add_item("alice@example.com", {"subject": "p", "start": "now", "end": "now+1h"})
            while len(tgt.posts) < 2 and time.time() < deadline:
                time.sleep(0.02)
            self.assertIn(b"CreatedEvent", tgt.posts[1][1])
            # StatusFrequency 1 (scaled) minute without events -> StatusEvent; answered Unsubscribe
            while len(tgt.posts) < 3 and time.time() < deadline:
                time.sleep(0.02)
            self.assertIn(b"StatusEvent", tgt.posts[2][1])
            time.sleep(0.2)
            self.assertEqual(self.sim.control("GET", "/subscriptions")[1]["subscriptions"], [])
        finally:
            tgt.close()

    def test_push_over_https_self_signed(self):
        openssl = shutil.which("openssl")
        if not openssl:
            self.skipTest("openssl not installed")
        import tempfile
        tmp = tempfile.mkdtemp(prefix="ewssim-test-")
        try:
            crt, key = os.path.join(tmp, "c.pem"), os.path.join(tmp, "k.pem")
            subprocess.run([openssl, "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-keyout", key, "-out", crt,
                            "-days", "1", "-subj", "/CN=localhost"], check=True, capture_output=True)
            tgt = PushTarget(["OK"], tls=(crt, key))
            try:
                self.subscribe("alice@example.com", SUB_PUSH % tgt.url)
                deadline = time.time() + 5
                while not tgt.posts and time.time() < deadline:
                    time.sleep(0.02)
                self.assertTrue(tgt.posts and b"StatusEvent" in tgt.posts[0][1])
                # The answer is counted once the simulator has read it.
                while self.sim.stats()["push"]["ok"] < 1 and time.time() < deadline:
                    time.sleep(0.02)
                self.assertEqual(self.sim.stats()["push"]["ok"], 1)
            finally:
                tgt.close()
        finally:
            shutil.rmtree(tmp, ignore_errors=True)

    def test_push_retry_then_expire(self):
        self.sim.control("POST", "/config", {"minute_seconds": 1.2})
        tgt = PushTarget([500])
        try:
            self.subscribe("alice@example.com", SUB_PUSH % tgt.url)
            time.sleep(3.5)
            times = [p[0] for p in tgt.posts]
            # first POST, retries after 0.6 s (30 s scaled) and 1.2 s (60 s);
            # 120 s > StatusFrequency.  Wide margins: the machine may be busy.
            self.assertEqual(len(times), 3, times)
            self.assertAlmostEqual(times[1] - times[0], 0.6, delta=0.3)
            self.assertAlmostEqual(times[2] - times[1], 1.2, delta=0.4)
            st = self.sim.stats()
            self.assertEqual(st["push"]["expired"], 1)
            self.assertEqual(st["live_subscriptions"]["total"], 0)
        finally:
            tgt.close()


# ----------------------------------------------------------------------- faults and hostile input
class FaultTests(SimTestCase):
    body = envelope(OOF_BODY % "alice@example.com", "alice@example.com")

    def test_http_status_burst(self):
        self.sim.fault({"kind": "http_status", "status": 503, "count": 2})
        self.assertEqual([post(self.url, self.body)[0] for _ in range(3)], [503, 503, 200])
        self.sim.fault({"kind": "http_status", "status": 500, "operation": "FindItem"})
        self.assertEqual(post(self.url, self.body)[0], 200)
        # Counted as they took effect, and still after the faults went.
        self.sim.control("DELETE", "/faults")
        self.assertEqual(self.sim.stats()["faults_injected"], {"http_status": 2})

    def test_server_busy(self):
        self.sim.fault({"kind": "server_busy", "count": 1, "backoff_ms": 100})
        st, _, data = post(self.url, self.body)
        self.assertEqual((st, code_of(data)), (500, "ErrorServerBusy"))
        time.sleep(0.15)
        self.assertEqual(post(self.url, self.body)[0], 200)
        self.assertEqual(self.sim.stats()["faults_injected"], {"server_busy": 1})
        self.assertNoViolations()

    def test_malformed_and_truncated(self):
        self.sim.fault({"kind": "malformed_xml", "count": 1})
        _, _, data = post(self.url, self.body)
        with self.assertRaises(etree.XMLSyntaxError):
            xml(data)
        self.sim.fault({"kind": "truncated_chunks", "count": 1})
        with self.assertRaises((ConnectionError, OSError)):
            post(self.url, self.body)
        self.assertEqual(post(self.url, self.body)[0], 200)

    def test_prefix_styles_and_extra_elements(self):
        for style in ("soap", "default", "other", "exchange"):
            self.sim.fault({"kind": "prefix_style", "style": style})
            _, _, data = post(self.url, self.body)
            self.assertEqual(xml(data).find(".//{%s}OofState" % T).text, "Disabled", style)
            if style == "default":
                self.assertNotIn(b"<s:", data)
                self.assertNotIn(b"<t:", data)
        self.sim.control("DELETE", "/faults")
        self.sim.fault({"kind": "extra_elements"})
        _, _, data = post(self.url, self.body)
        self.assertIn(b"urn:ewssim:unknown-extension", data)
        self.assertEqual(xml(data).find(".//{%s}OofState" % T).text, "Disabled")

    def test_hang_and_latency(self):
        self.sim.fault({"kind": "hang", "count": 1})
        c = Conn(self.url, timeout=0.5)
        c.send(self.body, {"Authorization": BASIC})
        with self.assertRaises(socket.timeout):
            c.read_head()
        c.close()
        self.sim.fault({"kind": "latency_ms", "ms": 300, "count": 1})
        t0 = time.monotonic()
        post(self.url, self.body)
        self.assertGreaterEqual(time.monotonic() - t0, 0.29)

    def test_latency_counts_from_arrival(self):
        """The answer is due L ms after the request arrived: what the
        simulator does before admission (here: waits for a body sent
        late) is part of L, not added to it, and /stats says where a
        request's time went."""
        self.sim.control("POST", "/config", {"latency_ms": 1000})
        body = envelope(OOF_BODY % "alice@example.com", "alice@example.com")
        c = Conn(self.url)
        head = ("POST %s HTTP/1.1\r\nHost: 127.0.0.1\r\n"
                "Content-Type: text/xml; charset=utf-8\r\nAuthorization: %s\r\n"
                "Content-Length: %d\r\n\r\n" % (c.path, BASIC, len(body))).encode()
        t0 = time.monotonic()
        c.sock.sendall(head)
        time.sleep(0.8)
        t1 = time.monotonic()
        c.sock.sendall(body)
        st, _ = c.read_head()
        t2 = time.monotonic()
        c.close()
        self.assertEqual(st, 200)
        self.assertGreaterEqual(t2 - t0, 0.99)     # never before L
        self.assertLess(t2 - t1, 0.8)              # L from the arrival
        ph = self.sim.stats()["request_phases"]
        self.assertEqual(ph["requests"], 1)
        self.assertGreaterEqual(ph["arrival_to_admission_ms"], 790)
        self.assertLess(ph["admission_to_latency_end_ms"], 800)
        self.assertGreaterEqual(ph["arrival_to_admission_ms"] +
                                ph["admission_to_latency_end_ms"], 990)
        for k in ("latency_end_to_release_ms", "release_to_sent_ms"):
            self.assertGreaterEqual(ph[k], 0)

    def test_hostile_input(self):
        bomb = (b'<?xml version="1.0"?><!DOCTYPE x [<!ENTITY a "aaaa"><!ENTITY b "&a;&a;&a;">]>'
                b'<soap:Envelope xmlns:soap="%s"><soap:Body>&b;</soap:Body></soap:Envelope>' % SOAP.encode())
        for junk in (bomb, b"\x00\xff garbage", b"<a>" * 10000, b"", b"<x/>"):
            st, _, _ = post(self.url, junk)
            self.assertEqual(st, 500)
        c = Conn(self.url)
        c.sock.sendall(b"POST /EWS/Exchange.asmx HTTP/1.1\r\n" + b"X-A: " + b"a" * 100000 + b"\r\n\r\n")
        st, _ = c.read_head()
        self.assertEqual(st, 400)
        c.close()
        c = Conn(self.url)
        c.sock.sendall(b"BROKEN\r\n\r\n")
        self.assertEqual(c.read_head()[0], 400)
        c.close()
        self.assertEqual(post(self.url, self.body)[0], 200)
        self.assertEqual(self.sim.control("GET", "/health"), (200, {"ok": True}))

    @unittest.skipUnless(SCHEMA_DIR, "ews-schema not available")
    def test_schema_validation(self):
        st, _, data = post(self.url, envelope(gse_body(["abc"], timeout=31)))
        self.assertEqual((st, code_of(data)), (500, "ErrorSchemaValidation"))
        s = self.sim.stats()
        self.assertEqual(s["schema_invalid"], 1)
        self.assertEqual(s["violations"], {"schema_invalid": 1})

    def test_control_api_errors(self):
        self.assertEqual(self.sim.control("POST", "/faults", {"kind": "nope"})[0], 400)
        self.assertEqual(self.sim.control("POST", "/faults", {"kind": "latency_ms", "ms": "x"})[0], 400)
        self.assertEqual(self.sim.control("POST", "/faults", [1, 2])[0], 400)
        self.assertEqual(self.sim.control("POST", "/mailboxes/alice@example.com/items", [1])[0], 400)
        self.assertEqual(self.sim.control("PUT", "/mailboxes/alice@example.com/oof", {"state": "Maybe"})[0], 400)
        self.assertEqual(self.sim.control("POST", "/config", {"max_concurrency": "x"})[0], 400)
        self.assertEqual(self.sim.control("POST", "/mailboxes/alice@example.com/items", {"start": "bad"})[0], 400)
        self.assertEqual(self.sim.control("GET", "/mailboxes/ghost@example.com/items")[0], 404)
        r = self.sim.add_item("alice@example.com", {"subject": "tmp", "start": "now", "end": "now+1h"})
        self.assertEqual(self.sim.control("PATCH", "/mailboxes/alice@example.com/items/%s" % r["local_id"],
                                          {"subject": "tmp2"})[0], 200)
        self.assertEqual(self.sim.control("DELETE", "/mailboxes/alice@example.com/items/%s" % r["local_id"])[0], 200)


class VersionTests(unittest.TestCase):
    def test_exchange2007_refuses_streaming(self):
        with Simulator(directory=DIRECTORY, version="Exchange2007_SP1", schema_dir=SCHEMA_DIR) as sim:
            st, _, data = post(sim.ews_url, envelope(SUB_STREAM, "alice@example.com", version="Exchange2007_SP1"))
            self.assertEqual((st, code_of(data)), (500, "ErrorSchemaValidation"))
            st, _, data = post(sim.ews_url, envelope(OOF_BODY % "alice@example.com", "alice@example.com",
                                                     version="Exchange2007_SP1"))
            svi = xml(data).find(".//{%s}ServerVersionInfo" % T)
            self.assertEqual(svi.get("MajorVersion"), "8")
            self.assertIsNone(svi.get("Version"))
            st, _, data = post(sim.ews_url, envelope(OOF_BODY % "alice@example.com", "alice@example.com",
                                                     version="Exchange2013_SP1"))
            self.assertEqual(code_of(data), "ErrorInvalidServerVersion")

    def test_generated_directory(self):
        with Simulator(generate=100000, generate_meetings=3, auth="basic", ntlm_v2_only=True) as sim:
            auth = "Basic " + base64.b64encode(b"svc-ewsgw:Passw0rd!").decode()
            st, _, data = post(sim.ews_url, envelope(calview_body("2000-01-01T00:00:00Z", "2100-01-01T00:00:00Z"),
                                                     "user100000@example.com"), auth=auth)
            self.assertEqual(st, 200)
            self.assertGreaterEqual(len(xml(data).findall(".//{%s}CalendarItem" % T)), 3)
            st, _, data = post(sim.ews_url, envelope(OOF_BODY % "user000001@example.com",
                                                     "user000001@corp.example.local", id_kind="PrincipalName"), auth=auth)
            self.assertEqual(code_of(data), "NoError")
            st, _, data = post(sim.ews_url, envelope(OOF_BODY % "user100001@example.com",
                                                     "user100001@example.com"), auth=auth)
            self.assertEqual(code_of(data), "ErrorNonExistentMailbox")
            st, hdrs, _ = post(sim.ews_url, b"", auth=None)
            self.assertEqual([v for k, v in hdrs if k == "www-authenticate"], ['Basic realm="ewssim"'])


class RobustnessTests(unittest.TestCase):
    BODIES = [SUB_STREAM, SUB_PULL % 5, SUB_PUSH % "http://127.0.0.1:9/x", gse_body(["a", "b"]),
              getevents_body("x", "y"), calview_body("2026-01-01T00:00:00Z", "2026-02-01T00:00:00Z"),
              OOF_BODY % "alice@example.com",
              '<m:GetItem><m:ItemShape><t:BaseShape>IdOnly</t:BaseShape></m:ItemShape><m:ItemIds>'
              '<t:ItemId Id="AAMkAGSimZm9v"/></m:ItemIds></m:GetItem>',
              '<m:GetFolder><m:FolderShape><t:BaseShape>IdOnly</t:BaseShape></m:FolderShape><m:FolderIds>'
              '<t:DistinguishedFolderId Id="calendar"/></m:FolderIds></m:GetFolder>',
              '<m:GetUserAvailabilityRequest><t:TimeZone><t:Bias>0</t:Bias></t:TimeZone><m:MailboxDataArray>'
              '<t:MailboxData><t:Email><t:Address>bob@example.com</t:Address></t:Email><t:AttendeeType>Required'
              '</t:AttendeeType></t:MailboxData></m:MailboxDataArray><t:FreeBusyViewOptions><t:TimeWindow>'
              '<t:StartTime>2026-03-02T00:00:00</t:StartTime><t:EndTime>2026-03-03T00:00:00</t:EndTime>'
              '</t:TimeWindow><t:MergedFreeBusyIntervalInMinutes>30</t:MergedFreeBusyIntervalInMinutes>'
              '<t:RequestedView>Detailed</t:RequestedView></t:FreeBusyViewOptions></m:GetUserAvailabilityRequest>']

    def test_mutated_requests_without_schema(self):
        """Without schema validation the handlers themselves must cope with broken requests."""
        import random
        rng = random.Random(4)

        def mutate(b):
            root = etree.fromstring(('<w xmlns:m="%s" xmlns:t="%s">' % (M, T)) + b + "</w>")
            els = list(root.iter())[1:]
            for _ in range(rng.randint(1, 3)):
                e = rng.choice(els)
                r = rng.random()
                if r < 0.3 and e.getparent() is not None and e.getparent() is not root:
                    e.getparent().remove(e)
                elif r < 0.6:
                    e.text = rng.choice(["", "x", "-1", "99999999999999999999", "2026-13-45T99:00:00", "\u2603"])
                elif r < 0.8:
                    for k in list(e.attrib):
                        e.attrib[k] = rng.choice(["", "zz", "-5", "true"])
                else:
                    e.append(etree.Element("{%s}Bogus" % T))
            return "".join(etree.tostring(c, encoding="unicode") for c in root)
        with Simulator(directory=DIRECTORY, no_schema=True) as sim:
            c = Conn(sim.ews_url)
            for _ in range(300):
                who = rng.choice([None, "alice@example.com", "bob@example.com"])
                st, _, _ = c.request(envelope(mutate(rng.choice(self.BODIES)), who), {"Authorization": BASIC})
                self.assertIn(st, (200, 500))
            c.close()
            self.assertNotIn("(internal)", sim.stats()["requests"], sim.log())


if __name__ == "__main__":
    unittest.main(verbosity=2)
