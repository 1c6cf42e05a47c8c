"""EWS operations on POST /EWS/Exchange.asmx."""
import asyncio
import base64
import calendar as _stdcal
import datetime as dt
import functools
import logging
import time
import urllib.parse

from . import calendar as cal
from . import ntlm
from . import soap
from .http import Response
from .notify import EVENT_TYPES
from .soap import M, SOAP, T, m, t
from .throttle import Refusal
from .tz import Zone

log = logging.getLogger("ewssim.ews")

EWS_PATH = "/ews/exchange.asmx"
OPERATIONS = {
    "Subscribe": "Subscribe", "GetStreamingEvents": "GetStreamingEvents",
    "GetEvents": "GetEvents", "Unsubscribe": "Unsubscribe", "FindItem": "FindItem",
    "GetItem": "GetItem", "GetFolder": "GetFolder",
    "GetUserAvailabilityRequest": "GetUserAvailability",
    "GetUserOofSettingsRequest": "GetUserOofSettings",
    "GetServerTimeZones": "GetServerTimeZones",
}
MAX_GSE_IDS = 200
MOVE_TEXT = {"ErrorMailboxMoveInProgress": "The mailbox is being moved.",
             "ErrorMailboxStoreUnavailable": "The mailbox database is temporarily unavailable."}


class SoapFault(Exception):
    def __init__(self, code, message, message_xml=None, status=500):
        super().__init__(message)
        self.code = code
        self.message = message
        self.message_xml = message_xml
        self.status = status


class Ctx:
    """One EWS request being served."""
    __slots__ = ("sim", "req", "op", "account", "root", "header", "body_el", "impersonated",
                 "req_version", "budget", "code", "extra_headers", "in_op", "admitted",
                 "slept")


def rm(name, code="NoError", text=None, kids=(), message_xml=None):
    e = m(name, {"ResponseClass": "Success" if code == "NoError" else "Error"})
    if code != "NoError":
        e.append(m("MessageText", text=text or code))
    e.append(m("ResponseCode", text=code))
    if code != "NoError":
        e.append(m("DescriptiveLinkKey", text="0"))
        if message_xml:
            e.append(m("MessageXml", kids=list(message_xml)))
    for k in kids:
        e.append(k)
    return e


def wrap(op, messages):
    return m(op + "Response", kids=[m("ResponseMessages", kids=list(messages))])


def backoff_xml(ms):
    return [t("Value", {"Name": "BackOffMilliseconds"}, str(ms))]


# ====================================================================== entry point
def authenticated_post(sim, req):
    """-> (account, None), or (None, the answer) for an unauthenticated request
    (connection oriented for NTLM) or anything but a POST."""
    account, resp = authenticate(sim, req)
    if resp is not None:
        return None, resp
    if req.method != "POST":
        sim.stats.count("(GET)", 405)
        return None, Response(405, b"Method Not Allowed", [("Allow", "POST")])
    return account, None


async def handle(sim, req):
    if req.path.lower() != EWS_PATH:
        return Response(404, b"Not Found", [("Content-Type", "text/plain")])
    account, resp = authenticated_post(sim, req)
    if resp is not None:
        return resp
    ctx = Ctx()
    ctx.sim = sim
    ctx.req = req
    ctx.op = None
    ctx.account = account
    ctx.budget = None
    ctx.impersonated = None
    ctx.code = None
    ctx.extra_headers = []
    ctx.in_op = None
    ctx.admitted = ctx.slept = None
    try:
        return await _handle(ctx)
    except SoapFault as f:
        ctx.code = f.code
        sim.stats.count(ctx.op or "(unknown)", f.code)
        return sim.fault_response(f.code, f.message, f.message_xml, f.status, ctx.op, ctx.account)
    finally:
        if ctx.in_op is not None:
            sim.stats.op_end(ctx.in_op)
        if ctx.budget is not None:
            ctx.budget.release()
        if ctx.slept is not None and ctx.op != "GetStreamingEvents":
            req.on_sent = functools.partial(sim.stats.phases.add, req.arrived, ctx.admitted,
                                            ctx.slept, time.monotonic())


def budget_key(ctx):
    """The throttling budget this request is charged to."""
    imp = None
    if ctx.op == "GetStreamingEvents":
        imp = impersonated_address(ctx)
    return ctx.sim.throttle.budget_key(ctx.account.username,
                                       ctx.op == "GetStreamingEvents", imp)


def impersonated_address(ctx):
    """The ExchangeImpersonation target as sent (lower case), or None;
    usable before the header has been checked against the directory."""
    if ctx.header is None:
        return None
    for el in ctx.header.iter():
        if soap.localname(el) in ("SmtpAddress", "PrimarySmtpAddress",
                                  "PrincipalName", "SID") and el.text:
            return el.text.strip().lower()
    return None


