"""The simulator object: configuration, rendering, fault-aware writing, startup."""
import asyncio
import json
import logging
import os
import random
import signal
import ssl
import time
import zlib

from . import autodiscover, control, ews, soap
from .directory import Directory
from .faults import Faults
from .http import Response, Server
from .notify import Notifier
from .stats import Stats
from .stream import StreamManager
from .throttle import Throttle

log = logging.getLogger("ewssim")

VERSIONS = {
    # name: (ServerVersionInfo attributes, max request rank, default charging,
    #        max_concurrency, hanging_connection_limit, max_subscriptions)
    "Exchange2007_SP1": ({"MajorVersion": "8", "MinorVersion": "3", "MajorBuildNumber": "83",
                          "MinorBuildNumber": "6"}, 1, "service-account", 10, 10, 5000),
    "Exchange2010": ({"MajorVersion": "14", "MinorVersion": "0", "MajorBuildNumber": "639",
                      "MinorBuildNumber": "21", "Version": "Exchange2010"}, 3, "service-account", 10, 10, 5000),
    "Exchange2010_SP1": ({"MajorVersion": "14", "MinorVersion": "1", "MajorBuildNumber": "438",
                          "MinorBuildNumber": "0", "Version": "Exchange2010_SP1"}, 4, "service-account", 10, 10, 5000),
    "Exchange2010_SP2": ({"MajorVersion": "14", "MinorVersion": "3", "MajorBuildNumber": "123",
                          "MinorBuildNumber": "4", "Version": "Exchange2010_SP2"}, 5, "impersonated", 10, 10, 5000),
    "Exchange2013": ({"MajorVersion": "15", "MinorVersion": "0", "MajorBuildNumber": "1497",
                      "MinorBuildNumber": "2", "Version": "V2_23"}, 7, "impersonated", 27, 3, 5000),
    "Exchange2016": ({"MajorVersion": "15", "MinorVersion": "1", "MajorBuildNumber": "2507",
                      "MinorBuildNumber": "6", "Version": "V2017_07_11"}, 17, "impersonated", 27, 10, 5000),
    "Online": ({"MajorVersion": "15", "MinorVersion": "20", "MajorBuildNumber": "6792",
                "MinorBuildNumber": "20", "Version": "V2018_01_08"}, 99, "impersonated", 27, 10, 20),
}
REQUEST_RANK = {"Exchange2007": 0, "Exchange2007_SP1": 1, "Exchange2009": 2, "Exchange2010": 3,
                "Exchange2010_SP1": 4, "Exchange2010_SP2": 5, "Exchange2012": 6, "Exchange2013": 6,
                "Exchange2013_SP1": 7, "Exchange2015": 8, "Exchange2016": 8, "V2015_10_05": 9,
                "V2016_01_06": 10, "V2016_04_13": 11, "V2016_07_13": 12, "V2016_10_10": 13,
                "V2017_01_07": 14, "V2017_04_14": 15, "V2017_07_11": 16}
RUNTIME_KEYS = {"max_concurrency": int, "max_subscriptions": int, "hanging_connection_limit": int,
                "find_count_limit": int, "charging": str, "heartbeat_s": float, "backoff_ms": int,
                "latency_ms": int, "minute_seconds": float, "push_timeout_s": float,
                "ntlm_v2_only": bool, "auth": list, "strict_affinity": bool,
                "affinity_rules": bool, "profiles": list}
# Server profiles (--profile, /config "profiles"):
#   realserver       what a real, non-Exchange EWS server sends: other prefixes, no XML
#                    declaration (on a stream: only before the first envelope), text/xml
#                    without charset, no watermarks, a status envelope at a fixed cadence
#                    and none in between, a notification for every subscription of the
#                    stream in every envelope, Closed twice, nine fractional digits,
#                    duplicate StartTimeZone/EndTimeZone, Detailed free/busy without
#                    MergedFreeBusy
#   refuse-grouping  a subscription is accepted only on a stream opened by its owner (the
#                    impersonated mailbox, or the account for delegate subscriptions);
#                    delegate subscriptions are allowed to accounts with "delegate" rights
PROFILES = ("realserver", "refuse-grouping")


