"""SOAP Autodiscover on POST /autodiscover/autodiscover.svc: GetUserSettings.

Shapes after Microsoft's GetUserSettings operation (SOAP) reference: a WCF-style
envelope (s:, wsa:Action in the header), the answer in the Autodiscover namespace
as the default namespace, one UserResponse per requested user in request order,
StringSetting Name/Value pairs, redirects in RedirectTarget, per-setting errors in
UserSettingErrors.  Each mailbox lives on one of --backends Mailbox servers; its
GroupingInformation is the server's unless set (directory "grouping", or a move).
A mailbox moved to Exchange Online (directory "exchange_online", or POST
/mailboxes/ADDR/exchange_online) is a mail user on premises: RedirectAddress to
its target address in the tenant's mail.onmicrosoft.com routing domain.
"""
import logging

from . import soap
from .ews import authenticated_post
from .http import Response
from .soap import SOAP, El

log = logging.getLogger("ewssim.autodiscover")

PATH = "/autodiscover/autodiscover.svc"
AD = "http://schemas.microsoft.com/exchange/2010/Autodiscover"
WSA = "http://www.w3.org/2005/08/addressing"
XSI = "http://www.w3.org/2001/XMLSchema-instance"
ACTION = AD + "/Autodiscover/GetUserSettings"
MAX_USERS = 100
# What the simulator can answer; any other name is an InvalidSetting.
SETTINGS = ("UserDisplayName", "UserDN", "UserDeploymentId", "AutoDiscoverSMTPAddress",
            "GroupingInformation", "ExternalEwsUrl", "InternalEwsUrl", "InternalMailboxServer",
            "ExternalMailboxServer", "MailboxDN", "CasVersion", "EwsSupportedSchemas",
            "ExternalEwsVersion")
CAS_VERSION = {"Exchange2007_SP1": "08.03.0083.006", "Exchange2010": "14.00.0639.021",
               "Exchange2010_SP1": "14.01.0438.000", "Exchange2010_SP2": "14.03.0123.004",
               "Exchange2013": "15.00.1497.002", "Exchange2016": "15.01.2507.006",
               "Online": "15.20.6792.020"}
SCHEMAS = {"Exchange2007_SP1": "Exchange2007, Exchange2007_SP1",
           "Exchange2010": "Exchange2007, Exchange2007_SP1, Exchange2010",
           "Exchange2010_SP1": "Exchange2007, Exchange2007_SP1, Exchange2010, Exchange2010_SP1",
           "Exchange2010_SP2": "Exchange2007, Exchange2007_SP1, Exchange2010, Exchange2010_SP1, "
                               "Exchange2010_SP2"}
SCHEMAS_2013 = ("Exchange2007, Exchange2007_SP1, Exchange2010, Exchange2010_SP1, Exchange2010_SP2, "
                "Exchange2013, Exchange2013_SP1")


def a(name, text=None, kids=None, attrs=None):
    return El(AD, name, attrs, kids, None if text is None else str(text))


def _text(el, local):
    c = el.find("{%s}%s" % (AD, local)) if el is not None else None
    return (c.text or "").strip() if c is not None and c.text else ""


def _fault(sim, code, message, status=500):
    """A WCF fault: unqualified faultcode with a prefix of its own."""
    data = ('<s:Envelope xmlns:s="%s"><s:Body><s:Fault><faultcode xmlns:a="%s">a:%s</faultcode>'
            '<faultstring xml:lang="en-US">%s</faultstring></s:Fault></s:Body></s:Envelope>'
            % (SOAP, WSA, soap.esc(code), soap.esc(message))).encode("utf-8")
    sim.stats.count("GetUserSettings", code)
    return Response(status, data, [("Content-Type", sim.content_type())])


async def handle(sim, req):
    account, resp = authenticated_post(sim, req)
    if resp is not None:
        return resp
    f = sim.faults.take("http_status", "GetUserSettings", account.username)
    if f is not None:
        status = int(f.spec.get("status", 503))
        sim.stats.count("GetUserSettings", status)
        return Response(status, b"<html><body>Service Unavailable (simulated)</body></html>",
                        [("Content-Type", "text/html")])
    try:
        root = soap.parse(req.body)
    except soap.BadRequest as exc:
        sim.stats.violation("malformed_request")
        return _fault(sim, "InternalServiceFault", "The request is not XML: %s" % exc)
    if soap.nsname(root) != SOAP or soap.localname(root) != "Envelope":
        sim.stats.violation("malformed_request")
        return _fault(sim, "InternalServiceFault", "The request is not a SOAP 1.1 envelope.")
    hdr = soap.child(root, SOAP, "Header")
    action = soap.text(hdr, WSA, "Action", "") if hdr is not None else ""
    body = soap.child(root, SOAP, "Body")
    kids = soap.elements(body)
    msg = kids[0] if len(kids) == 1 else None
    if action != ACTION or msg is None or soap.nsname(msg) != AD or \
            soap.localname(msg) != "GetUserSettingsRequestMessage":
        # what WCF answers for an action it has no operation for
        return _fault(sim, "ActionNotSupported",
                      "The message with Action '%s' cannot be processed at the receiver, due to a "
                      "ContractFilter mismatch at the EndpointDispatcher." % action)
    request = msg.find("{%s}Request" % AD)
    users = [_text(u, "Mailbox") for u in request.iterfind("{%s}Users/{%s}User" % (AD, AD))] \
        if request is not None else []
    names = [(s.text or "").strip() for s in
             request.iterfind("{%s}RequestedSettings/{%s}Setting" % (AD, AD))] if request is not None else []
    st = sim.stats.autodiscover
    st["requests"] += 1
    st["max_users"] = max(st["max_users"], len(users))
    if not users or not names:
        return _answer(sim, "InvalidRequest", "The request must name users and settings.", [])
    if len(users) > MAX_USERS:
        sim.stats.violation("autodiscover_over_100")
        return _answer(sim, "InvalidRequest", "At most %d users can be queried in one request."
                       % MAX_USERS, [])
    st["users"] += len(users)
    out = [_user(sim, account, addr, names) for addr in users]
    return _answer(sim, "NoError", "", out)