async def _handle(ctx):
    sim = ctx.sim
    req = ctx.req
    try:
        root = soap.parse(req.body)
    except soap.BadRequest as exc:
        sim.stats.violation("malformed_request")
        raise SoapFault("ErrorSchemaValidation", "The request failed schema validation: %s" % exc) from exc
    if soap.nsname(root) != SOAP or soap.localname(root) != "Envelope":
        sim.stats.violation("malformed_request")
        raise SoapFault("ErrorInvalidRequest", "The request is not a SOAP 1.1 envelope.")
    body = soap.child(root, SOAP, "Body")
    kids = soap.elements(body) if body is not None else []
    if len(kids) != 1:
        sim.stats.violation("malformed_request")
        raise SoapFault("ErrorInvalidRequest", "The SOAP Body must contain exactly one element.")
    ctx.root = root
    ctx.header = soap.child(root, SOAP, "Header")
    ctx.body_el = kids[0]
    name = soap.localname(ctx.body_el)
    ctx.op = OPERATIONS.get(name, name) if soap.nsname(ctx.body_el) == M else name
    acct = ctx.account.username

    # --- injected infrastructure faults
    if sim.faults.take("hang", ctx.op, acct) is not None:
        sim.stats.count(ctx.op, "hang")
        await req.conn.wait_eof()
        req.conn.must_close = True
        return None
    f = sim.faults.take("http_status", ctx.op, acct)
    if f is not None:
        status = int(f.spec.get("status", 503))
        sim.stats.count(ctx.op, status)
        hdrs = [("Content-Type", "text/html")]
        if f.spec.get("retry_after") is not None:
            hdrs.append(("Retry-After", str(f.spec["retry_after"])))
        return Response(status, b"<html><body>Service Unavailable (simulated)</body></html>", hdrs)
    f = sim.faults.take("server_busy", ctx.op, acct)
    if f is not None:
        ms = int(f.spec.get("backoff_ms", sim.config.backoff_ms))
        sim.throttle.note_backoff(budget_key(ctx), ms)
        raise SoapFault("ErrorServerBusy", "The server cannot service this request right now. "
                        "Try again later.", backoff_xml(ms))

    # --- schema
    err = sim.schema.validate(ctx.body_el) if sim.schema is not None else None
    if err is not None:
        sim.stats.schema_invalid += 1
        sim.stats.violation("schema_invalid")
        raise SoapFault("ErrorSchemaValidation", "The request failed schema validation: %s" % err,
                        [t("LineNumber", text="1"), t("LinePosition", text="1"),
                         t("Violation", text=err)])
    if soap.nsname(ctx.body_el) != M or name not in OPERATIONS:
        raise SoapFault("ErrorInvalidRequest", "The operation %s is not supported by the simulator." % name)

    # --- SOAP headers
    check_version(ctx)
    resolve_impersonation(ctx)

    # --- throttling
    try:
        streaming = ctx.op == "GetStreamingEvents"
        sim.throttle.check_backoff(budget_key(ctx))
        ctx.budget = sim.throttle.acquire(acct, streaming,
                                          ctx.impersonated.smtp if ctx.impersonated else None)
    except Refusal as r:
        if r.code == "ErrorExceededConnectionCount":
            ctx.code = r.code
            sim.stats.count(ctx.op, r.code)
            msg = rm("GetStreamingEventsResponseMessage", r.code,
                     "You have exceeded the available concurrent connections for your account. "
                     "Try again once your other requests have completed.")
            return sim.soap_response(wrap("GetStreamingEvents", [msg]), op=ctx.op, account=acct)
        if r.kind is not None:
            sim.throttle.note_backoff(budget_key(ctx), r.backoff_ms)
        raise SoapFault("ErrorServerBusy", "The server cannot service this request right now. "
                        "Try again later.", backoff_xml(r.backoff_ms)) from None

    ctx.in_op = ctx.op
    sim.stats.op_begin(ctx.op)
    ctx.admitted = time.monotonic()

    # --- processing time: the answer is due L ms after the request
    # arrived (Exchange's own time, its parsing and validation included,
    # as the simulator's are), charged against the budget from admission
    lat = sim.config.latency_ms
    f = sim.faults.take("latency_ms", ctx.op, acct)
    if f is not None:
        lat += int(f.spec.get("ms", 0))
    if lat > 0:
        wait = ctx.req.arrived + lat / 1000.0 - time.monotonic()
        if wait > 0:
            await asyncio.sleep(wait)
    ctx.slept = time.monotonic()

    if ctx.op not in ("GetUserAvailability", "GetServerTimeZones"):
        code = sim.moving_code(ctx.impersonated)
        if code:
            ctx.code = code
            sim.stats.count(ctx.op, code)
            if ctx.op == "GetUserOofSettings":
                return sim.soap_response(oof_error(code), op=ctx.op, account=acct)
            return sim.soap_response(wrap(ctx.op, [rm(ctx.op + "ResponseMessage", code, MOVE_TEXT[code])]),
                                     op=ctx.op, account=acct)

    handler = HANDLERS[ctx.op]
    result = await handler(ctx)
    if result is None:
        return None
    if isinstance(result, Response):
        return result
    code = _first_code(result)
    sim.stats.count(ctx.op, code)
    return sim.soap_response(result, op=ctx.op, account=acct, extra_headers=ctx.extra_headers)


def _first_code(el):
    stack = [el]
    while stack:
        e = stack.pop(0)
        if e.name == "ResponseCode":
            return e.text
        stack.extend(e.kids)
    return "NoError"


# ====================================================================== authentication
def _unauthorized(sim, extra_header=None, close=False):
    hdrs = [("Content-Type", "text/html")]
    if extra_header:
        hdrs.append(extra_header)
    else:
        for a in sim.config.auth:
            if a == "ntlm":
                hdrs.append(("WWW-Authenticate", "NTLM"))
            elif a == "negotiate":
                hdrs.append(("WWW-Authenticate", "Negotiate"))
            elif a == "basic":
                hdrs.append(("WWW-Authenticate", 'Basic realm="%s"' % sim.config.realm))
    sim.stats.count("(auth)", 401)
    return Response(401, b"<html><body>401 - Unauthorized: Access is denied due to invalid "
                    b"credentials.</body></html>", hdrs, close=close)


def _account_ok(sim, account):
    exp = account.password_expires_at
    return exp is None or time.time() < exp


def _find_account(sim, user, domain=""):
    if "\\" in user:
        domain, user = user.split("\\", 1)
    acc = sim.directory.account(user)
    if acc is None and "@" in user:
        for a in sim.directory.accounts.values():
            if a.upn == user.lower():
                acc = a
                break
        if acc is None:
            acc = sim.directory.account(user.split("@")[0])
            if acc is not None and acc.upn != user.lower():
                acc = None
        domain = ""
    if acc is None:
        return None
    if domain and domain.upper() not in (acc.domain.upper(), acc.domain.split(".")[0].upper(), "."):
        return None
    return acc


def authenticate(sim, req):
    conn = req.conn
    hdr = req.header("authorization")
    st = sim.stats.auth
    if hdr:
        scheme, _, token = hdr.strip().partition(" ")
        scheme = scheme.lower()
        token = token.strip()
        if scheme == "basic" and "basic" in sim.config.auth:
            try:
                user, _, pw = base64.b64decode(token, validate=True).decode("utf-8").partition(":")
            except (ValueError, UnicodeDecodeError):
                st["basic_bad"] += 1
                return None, _unauthorized(sim)
            acc = _find_account(sim, user)
            if acc is None or acc.password != pw or not _account_ok(sim, acc):
                st["basic_failed"] += 1
                sim.stats.failed_login(acc.username if acc else user)
                return None, _unauthorized(sim)
            st["basic_ok"] += 1
            return acc, None
        if scheme in sim.config.auth and scheme in ("ntlm", "negotiate"):
            try:
                msg = base64.b64decode(token, validate=True)
            except ValueError:
                st["ntlm_bad"] += 1
                return None, _unauthorized(sim)
            try:
                if len(msg) >= 12 and msg[8] == 1:
                    flags = ntlm.parse_negotiate(msg)
                    chal = sim.rng_bytes(8)
                    conn.state["ntlm_challenge"] = chal
                    conn.state.pop("user", None)
                    cmsg = ntlm.build_challenge(flags, chal)
                    st["ntlm_challenges"] += 1
                    return None, _unauthorized(
                        sim, ("WWW-Authenticate", "%s %s" % ("Negotiate" if scheme == "negotiate" else "NTLM",
                                                             ntlm.b64(cmsg))))
                auth = ntlm.parse_authenticate(msg)
            except ntlm.NTLMError:
                st["ntlm_bad"] += 1
                return None, _unauthorized(sim, close=True)
            chal = conn.state.pop("ntlm_challenge", None)
            acc = _find_account(sim, auth.user, auth.domain) if auth.user else None
            if chal is None or acc is None or not _account_ok(sim, acc) or \
                    not ntlm.verify(auth, chal, acc.password, not sim.config.ntlm_v2_only):
                st["ntlm_failed"] += 1
                sim.stats.failed_login(acc.username if acc else auth.user)
                return None, _unauthorized(sim, close=True)
            st["ntlm_ok_v2" if len(auth.nt) > 24 else "ntlm_ok_v1"] += 1
            conn.state["user"] = acc.username
            return acc, None
        st["unsupported_scheme"] += 1
        return None, _unauthorized(sim)
    user = conn.state.get("user")
    if user:
        acc = sim.directory.account(user)
        if acc is not None and _account_ok(sim, acc):
            return acc, None
        conn.state.pop("user", None)
        return None, _unauthorized(sim, close=True)
    return None, _unauthorized(sim)