AUTH_SCHEMES = ("ntlm", "negotiate", "basic")


class Config:
    def __init__(self, args):
        self.version = args.version
        info = VERSIONS[self.version]
        self.version_attrs = info[0]
        self.charging = args.charging or info[2]
        self.max_concurrency = args.max_concurrency if args.max_concurrency is not None else info[3]
        self.hanging_connection_limit = (args.hanging_connection_limit
                                         if args.hanging_connection_limit is not None else info[4])
        self.max_subscriptions = args.max_subscriptions if args.max_subscriptions is not None else info[5]
        self.find_count_limit = args.find_count_limit
        self.minute_seconds = args.minute_seconds
        self.heartbeat_s = args.heartbeat_seconds
        self.backoff_ms = args.backoff_ms
        self.latency_ms = args.latency_ms
        self.auth = [a.strip().lower() for a in args.auth.split(",") if a.strip()]
        bad = [a for a in self.auth if a not in AUTH_SCHEMES]
        if bad or not self.auth:
            raise SystemExit("ewssim: --auth takes a comma list of ntlm, negotiate, basic")
        self.ntlm_v2_only = args.ntlm_v2_only
        self.realm = args.realm
        self.push_timeout_s = args.push_timeout
        self.backends = args.backends
        self.strict_affinity = args.strict_affinity
        self.affinity_rules = args.affinity_rules
        self.profiles = [x.strip() for x in args.profile.split(",") if x.strip()]
        if any(x not in PROFILES for x in self.profiles):
            raise SystemExit("ewssim: --profile takes a comma list of %s" % ", ".join(PROFILES))

    def profile(self, name):
        return name in self.profiles

    def server_rank(self):
        return VERSIONS[self.version][1]

    @staticmethod
    def version_rank(name):
        return REQUEST_RANK.get(name, 99)

    def request_version_name(self):
        return {"Exchange2007_SP1": "Exchange2007_SP1", "Exchange2010": "Exchange2010",
                "Exchange2010_SP1": "Exchange2010_SP1", "Exchange2010_SP2": "Exchange2010_SP2"}.get(
                    self.version, "Exchange2013_SP1")

    def to_json(self):
        return {"version": self.version, "charging": self.charging,
                "max_concurrency": self.max_concurrency,
                "hanging_connection_limit": self.hanging_connection_limit,
                "max_subscriptions": self.max_subscriptions, "find_count_limit": self.find_count_limit,
                "minute_seconds": self.minute_seconds, "heartbeat_s": self.heartbeat_s,
                "backoff_ms": self.backoff_ms, "latency_ms": self.latency_ms, "auth": self.auth,
                "ntlm_v2_only": self.ntlm_v2_only, "push_timeout_s": self.push_timeout_s,
                "strict_affinity": self.strict_affinity, "affinity_rules": self.affinity_rules,
                "profiles": list(self.profiles), "backends": self.backends}

    def update(self, changes):
        if not isinstance(changes, dict):
            raise ValueError("config must be a JSON object")
        for k, v in changes.items():
            if k not in RUNTIME_KEYS:
                raise ValueError("unknown or read-only config key %s" % k)
            typ = RUNTIME_KEYS[k]
            if typ is float and isinstance(v, int) and not isinstance(v, bool):
                v = float(v)
            if not isinstance(v, typ) or (typ is int and isinstance(v, bool)):
                raise ValueError("%s must be %s" % (k, typ.__name__))
            if k == "charging" and v not in ("service-account", "impersonated"):
                raise ValueError("charging must be service-account or impersonated")
            if k == "auth" and (not v or any(a not in AUTH_SCHEMES for a in v)):
                raise ValueError("auth must be a non-empty list of basic/ntlm/negotiate")
            if k == "profiles" and any(x not in PROFILES for x in v):
                raise ValueError("profiles must be a list of %s" % ", ".join(PROFILES))
            if typ in (int, float) and v < 0:
                raise ValueError("%s must not be negative" % k)
        for k, v in changes.items():
            setattr(self, k, float(v) if RUNTIME_KEYS[k] is float else v)


