#!/usr/bin/env python3
"""graphsim: a Microsoft Graph stand-in on loopback for ewsgw's tests and demo.

The OAuth 2.0 token endpoint (client secret or certificate assertion), the
Graph v1.0 calendar, mailbox-settings, subscription and $batch endpoints, change
and lifecycle notifications, delta tokens, the application access policy and
Graph's Outlook throttling (per app per mailbox: 4 concurrent requests and a
request rate), with every breach counted in GET /stats on the control port.
README.md in this folder documents it; SCHEMA.md the JSON it speaks.
"""
import argparse
import base64
import collections
import hashlib
import http.server
import itertools
import json
import logging
import os
import re
import secrets
import signal
import socketserver
import ssl
import sys
import threading
import time
import urllib.error
import urllib.parse
import urllib.request
from datetime import datetime, timezone

log = logging.getLogger("graphsim")

MAX_BODY = 4 * 1024 * 1024
BATCH_MAX = 20
CLIENT_STATE_MAX = 128
VALIDATION_TIMEOUT = 10.0
DEFAULT_PAGE = 10  # Graph's default page size for calendarView
RETRY_GRACE = 0.25  # seconds a 429 takes to reach the client


def iso(t):
    return datetime.fromtimestamp(t, timezone.utc).strftime("%Y-%m-%dT%H:%M:%S.0000000")