# ====================================================================== headers
def check_version(ctx):
    sim = ctx.sim
    rsv = soap.child(ctx.header, T, "RequestServerVersion")
    ctx.req_version = rsv.get("Version") if rsv is not None else None
    if ctx.req_version is not None and sim.config.version_rank(ctx.req_version) > sim.config.server_rank():
        raise SoapFault("ErrorInvalidServerVersion",
                        "The specified server version is invalid.")
    if sim.config.version == "Exchange2007_SP1":
        if ctx.op == "GetStreamingEvents" or (
                ctx.op == "Subscribe" and soap.child(ctx.body_el, M, "StreamingSubscriptionRequest") is not None):
            sim.stats.violation("streaming_on_exchange2007")
            el = "GetStreamingEvents" if ctx.op == "GetStreamingEvents" else "StreamingSubscriptionRequest"
            raise SoapFault("ErrorSchemaValidation",
                            "The request failed schema validation: The element '%s' in namespace "
                            "'%s' has invalid child element '%s' in namespace '%s'." % (
                                "Body" if el == "GetStreamingEvents" else "Subscribe",
                                SOAP if el == "GetStreamingEvents" else M, el, M))


def resolve_impersonation(ctx):
    sim = ctx.sim
    imp = soap.child(ctx.header, T, "ExchangeImpersonation")
    if imp is None:
        return
    sid = soap.child(imp, T, "ConnectingSID")
    ids = soap.elements(sid) if sid is not None else []
    if len(ids) != 1:
        raise SoapFault("ErrorInvalidExchangeImpersonationHeaderData",
                        "The impersonation header is invalid.")
    kind = soap.localname(ids[0])
    value = (ids[0].text or "").strip()
    if not value:
        raise SoapFault("ErrorInvalidExchangeImpersonationHeaderData",
                        "The impersonation header is invalid: empty %s." % kind)
    d = sim.directory
    if kind in ("SmtpAddress", "PrimarySmtpAddress"):
        mb = d.by_smtp_address(value)
        if mb is not None and mb.upn_required:
            mb = None
    elif kind == "PrincipalName":
        mb = d.by_principal(value)
    elif kind == "SID":
        mb = d.by_sid_value(value)
    else:
        mb = None
    if mb is not None and mb.online is not None:
        # moved to Exchange Online: a mail user on premises, no mailbox here
        sim.stats.exchange_online["refused"] += 1
        mb = None
    if mb is None:
        raise SoapFault("ErrorNonExistentMailbox",
                        "The SMTP address has no mailbox associated with it." if "Smtp" in kind
                        else "The impersonated user could not be found.",
                        [t("Value", {"Name": kind}, value)])
    if not ctx.account.may_impersonate(mb):
        raise SoapFault("ErrorImpersonateUserDenied",
                        "The account does not have permission to impersonate the requested user.")
    ctx.impersonated = mb


def target_mailbox(ctx, mailbox_el):
    """Mailbox addressed by a t:Mailbox element (or the impersonated user)."""
    sim = ctx.sim
    if mailbox_el is not None:
        addr = soap.text(mailbox_el, T, "EmailAddress")
        if not addr:
            return None, "ErrorInvalidRequest"
        mb = sim.directory.by_smtp_address(addr)
        if mb is None or mb.online is not None:
            return None, "ErrorNonExistentMailbox"
        if ctx.impersonated is not None and mb is ctx.impersonated:
            return mb, None
        if not ctx.account.may_impersonate(mb) and not ctx.account.may_delegate(mb):
            return None, "ErrorAccessDenied"
        return mb, None
    if ctx.impersonated is not None:
        return ctx.impersonated, None
    return None, "ErrorNonExistentMailbox"


# ====================================================================== affinity
def record_affinity(ctx, prefix):
    """Count the affinity headers; -> (anchor, cookie, backend the request is routed to)."""
    st = ctx.sim.stats.affinity
    req = ctx.req
    anchor = req.header("x-anchormailbox")
    cookie = ctx.sim.request_cookie(req)
    pref = (req.header("x-preferserveraffinity") or "").lower() == "true"
    st["%s_with_anchor" % prefix if anchor else "%s_without_anchor" % prefix] += 1
    if cookie:
        st["%s_with_cookie" % prefix] += 1
    if pref:
        st["%s_with_prefer_affinity" % prefix] += 1
    fallback = ctx.impersonated.smtp if ctx.impersonated is not None else ctx.account.username
    return anchor, cookie, ctx.sim.route(cookie, pref, anchor, fallback)


def misrouted(ctx, prefix, sub, backend):
    """True if the subscription must be reported missing (strict affinity only)."""
    if sub.backend == backend:
        return False
    ctx.sim.stats.affinity["%s_misrouted" % prefix] += 1
    if ctx.sim.config.strict_affinity:
        ctx.sim.stats.violation("affinity")
        return True
    return False


def rule_violation(ctx, kind):
    """A breach of Microsoft's affinity rules, counted when --affinity-rules is on."""
    ctx.sim.stats.affinity[kind] += 1
    if ctx.sim.config.affinity_rules:
        ctx.sim.stats.violation(kind)


def check_affinity_subscribe(ctx, mailbox, anchor, cookie):
    """Microsoft, "Maintain affinity between a group of subscriptions and the Mailbox
    server": group by ExternalEwsUrl + GroupingInformation, anchor = the group's
    alphabetically first member (X-AnchorMailbox with X-PreferServerAffinity on every
    Subscribe), the X-BackEndOverrideCookie of the group's server on the later ones."""
    sim = ctx.sim
    pref = (ctx.req.header("x-preferserveraffinity") or "").lower() == "true"
    if not anchor or not pref:
        rule_violation(ctx, "affinity_no_anchor")
        return
    cb = sim.cookie_backend(cookie)
    if cb is not None:
        # the cookie routes; the anchor header must be there but may have moved
        if cb != sim.home(mailbox):
            rule_violation(ctx, "affinity_cookie_group")
        return
    amb = sim.directory.by_smtp_address(anchor)
    if amb is None or sim.grouping(amb) != sim.grouping(mailbox):
        rule_violation(ctx, "affinity_anchor_group")
    elif mailbox.smtp < amb.smtp:
        # a group's anchor is its alphabetically first member when it is
        # formed; a mailbox joining later may sort first: counted only
        ctx.sim.stats.affinity["affinity_anchor_not_first"] += 1