class Sim:
    def __init__(self, args):
        self.args = args
        self.config = Config(args)
        self.started = time.time()
        self.directory = Directory(self.started, self.backend_of)
        if args.directory:
            self.directory.load_file(args.directory)
        if args.generate:
            user, _, pw = args.generate_account.partition(":")
            self.directory.generate(args.generate, args.generate_meetings, user, pw or "Passw0rd!")
        self.stats = Stats()
        self.faults = Faults(args.seed, on_hit=self.stats.fault)
        self.rng = random.Random(args.seed)
        self.throttle = Throttle(self.config, self.stats)
        self.notifier = Notifier(self)
        self.streams = StreamManager(self)
        self.schema = None
        self.schema_dir = None
        if not args.no_schema:
            from .schema import Schema, find_schema_dir
            self.schema_dir = find_schema_dir(args.schema_dir)
            if self.schema_dir:
                self.schema = Schema(self.schema_dir)
            elif args.schema_dir:
                raise SystemExit("ewssim: no ews-messages-wrapper.xsd under %s" % args.schema_dir)
        self.ews_server = Server(self.handle_ews, name="ews", max_body=args.max_body)
        self.control_server = Server(self.handle_control, name="control", max_body=args.max_body)
        self.stop_event = None
        self.tls = bool(args.tls_cert)
        self.ews_url = None

    # ------------------------------------------------------------ helpers
    def rng_bytes(self, n):
        return os.urandom(n)

    def route(self, cookie, prefer_affinity, anchor, fallback):
        """Mailbox server a request reaches: the cookie's backend when the client asks
        for server affinity, else the server of X-AnchorMailbox, else of the
        impersonated mailbox (or the caller)."""
        b = self.cookie_backend(cookie) if prefer_affinity else None
        if b is not None:
            return b
        addr = (anchor or fallback or "").lower()
        mb = self.directory.by_smtp_address(addr) if "@" in addr else None
        return self.home(mb) if mb is not None else self.hash_backend(addr)

    def public_ews_url(self):
        """The EWS URL Autodiscover hands out (ExternalEwsUrl, InternalEwsUrl)."""
        return self.ews_url or "https://mail.sim.example.local/EWS/Exchange.asmx"

    # ------------------------------------------------------------ mailbox servers
    @staticmethod
    def backend_name(n):
        """Backend n (1-based) -> its FQDN."""
        return "MBX%02d.sim.example.local" % n

    def hash_backend(self, addr):
        return self.backend_name(zlib.crc32(addr.lower().encode()) % max(1, self.config.backends) + 1)

    def backend_of(self, value):
        """A backend given as 1-based number or name -> FQDN (ValueError if unknown)."""
        if isinstance(value, bool):
            raise ValueError("server must be a backend number or name")
        if isinstance(value, int):
            n = value
        else:
            v = str(value)
            n = int(v[3:5]) if v.upper().startswith("MBX") and v[3:5].isdigit() else \
                (int(v) if v.isdigit() else 0)
        if not 1 <= n <= self.config.backends:
            raise ValueError("no backend %r (1..%d)" % (value, self.config.backends))
        return self.backend_name(n)

    @staticmethod
    def backend_grouping(backend):
        """GroupingInformation of the mailboxes on a backend (one database
        availability group per server in the simulator)."""
        return "SIMDAG%s" % backend[3:5]

    def settle_move(self, mb):
        """Finish a mailbox move whose time is up; -> the move still running or None."""
        mv = mb.move
        if mv is None:
            return None
        if time.monotonic() < mv["until"]:
            return mv
        mb.server = mv["to"]
        mb.grouping = mv["grouping"]
        mb.move = None
        self.stats.moves["completed"] += 1
        return None

    def home(self, mb):
        """The backend (Mailbox server) holding a mailbox."""
        self.settle_move(mb)
        return mb.server or self.hash_backend(mb.smtp)

    def grouping(self, mb):
        """The mailbox's GroupingInformation."""
        self.settle_move(mb)
        return mb.grouping or self.backend_grouping(self.home(mb))

    def moving_code(self, mb):
        """ErrorMailboxMoveInProgress (or the move's code) while the mailbox moves."""
        if mb is None:
            return None
        mv = self.settle_move(mb)
        if mv is None:
            return None
        self.stats.moves["refused"] += 1
        return mv["code"]

    def migrate_online(self, mb, tenant=True):
        """Move a mailbox to Exchange Online (a hybrid move request completed): on
        premises it becomes a mail user, its subscriptions end, Autodiscover
        redirects it to its target address and EWS has no mailbox for it."""
        self.directory.set_online(mb, tenant)
        lost = []
        for sid in list(self.notifier.by_mailbox.get(mb.smtp, ())):
            sub = self.notifier.subs.get(sid)
            if sub is not None:
                lost.append(sid)
                self.notifier.remove(sub, "mailbox moved to Exchange Online",
                                     notify_stream_code="ErrorSubscriptionNotFound", why="lost")
        self.stats.exchange_online["migrated"] += 1
        self.stats.exchange_online["subscriptions_lost"] += len(lost)
        return {"target_address": mb.online, "lost": lost}

    def migrate_on_premises(self, mb):
        """Move a mailbox from Exchange Online back on premises (an offboarding
        move request completed): a mailbox on its server again, Autodiscover
        answers with its settings and EWS serves it."""
        if mb.online is None:
            raise ValueError("mailbox %s is not in Exchange Online" % mb.smtp)
        mb.online = None
        self.stats.exchange_online["returned"] += 1
        return {"server": self.home(mb), "grouping": self.grouping(mb)}

    def start_move(self, mb, spec):
        """Move a mailbox: its subscriptions are lost now, requests for it are refused
        for duration_s, then it lives on another backend with new GroupingInformation."""
        if not isinstance(spec, dict):
            raise ValueError("move must be a JSON object")
        cur = self.home(mb)
        if spec.get("to") is not None:
            to = self.backend_of(spec["to"])
        else:
            to = self.backend_name(int(cur[3:5]) % max(1, self.config.backends) + 1)
        code = spec.get("code", "ErrorMailboxMoveInProgress")
        if code not in ("ErrorMailboxMoveInProgress", "ErrorMailboxStoreUnavailable"):
            raise ValueError("code must be ErrorMailboxMoveInProgress or ErrorMailboxStoreUnavailable")
        dur = spec.get("duration_s", 2)
        if isinstance(dur, bool) or not isinstance(dur, (int, float)) or dur < 0:
            raise ValueError("duration_s must be a non-negative number")
        grouping = spec.get("grouping", self.backend_grouping(to))
        if not isinstance(grouping, str) or not grouping:
            raise ValueError("grouping must be a non-empty string")
        # null: the streams are not told (the subscriptions just end)
        stream_code = spec.get("stream_code", "ErrorSubscriptionNotFound")
        if stream_code is not None and (not isinstance(stream_code, str) or not stream_code):
            raise ValueError("stream_code must be a response code or null")
        lost = []
        for sid in list(self.notifier.by_mailbox.get(mb.smtp, ())):
            sub = self.notifier.subs.get(sid)
            if sub is not None:
                lost.append(sid)
                self.notifier.remove(sub, "mailbox moved", notify_stream_code=stream_code,
                                     why="lost")
        mb.move = {"until": time.monotonic() + float(dur), "to": to, "grouping": grouping,
                   "code": code, "from": cur}
        self.stats.moves["started"] += 1
        self.stats.moves["subscriptions_lost"] += len(lost)
        self.settle_move(mb)
        return {"from": cur, "to": to, "grouping": grouping, "lost": lost,
                "duration_s": float(dur)}

    @staticmethod
    def cookie_value(backend):
        return "%s~%d" % (backend, zlib.crc32(backend.encode()) & 0x7FFFFFFF)

    @staticmethod
    def cookie_backend(cookie):
        if not cookie or "~" not in cookie:
            return None
        return cookie.split("~", 1)[0]

    @staticmethod
    def request_cookie(req):
        c = req.cookies().get("X-BackEndOverrideCookie")
        return c or req.header("x-backendoverridecookie")

    def _style(self):
        f = self.faults.peek("prefix_style")
        if f is not None:
            return f.spec.get("style", "s")
        # a realserver writes its own prefixes (ns1:, SOAP-ENV:, ...), never s:/soap:
        return "other" if self.config.profile("realserver") else "s"

    def _decorate(self, env):
        f = self.faults.peek("extra_elements")
        if f is not None:
            soap.sprinkle_unknown(env, self.rng, f.probability)
        return env

    def render(self, env):
        return soap.serialize(self._decorate(env), self._style(), self.rng)

    def render_stream_envelope(self, body_el, account):
        env = soap.envelope(body_el, self.config.version_attrs)
        data = self.render(env)
        if self.faults.take("malformed_xml", "GetStreamingEvents", account) is not None:
            data = _break_xml(data)
        return data

    def declaration(self):
        """The XML declaration unary answers start with (none from a realserver)."""
        return b"" if self.config.profile("realserver") else b'<?xml version="1.0" encoding="utf-8"?>'

    def content_type(self):
        return "text/xml" if self.config.profile("realserver") else "text/xml; charset=utf-8"

    def soap_response(self, body_el, status=200, op=None, account=None, extra_headers=(), header_extra=None):
        env = soap.envelope(body_el, self.config.version_attrs, header_extra=header_extra)
        data = self.declaration() + self.render(env)
        return self._finish(data, status, op, account, list(extra_headers))

    def fault_response(self, code, message, message_xml, status, op, account):
        env = soap.fault(code, message, self.config.version_attrs, message_xml)
        data = self.declaration() + soap.serialize_fault(env, self._style(), self.rng)
        return self._finish(data, status, op, account and account.username, [])

    def _finish(self, data, status, op, account, headers):
        headers.append(("Content-Type", self.content_type()))
        headers.append(("request-id", "%08x-sim" % self.rng.getrandbits(32)))
        if self.faults.take("malformed_xml", op, account) is not None:
            data = _break_xml(data)
        resp = Response(status, data, headers)
        trunc = self.faults.take("truncated_chunks", op, account)
        split = self.faults.peek("chunk_split", op, account)
        if trunc is None and split is None:
            return resp
        return _SpecialResponse(self, resp, trunc is not None, split)

    async def write_stream(self, sc, data):
        """Write one streaming envelope, applying stream faults."""
        conn = sc.conn
        acct = sc.account
        if self.faults.take("drop_streams", "GetStreamingEvents", acct) is not None:
            cut = max(1, len(data) // 2)
            await conn.write_chunk(data[:cut])
            sc.aborted = True
            conn.abort()
            raise ConnectionError("stream dropped by fault")
        if self.faults.take("truncated_chunks", "GetStreamingEvents", acct) is not None:
            conn.writer.write(b"%x\r\n" % len(data) + data[:len(data) // 2])
            await conn.writer.drain()
            sc.aborted = True
            conn.abort()
            raise ConnectionError("chunk truncated by fault")
        split = self.faults.peek("chunk_split", "GetStreamingEvents", acct)
        if split is None:
            await conn.write_chunk(data)
            return
        for piece in _pieces(self.rng, data, split):
            await conn.write_chunk(piece)
            d = split.spec.get("delay_ms", 0)
            if d:
                await asyncio.sleep(d / 1000.0)

    def drop_streams_now(self, count=None):
        n = 0
        for sc in list(self.streams.conns):
            if count is not None and n >= count:
                break
            try:
                # half an envelope, then the TCP connection is cut
                env = soap.envelope(ews.wrap("GetStreamingEvents", [ews.rm(
                    "GetStreamingEventsResponseMessage", kids=[soap.m("ConnectionStatus", text="OK")])]),
                    self.config.version_attrs)
                data = self.render(env)
                data = data[:len(data) // 2]
                sc.conn.writer.write(b"%x\r\n%s\r\n" % (len(data), data))
            except Exception:  # noqa: BLE001
                pass
            sc.abort()
            n += 1
        return n

    def restart(self):
        """Like an IIS application pool recycle: subscriptions lost, connections cut."""
        self.notifier.restart()
        for c in list(self.ews_server.connections):
            c.abort()
        self.throttle.backoff_until.clear()

    # ------------------------------------------------------------ HTTP entry points
    async def handle_ews(self, req):
        try:
            if req.path.lower() == autodiscover.PATH:
                return await autodiscover.handle(self, req)
            return await ews.handle(self, req)
        except (ConnectionError, OSError):
            req.conn.must_close = True
            return None
        except asyncio.CancelledError:
            raise
        except Exception:  # noqa: BLE001 - hostile input must not crash the simulator
            log.exception("internal error")
            self.stats.count("(internal)", 500)
            return Response(500, b"internal simulator error", [("Content-Type", "text/plain")],
                            close=True)

    async def handle_control(self, req):
        try:
            return await control.handle(self, req)
        except Exception as exc:  # noqa: BLE001
            log.exception("control error")
            return control.json_response(500, {"error": str(exc)})

    # ------------------------------------------------------------ lifecycle
    async def run(self):
        args = self.args
        self.stop_event = asyncio.Event()
        tls = None
        if args.tls_cert:
            tls = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
            tls.load_cert_chain(args.tls_cert, args.tls_key)
        host, port = _split_hostport(args.listen)
        ews_host, ews_port = await self.ews_server.start(host, port, ssl=tls)
        chost, cport = _split_hostport(args.control)
        c_host, c_port = await self.control_server.start(chost, cport)
        scheme = "https" if tls else "http"
        info = {"ews_url": "%s://%s:%d/EWS/Exchange.asmx" % (scheme, ews_host, ews_port),
                "autodiscover_url": "%s://%s:%d/autodiscover/autodiscover.svc" % (scheme, ews_host,
                                                                                 ews_port),
                "control_url": "http://%s:%d" % (c_host, c_port), "pid": os.getpid(),
                "version": self.config.version, "schema_dir": self.schema_dir}
        self.ews_url = info["ews_url"]
        if args.ready_file:
            tmp = args.ready_file + ".tmp"
            with open(tmp, "w", encoding="utf-8") as fh:
                json.dump(info, fh)
            os.replace(tmp, args.ready_file)
        log.warning("ewssim listening: %s (control %s)", info["ews_url"], info["control_url"])
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGINT, signal.SIGTERM):
            loop.add_signal_handler(sig, self.stop_event.set)
        reaper = asyncio.ensure_future(self.notifier.reaper())
        await self.stop_event.wait()
        reaper.cancel()
        self.notifier.restart()
        await self.ews_server.close()
        await self.control_server.close()


class _SpecialResponse(Response):
    """A response written by the fault layer (chunk splitting / truncation)."""

    def __init__(self, sim, resp, truncate, split):
        super().__init__(resp.status, resp.body, resp.headers)
        self.sim = sim
        self.truncate = truncate
        self.split = split
        self.special = send_special


async def send_special(conn, resp):
    data = resp.body
    if resp.truncate:
        conn.writer.write(conn._head(resp.status, resp.headers,
                                     ["Content-Length: %d" % len(data)]) + data[:len(data) // 2])
        await conn.writer.drain()
        conn.abort()
        return
    await conn.start_chunked(resp.status, resp.headers)
    for piece in _pieces(resp.sim.rng, data, resp.split):
        await conn.write_chunk(piece)
        d = resp.split.spec.get("delay_ms", 0)
        if d:
            await asyncio.sleep(d / 1000.0)
    await conn.end_chunked()


def _pieces(rng, data, split):
    lo = max(1, int(split.spec.get("min", 1)))
    hi = max(lo, int(split.spec.get("max", 16)))
    i = 0
    out = []
    while i < len(data):
        n = rng.randint(lo, hi)
        out.append(data[i:i + n])
        i += n
    return out


def _break_xml(data):
    """Make a document not well-formed (unclosed element in the middle)."""
    mid = len(data) // 2
    j = data.find(b"<", mid)
    if j < 0:
        j = mid
    return data[:j] + b"<unclosed-sim-tag attr='x'" + data[j:]


def _split_hostport(s):
    host, _, port = s.rpartition(":")
    host = host.strip("[]") or "127.0.0.1"
    if host not in ("127.0.0.1", "localhost", "::1"):
        raise SystemExit("ewssim: refusing to listen on non-loopback address %s" % host)
    return host, int(port)