def iso_z(t):
    return datetime.fromtimestamp(t, timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")


def parse_time(s):
    """ISO 8601 (Z, offset or none = UTC), epoch seconds, or now[+-]N[smhd]..."""
    if isinstance(s, (int, float)):
        return float(s)
    s = s.strip()
    m = re.fullmatch(r"now((?:[+-]\d+[smhd])*)", s)
    if m:
        t = time.time()
        for sign, n, unit in re.findall(r"([+-])(\d+)([smhd])", m.group(1)):
            d = int(n) * {"s": 1, "m": 60, "h": 3600, "d": 86400}[unit]
            t += d if sign == "+" else -d
        return t
    s = re.sub(r"(\.\d+)", lambda x: x.group(1)[:7], s)
    if s.endswith("Z"):
        s = s[:-1] + "+00:00"
    dt = datetime.fromisoformat(s)
    if dt.tzinfo is None:
        dt = dt.replace(tzinfo=timezone.utc)
    return dt.timestamp()


def b64url_decode(s):
    return base64.urlsafe_b64decode(s + "=" * (-len(s) % 4))


class GraphError(Exception):
    def __init__(self, status, code, message, headers=None):
        super().__init__(message)
        self.status, self.code, self.message = status, code, message
        self.headers = headers or {}

    def body(self):
        return {"error": {"code": self.code, "message": self.message,
                          "innerError": {"date": iso_z(time.time())[:-1],
                                         "request-id": secrets.token_hex(8)}}}


class Stats:
    def __init__(self):
        self.lock = threading.Lock()
        self.reset()

    def reset(self):
        self.requests = {}
        self.violations = {"mailbox_concurrency": 0, "mailbox_rate": 0,
                           "app_rate": 0, "retry_after_ignored": 0,
                           "batch_concurrency": 0}
        self.faults_injected = 0
        self.counters = {}
        self.max_in_flight = {}

    def count(self, name, n=1):
        with self.lock:
            self.counters[name] = self.counters.get(name, 0) + n

    def request(self, name):
        with self.lock:
            self.requests[name] = self.requests.get(name, 0) + 1

    def violation(self, name):
        with self.lock:
            self.violations[name] += 1

    def snapshot(self):
        with self.lock:
            return {"requests": dict(self.requests), "violations": dict(self.violations),
                    "violations_total": sum(self.violations.values()),
                    "faults_injected": self.faults_injected,
                    "counters": dict(self.counters),
                    "max_in_flight_per_mailbox": dict(self.max_in_flight)}


class Mailbox:
    def __init__(self, mid, upn):
        self.id = mid
        self.upn = upn
        self.events = {}  # id -> dict
        # Moved back on premises (or unlicensed): Graph has no mailbox for it.
        self.on_premises = False
        self.seq = 0  # change counter for delta
        self.log = []  # (seq, event id)
        self.auto = {"status": "disabled", "externalAudience": "all",
                     "scheduledStartDateTime": None, "scheduledEndDateTime": None,
                     "internalReplyMessage": "", "externalReplyMessage": ""}

    def touch(self, eid):
        self.seq += 1
        self.log.append((self.seq, eid))


class State:
    def __init__(self, opts):
        self.opts = opts
        self.lock = threading.RLock()
        self.stats = Stats()
        self.mailboxes = {}  # key: lower(id) and lower(upn) -> Mailbox
        self.tokens = {}  # token -> expiry (epoch)
        self.token_roles = {}  # token -> application permissions it carries
        self.roles = frozenset(r for r in opts.roles.split(",") if r)
        self.subs = {}  # id -> dict
        self.in_flight = {}  # mailbox id -> n
        self.rate = {}  # mailbox id -> [timestamps]
        self.app_times = collections.deque()  # the app's, every mailbox
        self.retry_until = {}  # mailbox id -> (429 sent, Retry-After ends)
        self.throttle_next = 0
        self.throttle_retry_after = 2
        self.ids = itertools.count(1)
        self.set_policy(opts.allow)
        self.cert_thumbs = {}
        self.cert_keys = []
        for path in (opts.client_cert or "").split(","):
            if path:
                self.load_cert(path)

    def load_cert(self, path):
        from cryptography import x509
        from cryptography.hazmat.primitives import hashes, serialization
        with open(path, "rb") as fh:
            cert = x509.load_pem_x509_certificate(fh.read())
        der = cert.public_bytes(serialization.Encoding.DER)
        s256 = base64.urlsafe_b64encode(hashlib.sha256(der).digest()).rstrip(b"=").decode()
        s1 = base64.urlsafe_b64encode(hashlib.sha1(der).digest()).rstrip(b"=").decode()
        self.cert_thumbs[s256] = cert.public_key()
        self.cert_thumbs[s1] = cert.public_key()
        del hashes

    def set_policy(self, allow):
        """The application access policy: None or "" = none (every mailbox)."""
        if isinstance(allow, str):
            allow = [a for a in allow.split(",") if a]
        self.allowed = set(a.lower() for a in allow) if allow else None

    def need_role(self, roles, role):
        """Graph answers 403 when the token lacks the application permission
        (the .ReadWrite one includes the .Read one)."""
        if role in roles or role.replace(".Read", ".ReadWrite") in roles:
            return
        self.stats.count("permission_denied")
        self.stats.count("permission_denied_" + role)
        raise GraphError(403, "ErrorAccessDenied", "Access is denied. Check credentials and try again.")

    # ---- directory ----
    def add_mailbox(self, upn, mid=None):
        with self.lock:
            mid = mid or "%08x-0000-4000-8000-%012x" % (len(self.mailboxes) + 1, len(self.mailboxes) + 1)
            mb = Mailbox(mid, upn)
            self.mailboxes[upn.lower()] = mb
            self.mailboxes[mid.lower()] = mb
            return mb

    def mailbox(self, key):
        mb = self.mailboxes.get(urllib.parse.unquote(key).lower())
        if mb is None:
            raise GraphError(404, "ErrorInvalidUser",
                             "The requested user '%s' is invalid." % urllib.parse.unquote(key))
        if self.allowed is not None and mb.upn.lower() not in self.allowed and mb.id.lower() not in self.allowed:
            self.stats.count("access_policy_denied")
            raise GraphError(403, "ErrorAccessDenied",
                             "Access to OData is disabled: [RAOP] : Blocked by tenant configured "
                             "AppOnly AccessPolicy settings.")
        if mb.on_premises:
            # The user exists in the directory, its mailbox is on an
            # Exchange server: what Graph answers for it (KB 4462988).
            self.stats.count("no_mailbox_404")
            raise GraphError(404, "MailboxNotEnabledForRESTAPI",
                             "The mailbox is either inactive, soft-deleted, or is hosted on-premise.")
        return mb

    # ---- events ----
    def event_json(self, ev, utc=True):
        shift, tz = (0, "UTC") if utc else (3600, "W. Europe Standard Time")
        return {"@odata.etag": 'W/"%s"' % ev["etag"], "id": ev["id"], "subject": ev["subject"],
                "showAs": ev["showAs"], "isAllDay": ev["isAllDay"],
                "sensitivity": ev["sensitivity"], "isCancelled": ev["isCancelled"],
                "type": ev.get("type", "singleInstance"),
                "start": {"dateTime": iso(ev["start"] + shift), "timeZone": tz},
                "end": {"dateTime": iso(ev["end"] + shift), "timeZone": tz}}

    def put_event(self, mb, spec, eid=None):
        with self.lock:
            ev = mb.events.get(eid) if eid else None
            if ev is None:
                eid = eid or "AAMkAGSim%06d=" % next(self.ids)
                ev = {"id": eid, "subject": "", "showAs": "busy", "isAllDay": False,
                      "sensitivity": "normal", "isCancelled": False, "start": 0, "end": 0}
                change = "created"
            else:
                change = "updated"
            for k in ("subject", "showAs", "isAllDay", "sensitivity", "isCancelled", "type"):
                if k in spec:
                    ev[k] = spec[k]
            if "start" in spec:
                ev["start"] = parse_time(spec["start"])
            if "end" in spec:
                ev["end"] = parse_time(spec["end"])
            if ev["end"] < ev["start"]:
                raise GraphError(400, "ErrorInvalidRequest", "end before start")
            ev["etag"] = secrets.token_urlsafe(12)
            mb.events[eid] = ev
            mb.touch(eid)
        self.notify(mb, change, eid)
        return ev

    def delete_event(self, mb, eid):
        with self.lock:
            if mb.events.pop(eid, None) is None:
                raise GraphError(404, "ErrorItemNotFound", "not found")
            mb.touch(eid)
        self.notify(mb, "deleted", eid)

    # ---- notifications ----
    def subs_for(self, mb):
        with self.lock:
            now = time.time()
            return [s for s in self.subs.values()
                    if s["mailbox"] is mb and s["expires"] > now]

    def notify(self, mb, change, eid):
        for s in self.subs_for(mb):
            if change not in s["changeType"].split(","):
                continue
            note = {"subscriptionId": s["id"],
                    "subscriptionExpirationDateTime": iso_z(s["expires"]),
                    "changeType": change,
                    "resource": "Users/%s/Events/%s" % (mb.id, eid),
                    "resourceData": {"@odata.type": "#Microsoft.Graph.Event",
                                     "@odata.id": "Users/%s/Events/%s" % (mb.id, eid),
                                     "id": eid},
                    "clientState": s["clientState"], "tenantId": self.opts.tenant}
            self.deliver(s["notificationUrl"], {"value": [note]}, "change")

    def lifecycle(self, sid, event):
        with self.lock:
            s = self.subs.get(sid)
            if s is None:
                raise GraphError(404, "ResourceNotFound", "no such subscription")
            if event == "subscriptionRemoved":
                del self.subs[sid]
        url = s.get("lifecycleNotificationUrl")
        if not url:
            raise GraphError(400, "InvalidRequest", "subscription has no lifecycleNotificationUrl")
        note = {"subscriptionId": sid, "subscriptionExpirationDateTime": iso_z(s["expires"]),
                "tenantId": self.opts.tenant, "clientState": s["clientState"],
                "lifecycleEvent": event}
        self.stats.count("lifecycle_" + event)
        self.deliver(url, {"value": [note]}, "lifecycle")

    def deliver(self, url, payload, kind):
        def run():
            data = json.dumps(payload).encode()
            req = urllib.request.Request(url, data=data, method="POST",
                                         headers={"Content-Type": "application/json"})
            try:
                with urllib.request.urlopen(req, timeout=self.opts.notify_timeout,
                                            context=self.client_tls()) as r:
                    ok = 200 <= r.status < 300
            except (urllib.error.URLError, OSError, ValueError):
                ok = False
            self.stats.count("%s_notifications_%s" % (kind, "delivered" if ok else "failed"))
        threading.Thread(target=run, daemon=True).start()

    def client_tls(self):
        ctx = ssl.create_default_context()
        if self.opts.notify_ca:
            ctx.load_verify_locations(self.opts.notify_ca)
        return ctx

    def validate_url(self, url):
        """The validation handshake: POST url?validationToken=..., expect the token back."""
        token = "Validation: Testing client application reachability for subscription Request-Id: " + \
            secrets.token_hex(8)
        sep = "&" if "?" in url else "?"
        full = url + sep + "validationToken=" + urllib.parse.quote_plus(token)
        req = urllib.request.Request(full, data=b"", method="POST",
                                     headers={"Content-Type": "text/plain; charset=utf-8"})
        try:
            with urllib.request.urlopen(req, timeout=VALIDATION_TIMEOUT, context=self.client_tls()) as r:
                body = r.read(4096).decode("utf-8", "replace")
                ctype = r.headers.get("Content-Type", "")
                ok = r.status == 200 and body == token and ctype.split(";")[0].strip() == "text/plain"
        except (urllib.error.URLError, OSError, ValueError):
            ok = False
        self.stats.count("validations_" + ("ok" if ok else "failed"))
        if not ok:
            raise GraphError(400, "InvalidRequest",
                             "Subscription validation request failed. Notification endpoint must "
                             "respond with 200 OK to validation request.")

    def sweep(self):
        with self.lock:
            now = time.time()
            for sid in [k for k, s in self.subs.items() if s["expires"] <= now]:
                del self.subs[sid]
                self.stats.count("subscriptions_expired")


class Handler(http.server.BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server_version = "graphsim"

    def log_message(self, fmt, *args):
        log.debug("%s " + fmt, self.address_string(), *args)

    def body(self):
        n = int(self.headers.get("Content-Length") or 0)
        if n > MAX_BODY:
            raise GraphError(413, "RequestEntityTooLarge", "body too large")
        return self.rfile.read(n) if n else b""

    def reply(self, status, obj=None, headers=None, text=None):
        data = b""
        ctype = None
        if text is not None:
            data, ctype = text.encode(), "text/plain"
        elif obj is not None:
            data, ctype = json.dumps(obj).encode(), "application/json"
        self.send_response(status)
        if ctype:
            self.send_header("Content-Type", ctype)
        for k, v in (headers or {}).items():
            self.send_header(k, str(v))
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def do_GET(self):
        self.dispatch("GET")

    def do_POST(self):
        self.dispatch("POST")

    def do_PATCH(self):
        self.dispatch("PATCH")

    def do_DELETE(self):
        self.dispatch("DELETE")

    def do_PUT(self):
        self.dispatch("PUT")


class GraphHandler(Handler):
    def dispatch(self, method):
        st = self.server.state
        try:
            raw = self.body()
            url = urllib.parse.urlsplit(self.path)
            m = re.fullmatch(r"/([^/]+)/oauth2/v2\.0/token", url.path)
            if m:
                st.stats.request("token")
                return self.token(m.group(1), raw)
            if not url.path.startswith("/v1.0/"):
                raise GraphError(404, "BadRequest", "Invalid version")
            roles = self.authorize()
            path = url.path[len("/v1.0"):]
            if path == "/$batch" and method == "POST":
                st.stats.request("batch")
                return self.reply(200, self.batch(raw, roles))
            status, obj, headers = self.server.app.route(method, path, url.query, raw,
                                                         dict(self.headers.items()), roles=roles)
            if status == 204:
                return self.reply(204)
            self.reply(status, obj, headers)
        except GraphError as e:
            body = e.body() if not isinstance(e, TokenError) else e.oauth
            self.reply(e.status, body, e.headers)

    def authorize(self):
        st = self.server.state
        auth = self.headers.get("Authorization", "")
        tok = auth[7:] if auth.startswith("Bearer ") else None
        exp = st.tokens.get(tok)
        if exp is None or exp <= time.time():
            st.stats.count("unauthorized")
            raise GraphError(401, "InvalidAuthenticationToken",
                             "Access token has expired or is not yet valid." if exp else
                             "Access token is empty.",
                             {"WWW-Authenticate": 'Bearer realm="", authorization_uri='
                              '"https://login.microsoftonline.com/common/oauth2/authorize"'})
        return st.token_roles.get(tok, frozenset())

    def token(self, tenant, raw):
        st, o = self.server.state, self.server.state.opts
        form = urllib.parse.parse_qs(raw.decode("utf-8", "replace"))
        f = {k: v[0] for k, v in form.items()}
        if tenant != o.tenant:
            raise TokenError(400, "invalid_request", "AADSTS90002: Tenant '%s' not found." % tenant)
        if f.get("grant_type") != "client_credentials":
            raise TokenError(400, "unsupported_grant_type", "AADSTS70003: grant_type not supported.")
        if f.get("client_id") != o.client_id:
            raise TokenError(400, "unauthorized_client", "AADSTS700016: Application not found.")
        if f.get("scope") != "https://graph.microsoft.com/.default":
            raise TokenError(400, "invalid_scope", "AADSTS1002012: The provided value for scope is not valid.")
        if "client_secret" in f:
            if not o.client_secret or not secrets.compare_digest(f["client_secret"], o.client_secret):
                st.stats.count("token_refused")
                raise TokenError(401, "invalid_client",
                                 "AADSTS7000215: Invalid client secret provided.")
            st.stats.count("token_by_secret")
        elif "client_assertion" in f:
            if f.get("client_assertion_type") != "urn:ietf:params:oauth:client-assertion-type:jwt-bearer":
                raise TokenError(400, "invalid_request", "AADSTS50027: bad client_assertion_type.")
            why = self.check_assertion(f["client_assertion"], tenant)
            if why:
                st.stats.count("token_refused")
                raise TokenError(401, "invalid_client", "AADSTS700027: " + why)
            st.stats.count("token_by_assertion")
        else:
            raise TokenError(401, "invalid_client", "AADSTS7000218: no client_secret or client_assertion.")
        tok = secrets.token_urlsafe(48)
        with st.lock:
            st.tokens[tok] = time.time() + o.token_lifetime
            st.token_roles[tok] = st.roles
        st.stats.count("tokens_issued")
        self.reply(200, {"token_type": "Bearer", "expires_in": o.token_lifetime,
                         "ext_expires_in": o.token_lifetime, "access_token": tok})

    def check_assertion(self, jwt, tenant):
        from cryptography.exceptions import InvalidSignature
        from cryptography.hazmat.primitives import hashes
        from cryptography.hazmat.primitives.asymmetric import padding
        st, o = self.server.state, self.server.state.opts
        try:
            h64, c64, s64 = jwt.split(".")
            hdr, claims = json.loads(b64url_decode(h64)), json.loads(b64url_decode(c64))
            sig = b64url_decode(s64)
        except (ValueError, TypeError):
            return "malformed assertion"
        key = st.cert_thumbs.get(hdr.get("x5t#S256") or hdr.get("x5t") or "")
        if key is None:
            return "certificate thumbprint not registered"
        if hdr.get("alg") == "PS256":
            pad = padding.PSS(mgf=padding.MGF1(hashes.SHA256()), salt_length=32)
        elif hdr.get("alg") == "RS256":
            pad = padding.PKCS1v15()
        else:
            return "alg %s not supported" % hdr.get("alg")
        try:
            key.verify(sig, (h64 + "." + c64).encode(), pad, hashes.SHA256())
        except InvalidSignature:
            return "signature does not verify"
        now = time.time()
        aud = "%s/%s/oauth2/v2.0/token" % (self.server.base_url, tenant)
        if claims.get("aud") != aud:
            return "aud %s, expected %s" % (claims.get("aud"), aud)
        if claims.get("iss") != o.client_id or claims.get("sub") != o.client_id:
            return "iss/sub not the client id"
        if not claims.get("jti"):
            return "no jti"
        if not isinstance(claims.get("exp"), int) or claims["exp"] < now - 300:
            return "assertion expired"
        if isinstance(claims.get("nbf"), int) and claims["nbf"] > now + 300:
            return "assertion not yet valid"
        with st.lock:
            seen = st.__dict__.setdefault("jtis", set())
            if claims["jti"] in seen:
                return "jti replayed"
            seen.add(claims["jti"])
        return None

    def batch(self, raw, roles):
        st = self.server.state
        try:
            doc = json.loads(raw)
            reqs = doc["requests"]
            assert isinstance(reqs, list)
        except (ValueError, KeyError, AssertionError, TypeError):
            raise GraphError(400, "BadRequest", "Invalid batch payload format.")
        if len(reqs) > BATCH_MAX:
            raise GraphError(400, "BadRequest", "Number of batch request steps exceeds the maximum of 20.")
        st.stats.count("batch_steps", len(reqs))
        ids = [r.get("id") for r in reqs]
        if len(set(ids)) != len(ids) or any(not isinstance(i, str) or not i for i in ids):
            raise GraphError(400, "BadRequest", "Batch request ids must be unique strings.")
        # Graph runs up to four of them at once: more than the free slots
        # of one mailbox in one batch are refused with 429 each.
        per_mb = {}
        out = []
        for r in reqs:
            url = urllib.parse.urlsplit(r.get("url", ""))
            path = "/" + url.path.lstrip("/")
            mkey = st.app_mailbox_key(path)
            if mkey is not None:
                per_mb[mkey] = per_mb.get(mkey, 0) + 1
                with st.lock:
                    busy = st.in_flight.get(mkey, 0)
                if per_mb[mkey] + busy > st.opts.concurrency:
                    st.stats.violation("batch_concurrency")
                    out.append({"id": r["id"], "status": 429,
                                "headers": {"Retry-After": str(st.opts.retry_after)},
                                "body": GraphError(429, "ApplicationThrottled",
                                                   "Application is over its MailboxConcurrency limit.").body()})
                    continue
            hdrs = {k: v for k, v in (r.get("headers") or {}).items()}
            body = json.dumps(r["body"]).encode() if r.get("body") is not None else b""
            try:
                status, obj, h = self.server.app.route(r.get("method", "GET").upper(), path, url.query,
                                                       body, hdrs, inner=True, roles=roles)
            except GraphError as e:
                status, obj, h = e.status, e.body(), e.headers
            item = {"id": r["id"], "status": status, "headers": {k: str(v) for k, v in (h or {}).items()}}
            if obj is not None:
                item["body"] = obj
            out.append(item)
        return {"responses": out}


class TokenError(GraphError):
    def __init__(self, status, error, desc):
        super().__init__(status, error, desc)
        self.oauth = {"error": error, "error_description": desc,
                      "error_codes": [int(re.search(r"AADSTS(\d+)", desc).group(1))],
                      "timestamp": iso_z(time.time()).replace("T", " ")[:-1] + "Z",
                      "trace_id": secrets.token_hex(8), "correlation_id": secrets.token_hex(8)}


class App:
    """The Graph resources, shared by direct requests and $batch steps."""

    def __init__(self, state):
        self.st = state

    def route(self, method, path, query, raw, headers, inner=False, roles=frozenset()):
        st = self.st
        q = {k: v[0] for k, v in urllib.parse.parse_qs(query, keep_blank_values=True).items()}
        hl = {k.lower(): v for k, v in headers.items()}
        m = re.fullmatch(r"/users/([^/]+)/(calendarView(?:/delta)?|calendar/calendarView(?:/delta)?|"
                         r"mailboxSettings(?:/automaticRepliesSetting)?|events)", path)
        if m:
            st.need_role(roles, "MailboxSettings.Read" if m.group(2).startswith("mailboxSettings")
                         else "Calendars.Read")
            mb = st.mailbox(m.group(1))
            with self.throttled(mb, inner):
                what = m.group(2)
                if what.endswith("delta"):
                    st.stats.request("calendarView_delta")
                    return 200, self.delta(mb, q, hl), None
                if what.endswith("calendarView"):
                    st.stats.request("calendarView")
                    return 200, self.calview(mb, q, hl, path), None
                if what.startswith("mailboxSettings"):
                    st.stats.request("automaticReplies")
                    if method != "GET":
                        raise GraphError(405, "ErrorInvalidRequest", "read only here")
                    a = self.auto(mb)
                    if what == "mailboxSettings":
                        return 200, {"timeZone": "UTC", "automaticRepliesSetting": a}, None
                    return 200, a, None
                raise GraphError(405, "ErrorInvalidRequest", "events: use calendarView")
        if path == "/subscriptions" and method == "POST":
            st.stats.request("subscription_create")
            st.need_role(roles, "Calendars.Read")
            return 201, self.sub_create(raw), None
        if path == "/subscriptions" and method == "GET":
            return 200, {"value": [self.sub_json(s) for s in list(st.subs.values())]}, None
        m = re.fullmatch(r"/subscriptions/([^/]+)", path)
        if m:
            sid = urllib.parse.unquote(m.group(1))
            st.sweep()
            with st.lock:
                s = st.subs.get(sid)
            if s is None:
                raise GraphError(404, "ResourceNotFound",
                                 "The object was not found.")
            if method == "GET":
                return 200, self.sub_json(s), None
            if method == "PATCH":
                st.stats.request("subscription_renew")
                exp = self.expiry(json.loads(raw or b"{}").get("expirationDateTime"))
                with st.lock:
                    s["expires"] = exp
                st.stats.count("subscriptions_renewed")
                return 200, self.sub_json(s), None
            if method == "DELETE":
                st.stats.request("subscription_delete")
                with st.lock:
                    st.subs.pop(sid, None)
                st.stats.count("subscriptions_deleted")
                return 204, None, None
        raise GraphError(400, "BadRequest", "Resource not found for the segment '%s'." % path)

    # ---- throttling ----
    def throttled(self, mb, inner):
        st = self.st

        class Slot:
            def __enter__(self_):
                now = time.time()
                key = mb.id
                with st.lock:
                    # Requests sent before the 429 reached the client are
                    # not breaches: allow them a short grace.
                    issued, until = st.retry_until.get(key, (0, 0))
                    if issued + RETRY_GRACE < now < until:
                        st.stats.violation("retry_after_ignored")
                    if st.throttle_next > 0:
                        st.throttle_next -= 1
                        st.stats.faults_injected += 1
                        st.retry_until[key] = (now, now + st.throttle_retry_after)
                        raise GraphError(429, "ApplicationThrottled", "Injected throttling.",
                                         {"Retry-After": st.throttle_retry_after})
                    n = st.in_flight.get(key, 0)
                    win = [t for t in st.rate.get(key, []) if t > now - st.opts.rate_window]
                    st.rate[key] = win
                    # Graph's global limit per app, over every mailbox;
                    # each step of a $batch counts.
                    while st.app_times and st.app_times[0] <= now - st.opts.app_rate_window:
                        st.app_times.popleft()
                    for broken, name, limit in (
                            (n >= st.opts.concurrency and not inner,
                             "mailbox_concurrency", "MailboxConcurrency"),
                            (len(win) >= st.opts.rate, "mailbox_rate", "MailboxRequest"),
                            (len(st.app_times) >= st.opts.app_rate, "app_rate",
                             "ApplicationRequest")):
                        if broken:
                            st.stats.violation(name)
                            st.retry_until[key] = (now, now + st.opts.retry_after)
                            raise GraphError(429, "ApplicationThrottled",
                                             "Application is over its %s limit." % limit,
                                             {"Retry-After": st.opts.retry_after})
                    st.app_times.append(now)
                    win.append(now)
                    st.rate[key] = win
                    st.in_flight[key] = n + 1
                    if n + 1 > st.stats.max_in_flight.get(mb.upn, 0):
                        st.stats.max_in_flight[mb.upn] = n + 1
                if st.opts.latency_ms:
                    time.sleep(st.opts.latency_ms / 1000.0)
                return self_

            def __exit__(self_, *exc):
                with st.lock:
                    st.in_flight[mb.id] -= 1
                return False
        return Slot()

    # ---- calendar ----
    def window(self, q):
        try:
            return parse_time(q["startDateTime"]), parse_time(q["endDateTime"])
        except (KeyError, ValueError):
            raise GraphError(400, "ErrorInvalidParameter",
                             "This request requires a time window specified by the query string "
                             "parameters StartDateTime and EndDateTime.")

    def in_window(self, ev, s, e):
        return ev["start"] < e and ev["end"] > s

    def utc(self, hl):
        return 'outlook.timezone="UTC"' in hl.get("prefer", "").replace(" ", "")

    def page_size(self, q, hl):
        m = re.search(r"odata\.maxpagesize=(\d+)", hl.get("prefer", ""))
        n = int(q.get("$top") or (m.group(1) if m else DEFAULT_PAGE))
        return max(1, min(n, 1000))

    def calview(self, mb, q, hl, path):
        st = self.st
        if "$skiptoken" in q:
            try:
                s, e, skip, n, utc = json.loads(b64url_decode(q["$skiptoken"]))
            except (ValueError, TypeError):
                raise GraphError(400, "BadRequest", "bad skiptoken")
        else:
            (s, e), skip, n, utc = self.window(q), 0, self.page_size(q, hl), self.utc(hl)
        with st.lock:
            evs = sorted((ev for ev in mb.events.values() if self.in_window(ev, s, e)),
                         key=lambda x: (x["start"], x["id"]))
            page = [st.event_json(ev, utc) for ev in evs[skip:skip + n]]
        out = {"@odata.context": "%s/v1.0/$metadata#users('%s')/calendarView" % (self.base(), mb.id),
               "value": page}
        if skip + n < len(evs):
            tok = base64.urlsafe_b64encode(json.dumps([s, e, skip + n, n, utc]).encode()).decode().rstrip("=")
            out["@odata.nextLink"] = "%s/v1.0%s?$skiptoken=%s" % (self.base(), path, tok)
        return out

    def delta(self, mb, q, hl):
        """Full sync in pages (nextLink), then a deltaLink; later rounds return the
        events changed since, and @removed for those gone from the window."""
        st = self.st
        if "$deltatoken" in q or "$skiptoken" in q:
            tokname = "$deltatoken" if "$deltatoken" in q else "$skiptoken"
            try:
                mid, s, e, since, skip, n, utc = json.loads(b64url_decode(q[tokname]))
            except (ValueError, TypeError):
                raise GraphError(410, "SyncStateNotFound", "The sync state generation is not found.")
            if mid != mb.id or (tokname == "$deltatoken" and since > mb.seq):
                raise GraphError(410, "SyncStateNotFound", "The sync state generation is not found.")
            if tokname == "$deltatoken":
                skip = 0
                st.stats.count("delta_incremental")
        else:
            (s, e), since, skip = self.window(q), 0, 0
            n, utc = self.page_size({}, hl), self.utc(hl)
            st.stats.count("delta_full")
        with st.lock:
            if since == 0:
                rows = [("ev", ev) for ev in sorted(mb.events.values(), key=lambda x: x["id"])
                        if self.in_window(ev, s, e)]
            else:
                changed = []
                for seq, eid in mb.log:
                    if seq > since and eid not in changed:
                        changed.append(eid)
                rows = []
                for eid in changed:
                    ev = mb.events.get(eid)
                    if ev is not None and self.in_window(ev, s, e):
                        rows.append(("ev", ev))
                    else:
                        rows.append(("rm", eid))
            page = []
            for kind, x in rows[skip:skip + n]:
                if kind == "ev":
                    j = st.event_json(x, utc)
                    j["@odata.type"] = "#microsoft.graph.event"
                    page.append(j)
                else:
                    page.append({"@odata.type": "#microsoft.graph.event", "id": x,
                                 "@removed": {"reason": "deleted"}})
            now_seq = mb.seq
        out = {"@odata.context": "%s/v1.0/$metadata#Collection(event)" % self.base(), "value": page}
        base = "%s/v1.0/users/%s/calendarView/delta" % (self.base(), mb.id)
        if skip + n < len(rows):
            tok = [mb.id, s, e, since, skip + n, n, utc]
            out["@odata.nextLink"] = base + "?$skiptoken=" + \
                base64.urlsafe_b64encode(json.dumps(tok).encode()).decode().rstrip("=")
        else:
            tok = [mb.id, s, e, now_seq, 0, n, utc]
            out["@odata.deltaLink"] = base + "?$deltatoken=" + \
                base64.urlsafe_b64encode(json.dumps(tok).encode()).decode().rstrip("=")
        return out

    def auto(self, mb):
        a = dict(mb.auto)
        for k in ("scheduledStartDateTime", "scheduledEndDateTime"):
            t = a[k] if a[k] is not None else time.time()
            a[k] = {"dateTime": iso(t), "timeZone": "UTC"}
        return a

    def base(self):
        return self.st.base_url

    # ---- subscriptions ----
    def expiry(self, s):
        st = self.st
        try:
            exp = parse_time(s)
        except (TypeError, ValueError, AttributeError):
            raise GraphError(400, "InvalidRequest", "expirationDateTime is required.")
        now = time.time()
        if exp <= now:
            raise GraphError(400, "InvalidRequest", "Subscription expiration can only be in the future.")
        if exp > now + st.opts.sub_max_minutes * 60 + 60:
            raise GraphError(400, "InvalidRequest",
                             "Subscription expiration can only be %d minutes in the future."
                             % st.opts.sub_max_minutes)
        return exp

    def sub_json(self, s):
        return {"@odata.context": "%s/v1.0/$metadata#subscriptions/$entity" % self.base(),
                "id": s["id"], "resource": s["resource"], "applicationId": self.st.opts.client_id,
                "changeType": s["changeType"], "clientState": s["clientState"],
                "notificationUrl": s["notificationUrl"],
                "lifecycleNotificationUrl": s.get("lifecycleNotificationUrl"),
                "expirationDateTime": iso_z(s["expires"]), "creatorId": self.st.opts.client_id,
                "latestSupportedTlsVersion": "v1_2", "notificationContentType": "application/json"}

    def sub_create(self, raw):
        st = self.st
        try:
            b = json.loads(raw)
            assert isinstance(b, dict)
        except (ValueError, AssertionError):
            raise GraphError(400, "BadRequest", "Invalid request body.")
        for k in ("changeType", "notificationUrl", "resource", "expirationDateTime"):
            if not isinstance(b.get(k), str) or not b[k]:
                raise GraphError(400, "InvalidRequest", "%s is required." % k)
        ct = b["changeType"].split(",")
        if any(c not in ("created", "updated", "deleted") for c in ct):
            raise GraphError(400, "InvalidRequest", "Invalid changeType.")
        cs = b.get("clientState")
        if cs is not None and (not isinstance(cs, str) or len(cs) > CLIENT_STATE_MAX):
            raise GraphError(400, "InvalidRequest", "clientState too long.")
        for k in ("notificationUrl", "lifecycleNotificationUrl"):
            u = b.get(k)
            if u is not None and not (u.startswith("https://") or
                                      (st.opts.allow_http_notify and u.startswith("http://"))):
                raise GraphError(400, "InvalidRequest", "%s must be https." % k)
        m = re.fullmatch(r"/?users/([^/]+)/events", b["resource"], re.I)
        if not m:
            raise GraphError(400, "InvalidRequest", "Unsupported resource %s." % b["resource"])
        mb = st.mailbox(m.group(1))
        exp = self.expiry(b["expirationDateTime"])
        st.validate_url(b["notificationUrl"])
        lc = b.get("lifecycleNotificationUrl")
        if lc and lc != b["notificationUrl"]:
            st.validate_url(lc)
        s = {"id": "%08x-%04x-4%03x-8%03x-%012x" % (next(st.ids), 0, 0, 0, int(time.time())),
             "resource": b["resource"], "changeType": b["changeType"], "clientState": cs or "",
             "notificationUrl": b["notificationUrl"], "lifecycleNotificationUrl": lc,
             "expires": exp, "mailbox": mb}
        with st.lock:
            st.subs[s["id"]] = s
        st.stats.count("subscriptions_created")
        return self.sub_json(s)


def _app_mailbox_key(state, path):
    m = re.match(r"/users/([^/]+)/", path)
    if not m:
        return None
    mb = state.mailboxes.get(urllib.parse.unquote(m.group(1)).lower())
    return mb.id if mb else None


State.app_mailbox_key = _app_mailbox_key


class ControlHandler(Handler):
    def dispatch(self, method):
        st = self.server.state
        try:
            raw = self.body()
            b = json.loads(raw) if raw else {}
            p = urllib.parse.urlsplit(self.path).path
            if p == "/stats" and method == "GET":
                snap = st.stats.snapshot()
                with st.lock:
                    snap["subscriptions"] = len(st.subs)
                return self.reply(200, snap)
            if p == "/stats/reset" and method == "POST":
                st.stats.reset()
                return self.reply(200, {})
            if p == "/mailboxes" and method == "POST":
                mb = st.add_mailbox(b["upn"], b.get("id"))
                return self.reply(201, {"id": mb.id, "upn": mb.upn})
            m = re.fullmatch(r"/mailboxes/([^/]+)/events(?:/([^/]+))?", p)
            if m:
                mb = st.mailboxes.get(urllib.parse.unquote(m.group(1)).lower())
                if mb is None:
                    raise GraphError(404, "NotFound", "no such mailbox")
                eid = urllib.parse.unquote(m.group(2)) if m.group(2) else None
                if method == "POST" and eid is None:
                    return self.reply(201, st.event_json(st.put_event(mb, b)))
                if method == "PATCH" and eid and eid in mb.events:
                    return self.reply(200, st.event_json(st.put_event(mb, b, eid)))
                if method == "DELETE" and eid:
                    st.delete_event(mb, eid)
                    return self.reply(200, {})
                if method == "GET":
                    return self.reply(200, {"value": [st.event_json(e) for e in mb.events.values()]})
                raise GraphError(404, "NotFound", "no such event")
            m = re.fullmatch(r"/mailboxes/([^/]+)/location", p)
            if m and method == "PUT":
                mb = st.mailboxes.get(urllib.parse.unquote(m.group(1)).lower())
                if mb is None or not isinstance(b.get("on_premises"), bool):
                    raise GraphError(400, "BadRequest", "mailbox or on_premises")
                with st.lock:
                    mb.on_premises = b["on_premises"]
                return self.reply(200, {"upn": mb.upn, "on_premises": mb.on_premises})
            m = re.fullmatch(r"/mailboxes/([^/]+)/automaticReplies", p)
            if m and method == "PUT":
                mb = st.mailboxes.get(urllib.parse.unquote(m.group(1)).lower())
                if mb is None or b.get("status") not in ("disabled", "alwaysEnabled", "scheduled"):
                    raise GraphError(400, "BadRequest", "mailbox or status")
                with st.lock:
                    mb.auto["status"] = b["status"]
                    for k, src in (("scheduledStartDateTime", "start"), ("scheduledEndDateTime", "end")):
                        mb.auto[k] = parse_time(b[src]) if b.get(src) is not None else None
                return self.reply(200, st.server_app.auto(mb))
            m = re.fullmatch(r"/subscriptions/([^/]+)/lifecycle", p)
            if m and method == "POST":
                st.lifecycle(urllib.parse.unquote(m.group(1)), b["event"])
                return self.reply(200, {})
            m = re.fullmatch(r"/subscriptions/([^/]+)/expire", p)
            if m and method == "POST":
                with st.lock:
                    s = st.subs.get(urllib.parse.unquote(m.group(1)))
                    if s:
                        s["expires"] = time.time() - 1
                st.sweep()
                return self.reply(200, {})
            if p == "/subscriptions" and method == "GET":
                with st.lock:
                    subs = [dict(st.server_app.sub_json(s), mailbox=s["mailbox"].upn)
                            for s in st.subs.values()]
                return self.reply(200, {"value": subs})
            if p == "/faults" and method == "POST":
                with st.lock:
                    st.throttle_next = int(b.get("throttle", 0))
                    st.throttle_retry_after = int(b.get("retry_after", 2))
                return self.reply(200, {})
            if p == "/policy" and method == "PUT":
                # Permissions granted to the app (for tokens issued from
                # now on, as in Entra ID) and the application access
                # policy (a list of mailboxes, or null for none).
                with st.lock:
                    if "roles" in b:
                        st.roles = frozenset(b["roles"])
                    if "allow" in b:
                        st.set_policy(b["allow"])
                    if b.get("revoke"):
                        st.tokens.clear()
                return self.reply(200, {})
            if p == "/tokens/revoke" and method == "POST":
                with st.lock:
                    st.tokens.clear()
                return self.reply(200, {})
            raise GraphError(404, "NotFound", "no such control path")
        except GraphError as e:
            self.reply(e.status, e.body())
        except (KeyError, ValueError, TypeError) as e:
            self.reply(400, {"error": {"code": "BadRequest", "message": str(e)}})


class Server(socketserver.ThreadingMixIn, http.server.HTTPServer):
    daemon_threads = True
    allow_reuse_address = True
    request_queue_size = 128


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--listen", default="127.0.0.1:0")
    ap.add_argument("--control", default="127.0.0.1:0")
    ap.add_argument("--ready-file")
    ap.add_argument("--tenant", default="contoso-tenant")
    ap.add_argument("--client-id", default="11111111-2222-3333-4444-555555555555")
    ap.add_argument("--client-secret", default="graph-secret")
    ap.add_argument("--client-cert", default="", help="PEM certificate(s) registered for assertions")
    ap.add_argument("--token-lifetime", type=int, default=3599)
    ap.add_argument("--mailboxes", default="adele@contoso.com,alex@contoso.com",
                    help="comma list of UPNs")
    ap.add_argument("--generate", type=int, default=0, help="N more mailboxes user%%06d@contoso.com")
    ap.add_argument("--allow", default="", help="application access policy: comma list of "
                    "mailboxes the app may reach (empty: all)")
    ap.add_argument("--roles", default="Calendars.Read,MailboxSettings.Read",
                    help="application permissions granted (with admin consent), comma list")
    ap.add_argument("--concurrency", type=int, default=4)
    ap.add_argument("--rate", type=int, default=10000, help="requests per mailbox per window")
    ap.add_argument("--rate-window", type=float, default=600.0, help="seconds")
    ap.add_argument("--app-rate", type=int, default=130000,
                    help="requests per app (all mailboxes) per app window")
    ap.add_argument("--app-rate-window", type=float, default=10.0, help="seconds")
    ap.add_argument("--retry-after", type=int, default=2, help="Retry-After seconds on 429")
    ap.add_argument("--latency-ms", type=int, default=0)
    ap.add_argument("--sub-max-minutes", type=float, default=4230)
    ap.add_argument("--notify-timeout", type=float, default=10.0)
    ap.add_argument("--notify-ca", help="CA file for https notification URLs")
    ap.add_argument("--allow-http-notify", action="store_true",
                    help="accept http:// notification URLs (Graph demands https)")
    ap.add_argument("--tls-cert")
    ap.add_argument("--tls-key")
    ap.add_argument("-v", action="store_true")
    o = ap.parse_args(argv)
    logging.basicConfig(level=logging.DEBUG if o.v else logging.INFO, stream=sys.stderr,
                        format="graphsim: %(message)s")
    st = State(o)
    for upn in [u for u in o.mailboxes.split(",") if u]:
        st.add_mailbox(upn)
    for i in range(o.generate):
        st.add_mailbox("user%06d@contoso.com" % (i + 1))

    def bind(spec, handler):
        host, _, port = spec.rpartition(":")
        if host not in ("127.0.0.1", "localhost", "::1", "[::1]"):
            ap.error("loopback only: %s" % spec)
        srv = Server((host.strip("[]"), int(port)), handler)
        srv.state = st
        return srv

    g = bind(o.listen, GraphHandler)
    scheme = "http"
    if o.tls_cert:
        ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        ctx.minimum_version = ssl.TLSVersion.TLSv1_2
        ctx.load_cert_chain(o.tls_cert, o.tls_key)
        g.socket = ctx.wrap_socket(g.socket, server_side=True)
        scheme = "https"
    c = bind(o.control, ControlHandler)
    st.base_url = "%s://127.0.0.1:%d" % (scheme, g.server_address[1])
    g.base_url = st.base_url
    g.app = App(st)
    st.server_app = g.app
    for srv in (g, c):
        threading.Thread(target=srv.serve_forever, daemon=True).start()

    def sweeper():
        while True:
            time.sleep(1.0)
            st.sweep()
    threading.Thread(target=sweeper, daemon=True).start()
    info = {"graph_url": st.base_url + "/v1.0",
            "token_url": "%s/%s/oauth2/v2.0/token" % (st.base_url, o.tenant),
            "control_url": "http://127.0.0.1:%d" % c.server_address[1],
            "tenant": o.tenant, "client_id": o.client_id, "pid": os.getpid(),
            "mailboxes": [{"upn": mb.upn, "id": mb.id} for k, mb in st.mailboxes.items()
                          if k == mb.upn.lower()]}
    if o.ready_file:
        tmp = o.ready_file + ".tmp"
        with open(tmp, "w", encoding="utf-8") as fh:
            json.dump(info, fh)
        os.rename(tmp, o.ready_file)
    log.info("listening on %s, control %s", st.base_url, info["control_url"])
    done = threading.Event()
    signal.signal(signal.SIGTERM, lambda *a: done.set())
    signal.signal(signal.SIGINT, lambda *a: done.set())
    done.wait()
    g.shutdown()
    c.shutdown()
    return 0


if __name__ == "__main__":
    sys.exit(main())