def check_affinity_stream(ctx, subs, anchor, cookie):
    """One GetStreamingEvents per group: one group's subscriptions, its cookie."""
    sim = ctx.sim
    pref = (ctx.req.header("x-preferserveraffinity") or "").lower() == "true"
    if not anchor or not pref:
        rule_violation(ctx, "affinity_no_anchor")
    if len({sim.grouping(s.mailbox) for s in subs}) > 1:
        rule_violation(ctx, "affinity_mixed_stream")
    cb = sim.cookie_backend(cookie)
    if cb is not None and any(cb != sim.home(s.mailbox) for s in subs):
        rule_violation(ctx, "affinity_cookie_group")


# ====================================================================== Subscribe
async def op_subscribe(ctx):
    sim = ctx.sim
    anchor, _cookie, backend = record_affinity(ctx, "subscribe")
    kinds = {"PullSubscriptionRequest": "pull", "PushSubscriptionRequest": "push",
             "StreamingSubscriptionRequest": "streaming"}
    sreq = None
    for e in soap.elements(ctx.body_el):
        if soap.nsname(e) == M and soap.localname(e) in kinds:
            sreq = e
    if sreq is None:
        return wrap("Subscribe", [rm("SubscribeResponseMessage", "ErrorInvalidSubscriptionRequest")])
    kind = kinds[soap.localname(sreq)]

    def err(code, text=None):
        return wrap("Subscribe", [rm("SubscribeResponseMessage", code, text)])

    # folders -> one mailbox
    folders = None
    mailbox = None
    delegate = False
    if (sreq.get("SubscribeToAllFolders") or "").lower() not in ("true", "1"):
        folders = set()
        fids = soap.child(sreq, T, "FolderIds")
        if fids is None:
            return err("ErrorInvalidSubscriptionRequest", "FolderIds or SubscribeToAllFolders is required.")
        mailboxes = set()
        for f in soap.elements(fids):
            ln = soap.localname(f)
            if ln == "DistinguishedFolderId":
                mbel = soap.child(f, T, "Mailbox")
                if mbel is not None and ctx.impersonated is None:
                    # Exchange refuses delegate subscriptions; a refuse-grouping server
                    # takes them from an account with calendar rights
                    if not sim.config.profile("refuse-grouping"):
                        return err("ErrorSubscriptionDelegateAccessNotSupported")
                    dmb = sim.directory.by_smtp_address(soap.text(mbel, T, "EmailAddress", ""))
                    if dmb is None:
                        return err("ErrorNonExistentMailbox")
                    if not ctx.account.may_delegate(dmb):
                        return err("ErrorAccessDenied")
                    delegate = True
                mb, code = target_mailbox(ctx, mbel)
                if code:
                    return err(code)
                folders.add(f.get("Id"))
                mailboxes.add(mb.smtp)
                mailbox = mb
            elif ln == "FolderId":
                dec = cal.decode_folder_id(f.get("Id", ""))
                if dec is None:
                    return err("ErrorInvalidIdMalformed")
                mb = sim.directory.by_smtp_address(dec[0])
                if mb is None:
                    return err("ErrorFolderNotFound")
                if ctx.impersonated is not mb:
                    if ctx.impersonated is None:
                        return err("ErrorSubscriptionDelegateAccessNotSupported")
                    return err("ErrorInvalidSubscriptionRequest",
                               "All folders must belong to the impersonated mailbox.")
                folders.add(dec[1])
                mailboxes.add(mb.smtp)
                mailbox = mb
        if len(mailboxes) != 1:
            return err("ErrorInvalidSubscriptionRequest",
                       "A subscription can only cover folders of one mailbox.")
    else:
        if ctx.impersonated is None:
            return err("ErrorSubscriptionDelegateAccessNotSupported")
        mailbox = ctx.impersonated
    if ctx.impersonated is None and not delegate:
        # the service account has no mailbox of its own in the simulator
        return err("ErrorSubscriptionDelegateAccessNotSupported")
    code = sim.moving_code(mailbox)
    if code:
        return err(code, MOVE_TEXT[code])
    check_affinity_subscribe(ctx, mailbox, anchor, _cookie)
    ets = set()
    et_el = soap.child(sreq, T, "EventTypes")
    for e in soap.children(et_el, T, "EventType"):
        v = (e.text or "").strip()
        if v not in EVENT_TYPES:
            return err("ErrorInvalidRequest", "Unknown event type %s" % v)
        if v == "FreeBusyChangedEvent" and sim.config.server_rank() < sim.config.version_rank("Exchange2010_SP1"):
            return err("ErrorInvalidRequest", "FreeBusyChangedEvent requires Exchange2010_SP1")
        ets.add(v)
    if not ets:
        return err("ErrorInvalidRequest", "EventTypes is required.")
    wm = soap.text(sreq, T, "Watermark")
    if wm:
        try:
            ok = base64.b64decode(wm, validate=True).startswith(b"wm:")
        except ValueError:
            ok = False
        if not ok:
            return err("ErrorInvalidWatermark")
    timeout_s = status_s = url = None
    minute = sim.config.minute_seconds
    if kind == "pull":
        try:
            to = int(soap.text(sreq, T, "Timeout", "0"))
        except ValueError:
            to = 0
        if not 1 <= to <= 1440:
            return err("ErrorInvalidRequest", "Timeout must be 1..1440 minutes.")
        timeout_s = to * minute
    elif kind == "push":
        try:
            sf = int(soap.text(sreq, T, "StatusFrequency", "30"))
        except ValueError:
            sf = 0
        if not 1 <= sf <= 1440:
            return err("ErrorInvalidRequest", "StatusFrequency must be 1..1440 minutes.")
        status_s = sf * minute
        url = soap.text(sreq, T, "URL", "")
        u = urllib.parse.urlsplit(url)
        if u.scheme not in ("http", "https") or not u.hostname or len(url) > 2082:
            return err("ErrorInvalidPushSubscriptionUrl")
    # throttling: EWSMaxSubscriptions
    key = sim.throttle.subscription_key(ctx.account.username, mailbox.smtp)
    if sim.notifier.count_for(key) >= sim.config.max_subscriptions:
        sim.stats.violation("subscriptions")
        return err("ErrorExceededSubscriptionCount",
                   "You have exceeded the maximum number of subscriptions.")
    sub = sim.notifier.create(kind, ctx.account.username, mailbox, folders, ets, anchor, key,
                              backend, timeout_s=timeout_s, status_frequency_s=status_s, url=url,
                              delegate=delegate)
    kids = [m("SubscriptionId", text=sub.id)]
    if kind != "streaming" and not sim.config.profile("realserver"):
        kids.append(m("Watermark", text=sub.watermark))
    # "secure" only over https: cookie engines drop secure cookies received over http
    ctx.extra_headers.append(("Set-Cookie", "X-BackEndOverrideCookie=%s; path=/;%s HttpOnly"
                              % (sim.cookie_value(backend), " secure;" if sim.tls else "")))
    return wrap("Subscribe", [rm("SubscribeResponseMessage", kids=kids)])