def _user(sim, account, addr, names):
    st = sim.stats.autodiscover
    mb = sim.directory.by_smtp_address(addr) if addr else None
    if mb is None or not (account.may_impersonate(mb) or account.may_delegate(mb)):
        st["invalid_users"] += 1
        return _user_el("InvalidUser", "Invalid user: '%s'" % addr)
    if mb.online is not None:
        # A hybrid server's answer for a mailbox moved to Exchange Online: the
        # mail user's target address, to ask Exchange Online's Autodiscover.
        st["redirects"] += 1
        st["exchange_online"] += 1
        return _user_el("RedirectAddress", "Redirection address.", mb.online)
    if mb.ad_redirect is not None:
        kind, target = mb.ad_redirect
        st["redirects"] += 1
        if kind == "address":
            return _user_el("RedirectAddress", "Redirection address.", target)
        return _user_el("RedirectUrl", "Redirection URL.", target)
    home = sim.home(mb)
    version = sim.config.version
    old = version in ("Exchange2007_SP1", "Exchange2010", "Exchange2010_SP1", "Exchange2010_SP2")
    ews_url = sim.public_ews_url()
    values = {
        "UserDisplayName": mb.name,
        "UserDN": "/o=SIM/ou=Exchange Administrative Group (FYDIBOHF23SPDLT)/cn=Recipients/cn=%s"
                  % mb.smtp.split("@")[0],
        "UserDeploymentId": "5d5a2b5b-9e37-4c4e-8d29-2ba4d65b2a17",
        "AutoDiscoverSMTPAddress": mb.smtp,
        "ExternalEwsUrl": ews_url, "InternalEwsUrl": ews_url,
        "InternalMailboxServer": home,
        "ExternalMailboxServer": "mail.sim.example.local",
        "MailboxDN": "/o=SIM/ou=Exchange Administrative Group (FYDIBOHF23SPDLT)/cn=Configuration/"
                     "cn=Servers/cn=%s/cn=Microsoft Private MDB" % home.split(".")[0],
        "CasVersion": CAS_VERSION.get(version, "15.01.2507.006"),
        "EwsSupportedSchemas": SCHEMAS.get(version, SCHEMAS_2013),
        "ExternalEwsVersion": CAS_VERSION.get(version, "15.01.2507.006"),
    }
    if not old:  # Exchange 2013 SP1 and later
        values["GroupingInformation"] = sim.grouping(mb)
    errs = []
    settings = []
    for n in names:
        if n in values:
            settings.append(a("UserSetting", attrs={"{%s}type" % XSI: "StringSetting"}, kids=[
                a("Name", n), a("Value", values[n])]))
        else:
            code = "SettingIsNotAvailable" if n in SETTINGS else "InvalidSetting"
            errs.append(a("UserSettingError", kids=[
                a("ErrorCode", code),
                a("ErrorMessage", "User setting '%s' is not available." % n if code ==
                  "SettingIsNotAvailable" else "The requested setting is invalid."),
                a("SettingName", n)]))
    return _user_el("NoError", "No error.", None, errs, settings)


def _user_el(code, message, redirect=None, errors=(), settings=()):
    return a("UserResponse", kids=[
        a("ErrorCode", code), a("ErrorMessage", message),
        a("RedirectTarget", redirect) if redirect is not None else
        a("RedirectTarget", attrs={"{%s}nil" % XSI: "true"}),
        a("UserSettingErrors", kids=list(errors)), a("UserSettings", kids=list(settings))])


def _answer(sim, code, message, users):
    resp = a("Response", kids=[a("ErrorCode", code), a("ErrorMessage", message),
                               a("UserResponses", kids=users)])
    body = a("GetUserSettingsResponseMessage", kids=[resp])
    env = El(SOAP, "Envelope")
    hdr = env.add(SOAP, "Header")
    hdr.append(El(WSA, "Action", {"{%s}mustUnderstand" % SOAP: "1"}, None,
                  AD + "/Autodiscover/GetUserSettingsResponse"))
    env.add(SOAP, "Body").append(body)
    data = sim.declaration() + sim.render(env)
    sim.stats.count("GetUserSettings", code)
    return Response(200, data, [("Content-Type", sim.content_type())])