# ====================================================================== GetEvents / Unsubscribe
def _owned(ctx, sub_id):
    """-> (subscription, error code)."""
    sim = ctx.sim
    sub = sim.notifier.subs.get(sub_id)
    if sub is None:
        return None, "ErrorSubscriptionNotFound"
    if sub.account.lower() != ctx.account.username.lower():
        sim.stats.violation("unknown_subscription_owner")
        return None, "ErrorSubscriptionAccessDenied"
    return sub, None


async def op_getevents(ctx):
    sim = ctx.sim
    _anchor, _cookie, backend = record_affinity(ctx, "getevents")
    sid = soap.text(ctx.body_el, M, "SubscriptionId", "")
    sub, code = _owned(ctx, sid)
    if sub is not None and misrouted(ctx, "getevents", sub, backend):
        sub, code = None, "ErrorSubscriptionNotFound"
    name = "GetEventsResponseMessage"
    if code:
        return wrap("GetEvents", [rm(name, code)])
    if sub.kind != "pull":
        return wrap("GetEvents", [rm(name, "ErrorInvalidPullSubscriptionId")])
    if sub.missed:
        sim.notifier.remove(sub, "missed events")
        return wrap("GetEvents", [rm(name, "ErrorMissedNotificationEvents",
                                     "Events were lost; create a new subscription.")])
    sub.last_active = time.monotonic()
    evs = sim.notifier.take_events(sub)
    note = sim.notifier.notification_el(sub, True, evs)
    sim.notifier.commit_events(sub, evs)
    sim.stats.notifications_sent += 1
    return wrap("GetEvents", [rm(name, kids=[note])])


async def op_unsubscribe(ctx):
    sim = ctx.sim
    _anchor, _cookie, backend = record_affinity(ctx, "unsubscribe")
    sid = soap.text(ctx.body_el, M, "SubscriptionId", "")
    sub, code = _owned(ctx, sid)
    if sub is not None and misrouted(ctx, "unsubscribe", sub, backend):
        sub, code = None, "ErrorSubscriptionNotFound"
    name = "UnsubscribeResponseMessage"
    if code:
        return wrap("Unsubscribe", [rm(name, code)])
    if sub.kind == "push":
        return wrap("Unsubscribe", [rm(name, "ErrorInvalidSubscription",
                                       "Push subscriptions end when the client answers Unsubscribe.")])
    stream = sub.stream
    sim.notifier.remove(sub, "Unsubscribe", notify_stream_code=None, why="unsubscribed")
    if stream is not None and sim.config.profile("refuse-grouping"):
        # such a server closes the whole stream the subscription was on
        sim.stats.grouping["closed_by_unsubscribe"] += 1
        stream.close_all()
    return wrap("Unsubscribe", [rm(name)])


# ====================================================================== GetStreamingEvents
async def op_gse(ctx):
    sim = ctx.sim
    _anchor, cookie, backend = record_affinity(ctx, "gse")
    ids_el = soap.child(ctx.body_el, M, "SubscriptionIds")
    ids = [(e.text or "").strip() for e in soap.children(ids_el, T, "SubscriptionId")]
    name = "GetStreamingEventsResponseMessage"
    try:
        timeout_min = int(soap.text(ctx.body_el, M, "ConnectionTimeout", "0"))
    except ValueError:
        timeout_min = 0
    if not 1 <= timeout_min <= 30:
        return wrap("GetStreamingEvents", [rm(name, "ErrorInvalidRequest",
                                              "ConnectionTimeout must be 1..30 minutes.")])
    if len(ids) > MAX_GSE_IDS:
        sim.stats.violation("gse_over_200")
        return wrap("GetStreamingEvents", [rm(
            name, "ErrorInvalidRequest",
            "A GetStreamingEvents request can contain at most %d subscription ids." % MAX_GSE_IDS)])
    if not ids or len(set(ids)) != len(ids):
        return wrap("GetStreamingEvents", [rm(name, "ErrorInvalidRequest",
                                              "Subscription ids must be non-empty and unique.")])
    subs = []
    bad = {}
    for sid in ids:
        sub, code = _owned(ctx, sid)
        if sub is not None and sub.kind != "streaming":
            sub, code = None, "ErrorInvalidSubscription"
        if sub is not None and misrouted(ctx, "gse", sub, backend):
            sub, code = None, "ErrorSubscriptionNotFound"
        if code:
            bad.setdefault(code, []).append(sid)
        else:
            subs.append(sub)
    if bad:
        code, lst = next(iter(bad.items()))
        msg = rm(name, code, "One or more subscriptions in the request are not valid.",
                 kids=[m("ErrorSubscriptionIds", kids=[m("SubscriptionId", text=i) for i in sum(bad.values(), [])]),
                       m("ConnectionStatus", text="Closed")])
        return wrap("GetStreamingEvents", [msg])
    if sim.config.profile("refuse-grouping"):
        # only the owner may open a stream: the impersonated mailbox for its own
        # subscriptions, the account (not impersonating) for delegate ones
        opener = ctx.impersonated.smtp if ctx.impersonated is not None else None
        foreign = [s.id for s in subs if (s.delegate and opener is not None) or
                   (not s.delegate and s.mailbox.smtp != opener)]
        if foreign:
            sim.stats.grouping["refused_ids"] += len(foreign)
            sim.stats.grouping["closed_by_foreign_id"] += 1
            msg = rm(name, "ErrorInvalidSubscription", "The subscription is invalid.",
                     kids=[m("ErrorSubscriptionIds", kids=[m("SubscriptionId", text=i) for i in foreign]),
                           m("ConnectionStatus", text="Closed")])
            return wrap("GetStreamingEvents", [msg])
    check_affinity_stream(ctx, subs, _anchor, cookie)
    cb = sim.cookie_backend(cookie)
    if cb is not None and any(s.backend != cb for s in subs):
        sim.stats.affinity["gse_cookie_mismatch"] += 1
    sim.stats.count(ctx.op, "NoError")
    await sim.streams.serve(ctx, subs, timeout_min * sim.config.minute_seconds)
    return None


# ====================================================================== calendar reads
_ALL_FIELDS = ("item:ParentFolderId", "item:ItemClass", "item:Subject", "item:Sensitivity",
               "item:Body", "item:DateTimeCreated", "item:LastModifiedTime", "calendar:UID",
               "calendar:Start", "calendar:End", "calendar:IsAllDayEvent",
               "calendar:LegacyFreeBusyStatus", "calendar:Location", "calendar:IsMeeting",
               "calendar:IsCancelled", "calendar:IsRecurring", "calendar:CalendarItemType",
               "calendar:MyResponseType", "calendar:Organizer")
_DEFAULT_FIELDS = set(_ALL_FIELDS) - {"item:Body"}


def requested_fields(shape):
    base = soap.text(shape, T, "BaseShape", "Default")
    if base == "IdOnly":
        fields = set()
    elif base == "AllProperties":
        fields = set(_ALL_FIELDS)
    else:
        fields = set(_DEFAULT_FIELDS)
    add = soap.child(shape, T, "AdditionalProperties")
    if add is not None:
        for f in soap.children(add, T, "FieldURI"):
            fields.add(f.get("FieldURI", ""))
    return fields


def calendar_item_el(mb, it, occ, start, end, fields, real=False):
    """A t:CalendarItem; real: a realserver's shape (nine fractional digits, each
    time zone element twice)."""
    smtp = mb.smtp
    if occ is None:
        iid = cal.item_id(smtp, it.local)
        kind = "Single" if not it.recurrence else "RecurringMaster"
    else:
        iid = cal.occurrence_id(smtp, it.local, occ)
        kind = "Occurrence"
    e = t("CalendarItem")
    f = fields
    e.append(t("ItemId", {"Id": iid, "ChangeKey": cal.changekey(it.version)}))
    if "item:ParentFolderId" in f:
        e.append(t("ParentFolderId", {"Id": cal.folder_id(smtp, "calendar"), "ChangeKey": "AQAAAA=="}))
    if "item:ItemClass" in f:
        e.append(t("ItemClass", text="IPM.Appointment"))
    if "item:Subject" in f:
        e.append(t("Subject", text=it.subject))
    if "item:Sensitivity" in f:
        e.append(t("Sensitivity", text=it.sensitivity))
    if "item:Body" in f:
        e.append(t("Body", {"BodyType": "Text"}, it.body))
    if "item:DateTimeCreated" in f:
        e.append(t("DateTimeCreated", text=cal.iso(it.created)))
    if "item:LastModifiedTime" in f:
        e.append(t("LastModifiedTime", text=cal.iso(it.created)))
    if "calendar:UID" in f:
        e.append(t("UID", text="040000008200E00074C5B7101A82E008%s" % base64.b16encode(
            (smtp + it.local).encode()[:24]).decode()))
    iso = cal.iso9 if real else cal.iso
    if "calendar:Start" in f:
        e.append(t("Start", text=iso(start)))
    if "calendar:End" in f:
        e.append(t("End", text=iso(end)))
    if real:
        for tz in ("StartTimeZone", "StartTimeZone", "EndTimeZone", "EndTimeZone"):
            e.append(t(tz, {"Id": "UTC", "Name": "(UTC) Coordinated Universal Time"}))
    if "calendar:IsAllDayEvent" in f:
        e.append(t("IsAllDayEvent", text="true" if it.all_day else "false"))
    if "calendar:LegacyFreeBusyStatus" in f:
        e.append(t("LegacyFreeBusyStatus", text=it.freebusy))
    if "calendar:Location" in f and it.location:
        e.append(t("Location", text=it.location))
    if "calendar:IsMeeting" in f:
        e.append(t("IsMeeting", text="true" if it.is_meeting else "false"))
    if "calendar:IsCancelled" in f:
        e.append(t("IsCancelled", text="true" if it.cancelled else "false"))
    if "calendar:IsRecurring" in f:
        e.append(t("IsRecurring", text="true" if occ is not None else "false"))
    if "calendar:CalendarItemType" in f:
        e.append(t("CalendarItemType", text=kind))
    if "calendar:MyResponseType" in f:
        e.append(t("MyResponseType", text=it.my_response))
    if "calendar:Organizer" in f:
        org = it.organizer or smtp
        e.append(t("Organizer", kids=[t("Mailbox", kids=[
            t("Name", text=org.split("@")[0]), t("EmailAddress", text=org),
            t("RoutingType", text="SMTP")])]))
    return e


def _parse_dt(value):
    if value is None:
        raise ValueError("missing date")
    return cal.parse_time(value)


def _folder_mailbox(ctx, pfids):
    """Mailbox for ParentFolderIds/FolderIds (calendar or root folders)."""
    for f in (pfids if isinstance(pfids, list) else soap.elements(pfids) if pfids is not None else []):
        ln = soap.localname(f)
        if ln == "DistinguishedFolderId":
            mb, code = target_mailbox(ctx, soap.child(f, T, "Mailbox"))
            return mb, f.get("Id"), code
        if ln == "FolderId":
            dec = cal.decode_folder_id(f.get("Id", ""))
            if dec is None:
                return None, None, "ErrorInvalidIdMalformed"
            mb = ctx.sim.directory.by_smtp_address(dec[0])
            if mb is None:
                return None, None, "ErrorFolderNotFound"
            if mb is not ctx.impersonated and not ctx.account.may_impersonate(mb):
                return None, None, "ErrorAccessDenied"
            return mb, dec[1], None
    return None, None, "ErrorInvalidRequest"


async def op_finditem(ctx):
    sim = ctx.sim
    name = "FindItemResponseMessage"
    mb, folder, code = _folder_mailbox(ctx, soap.child(ctx.body_el, M, "ParentFolderIds"))
    code = code or sim.moving_code(mb)
    if code:
        return wrap("FindItem", [rm(name, code, MOVE_TEXT.get(code))])
    fields = requested_fields(soap.child(ctx.body_el, M, "ItemShape"))
    items = list(mb.items().values()) if folder == "calendar" else []
    cv = soap.child(ctx.body_el, M, "CalendarView")
    limit = sim.config.find_count_limit
    if cv is not None:
        try:
            start = _parse_dt(cv.get("StartDate"))
            end = _parse_dt(cv.get("EndDate"))
        except (ValueError, cal.ItemError):
            return wrap("FindItem", [rm(name, "ErrorInvalidRequest", "Bad CalendarView dates.")])
        if end < start:
            return wrap("FindItem", [rm(name, "ErrorCalendarEndDateIsEarlierThanStartDate")])
        rows = cal.view(items, start, end)
        mx = cv.get("MaxEntriesReturned")
        if mx is not None and mx.isdigit():
            limit = min(limit, int(mx))
    else:
        rows = [(it.start, it.end, None, it) for it in sorted(items, key=lambda x: x.start)]
    total = len(rows)
    last = total <= limit
    rows = rows[:limit]
    if not last:
        sim.stats.requests["FindItem"]["truncated_at_find_count_limit"] += 1
    real = sim.config.profile("realserver")
    out = t("Items", kids=[calendar_item_el(mb, it, occ, s, e, fields, real) for s, e, occ, it in rows])
    rf = m("RootFolder", {"TotalItemsInView": str(total) if cv is None else str(len(rows)),
                          "IncludesLastItemInRange": "true" if last else "false"}, kids=[out])
    if cv is None:
        rf.attrs["IndexedPagingOffset"] = str(len(rows))
    return wrap("FindItem", [rm(name, kids=[rf])])


async def op_getitem(ctx):
    sim = ctx.sim
    name = "GetItemResponseMessage"
    fields = requested_fields(soap.child(ctx.body_el, M, "ItemShape"))
    msgs = []
    for ie in soap.elements(soap.child(ctx.body_el, M, "ItemIds")):
        dec = cal.decode_item_id(ie.get("Id", "")) if soap.localname(ie) == "ItemId" else None
        if dec is None:
            msgs.append(rm(name, "ErrorInvalidIdMalformed" if soap.localname(ie) == "ItemId"
                           else "ErrorInvalidRequest", kids=[m("Items")]))
            continue
        smtp, local, occ = dec
        mb = sim.directory.by_smtp_address(smtp)
        if mb is None or (mb is not ctx.impersonated and not ctx.account.may_impersonate(mb)):
            msgs.append(rm(name, "ErrorAccessDenied" if mb else "ErrorItemNotFound", kids=[m("Items")]))
            continue
        it = mb.items().get(local)
        if it is None:
            msgs.append(rm(name, "ErrorItemNotFound", "The specified object was not found in the store.", kids=[m("Items")]))
            continue
        s, e = it.start, it.end
        if occ is not None:
            found = None
            for n, os_, oe in cal.occurrences(it):
                if n == occ:
                    found = (os_, oe)
                    break
                if n > occ:
                    break
            if found is None:
                msgs.append(rm(name, "ErrorItemNotFound", kids=[m("Items")]))
                continue
            s, e = found
        msgs.append(rm(name, kids=[m("Items", kids=[calendar_item_el(
            mb, it, occ, s, e, fields, sim.config.profile("realserver"))])]))
    return wrap("GetItem", msgs)


_FOLDERS = {"root": ("Folder", "Root", None, "IPF"), "msgfolderroot": ("Folder", "Top of Information Store", "root", "IPF.Note"),
            "calendar": ("CalendarFolder", "Calendar", "msgfolderroot", "IPF.Appointment"),
            "inbox": ("Folder", "Inbox", "msgfolderroot", "IPF.Note")}


async def op_getfolder(ctx):
    name = "GetFolderResponseMessage"
    msgs = []
    for fe in soap.elements(soap.child(ctx.body_el, M, "FolderIds")):
        mb, fname, code = _folder_mailbox(ctx, [fe])
        if code or fname not in _FOLDERS:
            msgs.append(rm(name, code or "ErrorFolderNotFound", kids=[m("Folders")]))
            continue
        tag, disp, parent, fclass = _FOLDERS[fname]
        f = t(tag)
        f.append(t("FolderId", {"Id": cal.folder_id(mb.smtp, fname), "ChangeKey": "AQAAABYAAAA="}))
        if parent:
            f.append(t("ParentFolderId", {"Id": cal.folder_id(mb.smtp, parent), "ChangeKey": "AQAAAA=="}))
        f.append(t("FolderClass", text=fclass))
        f.append(t("DisplayName", text=disp))
        f.append(t("TotalCount", text=str(len(mb.items()) if fname == "calendar" else 0)))
        f.append(t("ChildFolderCount", text="0" if fname == "calendar" else "1"))
        if tag == "Folder":
            f.append(t("UnreadCount", text="0"))
        msgs.append(rm(name, kids=[m("Folders", kids=[f])]))
    return wrap("GetFolder", msgs)


# ====================================================================== availability and OOF
def _zone(el):
    if el is None:
        return Zone(0)

    def rule(r):
        if r is None:
            return None
        return {"bias": int(soap.text(r, T, "Bias", "0")), "time": soap.text(r, T, "Time", "00:00:00"),
                "day_order": int(soap.text(r, T, "DayOrder", "1")), "month": int(soap.text(r, T, "Month", "0")),
                "day_of_week": soap.text(r, T, "DayOfWeek", "Sunday")}
    return Zone(int(soap.text(el, T, "Bias", "0")), rule(soap.child(el, T, "StandardTime")),
                rule(soap.child(el, T, "DaylightTime")))


def _local_ts(value):
    """Parse an xs:dateTime as wall-clock time (offset ignored if absent -> zone applies)."""
    d = dt.datetime.fromisoformat(value.strip().replace("Z", "+00:00"))
    if d.tzinfo is not None:
        return d.timestamp(), True
    return _stdcal.timegm(d.timetuple()), False


async def op_availability(ctx):
    sim = ctx.sim
    body = ctx.body_el
    try:
        zone = _zone(soap.child(body, T, "TimeZone"))
        opts = soap.child(body, T, "FreeBusyViewOptions")
        tw = soap.child(opts, T, "TimeWindow")
        s_raw, s_abs = _local_ts(soap.text(tw, T, "StartTime"))
        e_raw, e_abs = _local_ts(soap.text(tw, T, "EndTime"))
        start = s_raw if s_abs else zone.to_utc(s_raw)
        end = e_raw if e_abs else zone.to_utc(e_raw)
        interval = int(soap.text(opts, T, "MergedFreeBusyIntervalInMinutes", "30"))
        view = soap.text(opts, T, "RequestedView", "FreeBusy")
    except (TypeError, ValueError, AttributeError) as exc:
        raise SoapFault("ErrorInvalidRequest", "Invalid availability request: %s" % exc) from None
    if end <= start or end - start > 42 * 86400:
        raise SoapFault("ErrorInvalidTimeInterval" if end <= start else "ErrorTimeIntervalTooBig",
                        "The time window is invalid.")
    if not 5 <= interval <= 1440:
        raise SoapFault("ErrorInvalidRequest", "MergedFreeBusyIntervalInMinutes must be 5..1440.")
    mds = soap.children(soap.child(body, M, "MailboxDataArray"), T, "MailboxData")
    if len(mds) > 100:
        raise SoapFault("ErrorInvalidRequest",
                        "At most 100 mailboxes can be queried in one request.")
    if sim.config.profile("realserver"):
        view = "Detailed"  # whatever was asked: Detailed, and no MergedFreeBusy
    merged = view in ("MergedOnly", "FreeBusyMerged", "DetailedMerged")
    events = view in ("FreeBusy", "FreeBusyMerged", "Detailed", "DetailedMerged")
    detailed = view in ("Detailed", "DetailedMerged")

    def loc(ts):
        if sim.config.profile("realserver"):
            return cal.iso9(zone.to_local(ts))[:-1]  # local wall clock, no zone
        return time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(zone.to_local(ts)))

    out = []
    for md in mds:
        addr = soap.text(soap.child(md, T, "Email"), T, "Address", "")
        mb = sim.directory.by_smtp_address(addr) if addr else None
        fb = m("FreeBusyResponse")
        code = "ErrorMailRecipientNotFound" if mb is None else sim.moving_code(mb)
        if code:
            fb.append(m("ResponseMessage", {"ResponseClass": "Error"}, kids=[
                m("MessageText", text=MOVE_TEXT.get(code, "No mailbox with such guid.")),
                m("ResponseCode", text=code),
                m("DescriptiveLinkKey", text="0")]))
            fb.append(m("FreeBusyView", kids=[t("FreeBusyViewType", text="None")]))
            out.append(fb)
            continue
        fb.append(m("ResponseMessage", {"ResponseClass": "Success"},
                    kids=[m("ResponseCode", text="NoError")]))
        v = m("FreeBusyView", kids=[t("FreeBusyViewType", text=view)])
        items = list(mb.items().values())
        if merged:
            v.append(t("MergedFreeBusy", text=cal.merged_freebusy(items, start, end, interval)))
        if events:
            arr = t("CalendarEventArray")
            for s, e, occ, it in cal.view(items, start, end):
                if it.cancelled:
                    continue
                ce = t("CalendarEvent", kids=[t("StartTime", text=loc(s)), t("EndTime", text=loc(e)),
                                              t("BusyType", text=it.freebusy)])
                if detailed:
                    private = it.sensitivity in ("Private", "Confidential")
                    det = t("CalendarEventDetails")
                    det.append(t("ID", text=cal.item_id(mb.smtp, it.local) if occ is None
                                 else cal.occurrence_id(mb.smtp, it.local, occ)))
                    if not private:
                        det.append(t("Subject", text=it.subject))
                        if it.location:
                            det.append(t("Location", text=it.location))
                    det.append(t("IsMeeting", text="true" if it.is_meeting else "false"))
                    det.append(t("IsRecurring", text="true" if occ is not None else "false"))
                    det.append(t("IsException", text="false"))
                    det.append(t("IsReminderSet", text="false"))
                    det.append(t("IsPrivate", text="true" if private else "false"))
                    ce.append(det)
                arr.append(ce)
            if arr.kids:
                v.append(arr)
        v.append(_working_hours())
        fb.append(v)
        out.append(fb)
    return m("GetUserAvailabilityResponse", kids=[m("FreeBusyResponseArray", kids=out)])


def _working_hours():
    def tzt(bias, month):
        return [t("Bias", text=str(bias)), t("Time", text="02:00:00"), t("DayOrder", text="1"),
                t("Month", text=str(month)), t("DayOfWeek", text="Sunday")]
    return t("WorkingHours", kids=[
        t("TimeZone", kids=[t("Bias", text="0"), t("StandardTime", kids=tzt(0, 0)),
                            t("DaylightTime", kids=tzt(0, 0))]),
        t("WorkingPeriodArray", kids=[t("WorkingPeriod", kids=[
            t("DayOfWeek", text="Monday Tuesday Wednesday Thursday Friday"),
            t("StartTimeInMinutes", text="480"), t("EndTimeInMinutes", text="1020")])])])


def oof_error(code, text=None):
    return m("GetUserOofSettingsResponse", kids=[m("ResponseMessage", {"ResponseClass": "Error"}, kids=[
        m("MessageText", text=text or MOVE_TEXT.get(code, code)),
        m("ResponseCode", text=code), m("DescriptiveLinkKey", text="0")])])


async def op_oof(ctx):
    sim = ctx.sim
    mbel = soap.child(ctx.body_el, T, "Mailbox")
    addr = soap.text(mbel, T, "Address", "")
    mb = sim.directory.by_smtp_address(addr) if addr else None
    if mb is None:
        return oof_error("ErrorMailRecipientNotFound", "The mailbox could not be found.")
    if mb is not ctx.impersonated and not ctx.account.may_impersonate(mb):
        raise SoapFault("ErrorAccessDenied", "Access is denied. Check credentials and try again.")
    code = sim.moving_code(mb)
    if code:
        return oof_error(code)
    iso = cal.iso9 if sim.config.profile("realserver") else cal.iso
    o = mb.oof
    st = m("GetUserOofSettingsResponse")
    st.append(m("ResponseMessage", {"ResponseClass": "Success"}, kids=[m("ResponseCode", text="NoError")]))
    st.append(t("OofSettings", kids=[
        t("OofState", text=o["state"]), t("ExternalAudience", text=o["external_audience"]),
        t("Duration", kids=[t("StartTime", text=iso(o["start"])), t("EndTime", text=iso(o["end"]))]),
        t("InternalReply", kids=[t("Message", text=o["internal_reply"])]),
        t("ExternalReply", kids=[t("Message", text=o["external_reply"])])]))
    st.append(m("AllowExternalOof", text="All"))
    return st


_UTC_PERIOD = "trule:Microsoft/Registry/UTC/1-Standard"


async def op_timezones(ctx):
    """Only UTC is known to the simulator (enough for clients that ask for it)."""
    ids = [(e.text or "").strip() for e in soap.children(soap.child(ctx.body_el, M, "Ids"), T, "Id")]
    msgs = []
    if any(i != "UTC" for i in ids):
        return wrap("GetServerTimeZones", [rm("GetServerTimeZonesResponseMessage", "ErrorTimeZone",
                                              "Only the UTC time zone is known to the simulator.")])
    full = (ctx.body_el.get("ReturnFullTimeZoneData") or "true").lower() in ("true", "1")
    d = t("TimeZoneDefinition", {"Id": "UTC", "Name": "(UTC) Coordinated Universal Time"})
    if full:
        d.append(t("Periods", kids=[t("Period", {"Bias": "PT0M", "Name": "Standard", "Id": _UTC_PERIOD})]))
        d.append(t("TransitionsGroups", kids=[t("TransitionsGroup", {"Id": "0"}, kids=[
            t("Transition", kids=[t("To", {"Kind": "Period"}, _UTC_PERIOD)])])]))
        d.append(t("Transitions", kids=[t("Transition", kids=[t("To", {"Kind": "Group"}, "0")])]))
    msgs.append(rm("GetServerTimeZonesResponseMessage", kids=[m("TimeZoneDefinitions", kids=[d])]))
    return wrap("GetServerTimeZones", msgs)


HANDLERS = {
    "GetServerTimeZones": op_timezones,
    "Subscribe": op_subscribe, "GetStreamingEvents": op_gse, "GetEvents": op_getevents,
    "Unsubscribe": op_unsubscribe, "FindItem": op_finditem, "GetItem": op_getitem,
    "GetFolder": op_getfolder, "GetUserAvailability": op_availability,
    "GetUserOofSettings": op_oof,
}
