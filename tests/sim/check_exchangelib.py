#!/usr/bin/python3
"""Independent check of the EWS simulator with Debian's exchangelib as the client.

exchangelib talks to the simulator with an explicit endpoint and version, over NTLM
and Basic, with impersonation: streaming, push and pull subscriptions, CalendarView
with a recurring series, free/busy and OOF; https too.  Then the grouping model:
SOAP Autodiscover GetUserSettings (batched, redirects) through exchangelib's own
Autodiscover service, a mailbox move, the refuse-grouping and realserver server
profiles, and an automatic-reply change that raises no notification.
Exit status: 0 pass, 77 skip (exchangelib missing), 1 failure.
"""
import datetime
import http.server
import os
import subprocess
import sys
import tempfile
import threading
import time
import traceback
import logging

HERE = os.path.dirname(os.path.abspath(__file__))
sys.dont_write_bytecode = True  # the source tree may be read-only (distcheck)
sys.path.insert(0, HERE)

OPENSSL_CNF = """openssl_conf = openssl_init
[openssl_init]
providers = provider_sect
[provider_sect]
default = default_sect
legacy = legacy_sect
[default_sect]
activate = 1
[legacy_sect]
activate = 1
"""


def reexec_with_legacy_provider():
    """exchangelib's NTLM needs MD4: activate OpenSSL 3's legacy provider for this process."""
    if os.environ.get("EWSSIM_CHECK_CHILD") == "1":
        return None
    tmp = tempfile.mkdtemp(prefix="ewssim-check-")
    cnf = os.path.join(tmp, "openssl.cnf")
    with open(cnf, "w", encoding="ascii") as fh:
        fh.write(OPENSSL_CNF)
    env = dict(os.environ, OPENSSL_CONF=cnf, EWSSIM_CHECK_CHILD="1", EWSSIM_CHECK_TMP=tmp)
    try:
        return subprocess.call([sys.executable, os.path.abspath(__file__)] + sys.argv[1:], env=env)
    finally:
        import shutil
        shutil.rmtree(tmp, ignore_errors=True)


FAILURES = []


def check(cond, what):
    print("%s %s" % ("ok  " if cond else "FAIL", what), flush=True)
    if not cond:
        FAILURES.append(what)


class PushListener:
    """Receives SendNotification POSTs and answers OK (or Unsubscribe once asked)."""

    def __init__(self):
        self.posts = []
        self.answer = "OK"
        outer = self

        class Handler(http.server.BaseHTTPRequestHandler):
            def do_POST(self):  # noqa: N802
                n = int(self.headers.get("Content-Length", "0"))
                outer.posts.append(self.rfile.read(n).decode("utf-8", "replace"))
                body = ('<?xml version="1.0" encoding="utf-8"?><soap:Envelope xmlns:soap='
                        '"http://schemas.xmlsoap.org/soap/envelope/"><soap:Body><SendNotificationResult '
                        'xmlns="http://schemas.microsoft.com/exchange/services/2006/messages">'
                        '<SubscriptionStatus>%s</SubscriptionStatus></SendNotificationResult>'
                        '</soap:Body></soap:Envelope>' % outer.answer).encode()
                self.send_response(200)
                self.send_header("Content-Type", "text/xml; charset=utf-8")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, *a):
                pass

        self.server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = "http://127.0.0.1:%d/push" % self.server.server_address[1]
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    def wait_for(self, needle, timeout=10):
        deadline = time.time() + timeout
        while time.time() < deadline:
            if any(needle in p for p in self.posts):
                return True
            time.sleep(0.05)
        return False

    def close(self):
        self.server.shutdown()


def make_cert(tmp):
    key = os.path.join(tmp, "key.pem")
    crt = os.path.join(tmp, "cert.pem")
    r = subprocess.run(["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-keyout", key,
                        "-out", crt, "-days", "2", "-subj", "/CN=127.0.0.1"],
                       stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, check=False)
    return (crt, key) if r.returncode == 0 else (None, None)


def account_for(exl, url, user, password, auth, smtp):
    cfg = exl.Configuration(service_endpoint=url, credentials=exl.Credentials(user, password),
                            auth_type=auth, version=exl.Version(build=exl.Build(15, 1, 2507, 6)))
    return exl.Account(primary_smtp_address=smtp, config=cfg, access_type=exl.IMPERSONATION,
                       autodiscover=False, default_timezone=exl.UTC)


def run():
    try:
        import exchangelib as exl
        from exchangelib.protocol import BaseProtocol, NoVerifyHTTPAdapter
    except Exception as exc:  # noqa: BLE001
        print("SKIP: exchangelib not importable: %s" % exc)
        return 77
    from simharness import Simulator
    import hashlib
    try:
        hashlib.new("md4", b"")
    except ValueError:
        print("SKIP: MD4 unavailable even with the legacy provider (exchangelib NTLM needs it)")
        return 77
    tmp = os.environ.get("EWSSIM_CHECK_TMP") or tempfile.mkdtemp()
    crt, key = make_cert(tmp)
    directory = os.path.join(HERE, "directory-sample.json")
    opts = dict(directory=directory, minute_seconds=2, heartbeat_seconds=0.5)
    BaseProtocol.HTTP_ADAPTER_CLS = NoVerifyHTTPAdapter
    import warnings
    warnings.filterwarnings("ignore", message="Unverified HTTPS request")
    with Simulator(**opts) as sim:
        url = sim.ews_url
        for auth in (exl.NTLM, exl.BASIC):
            acc = account_for(exl, url, "CORP\\svc-ewsgw" if auth == exl.NTLM else "svc-ewsgw",
                              "Passw0rd!", auth, "alice@example.com")
            check(acc.oof_settings.state == "Disabled", "%s: OOF of alice is Disabled" % auth)
        acc = account_for(exl, url, "CORP\\svc-ewsgw", "Passw0rd!", exl.NTLM, "alice@example.com")
        bob = account_for(exl, url, "CORP\\svc-ewsgw", "Passw0rd!", exl.NTLM, "bob@example.com")
        check(bob.oof_settings.state == "Scheduled", "bob OOF Scheduled")

        # wrong password
        bad = account_for(exl, url, "CORP\\svc-ewsgw", "nope", exl.NTLM, "alice@example.com")
        try:
            bad.oof_settings
            check(False, "wrong password refused")
        except Exception as exc:  # noqa: BLE001
            check("401" in str(exc) or "nauthorized" in str(exc) or "credentials" in str(exc).lower(),
                  "wrong password refused (%s)" % type(exc).__name__)

        # CalendarView with a recurring series expanded
        now = datetime.datetime.now(datetime.timezone.utc)
        start = exl.EWSDateTime.from_datetime(now - datetime.timedelta(days=2))
        end = exl.EWSDateTime.from_datetime(now + datetime.timedelta(days=3))
        items = list(acc.calendar.view(start=start, end=end))
        standups = [i for i in items if i.subject and i.subject.startswith("Daily stand-up")]
        check(len(standups) == 5, "CalendarView expands the daily series (got %d occurrences)" % len(standups))
        check(all(i.type == "Occurrence" for i in standups), "occurrences have CalendarItemType Occurrence")
        check(any(i.legacy_free_busy_status == "Tentative" for i in items), "tentative item present")
        check(any(i.is_all_day for i in items), "all-day item present")
        check(any(i.is_cancelled for i in items), "cancelled item present")
        check(any(i.sensitivity == "Private" for i in items), "private item present")
        check(any(i.legacy_free_busy_status == "WorkingElsewhere" for i in items), "working-elsewhere present")

        # free/busy
        fb_start = exl.EWSDateTime.from_datetime((now - datetime.timedelta(hours=1)).replace(minute=0, second=0, microsecond=0))
        fb_end = fb_start + datetime.timedelta(hours=12)
        views = list(acc.protocol.get_free_busy_info(
            accounts=[(acc, "Required", False), (bob, "Required", False)], start=fb_start, end=fb_end,
            merged_free_busy_interval=30, requested_view="DetailedMerged"))
        check(len(views) == 2, "free/busy for two mailboxes")
        v = views[0]
        check(v.merged is not None and len(v.merged) == 24, "MergedFreeBusy has 24 half-hour digits")
        check("1" in (v.merged or "") and "3" in (v.merged or ""), "merged shows tentative (1) and OOF (3): %s" % v.merged)
        types = sorted(e.busy_type for e in (v.calendar_events or []))
        check("OOF" in types and "Tentative" in types, "calendar events carry BusyType: %s" % types)

        # streaming: CreatedEvent after an item is created through the control API
        sub_id = acc.calendar.subscribe_to_streaming()
        check(bool(sub_id), "streaming subscription created")

        def create_later():
            time.sleep(0.7)
            sim.add_item("alice@example.com", {"subject": "Created by check", "start": "now+1h",
                                               "end": "now+2h"})
        seen = stream_events(acc, create_later, sub_id)
        check("CreatedEvent" in seen, "streaming delivered CreatedEvent (%s)" % seen)

        # pull
        pull_id, wm = acc.calendar.subscribe_to_pull(timeout=5)
        sim.add_item("alice@example.com", {"subject": "Pulled", "start": "now+3h", "end": "now+4h"})
        names = []
        for note in acc.calendar.get_events(pull_id, wm):
            names.extend(type(e).__name__ for e in note.events)
        check("CreatedEvent" in names, "pull GetEvents returned CreatedEvent (%s)" % names)
        acc.calendar.unsubscribe(pull_id)

        # push
        listener = PushListener()
        try:
            push_id, _wm = acc.calendar.subscribe_to_push(callback_url=listener.url, status_frequency=1)
            check(listener.wait_for("StatusEvent"), "push: first StatusEvent delivered")
            sim.add_item("alice@example.com", {"subject": "Pushed", "start": "now+5h", "end": "now+6h"})
            check(listener.wait_for("CreatedEvent"), "push: CreatedEvent delivered")
            listener.answer = "Unsubscribe"
            sim.add_item("alice@example.com", {"subject": "Pushed 2", "start": "now+5h", "end": "now+6h"})
            deadline = time.time() + 10
            gone = False
            while time.time() < deadline and not gone:
                _, subs = sim.control("GET", "/subscriptions")
                gone = all(s["id"] != push_id for s in subs["subscriptions"])
                time.sleep(0.1)
            check(gone, "push: answering Unsubscribe ends the subscription")
        finally:
            listener.close()
        st = sim.stats()
        check(st["auth"].get("ntlm_ok_v2", 0) >= 1, "exchangelib authenticated with NTLMv2")
        check(st["auth"].get("basic_ok", 0) >= 1, "exchangelib authenticated with Basic")
        check(st["violations_total"] == 0, "no violations recorded: %s" % st["violations"])
        if st["schema_invalid"]:
            print("note: schema validation active and %d requests invalid" % st["schema_invalid"])

    with Simulator(**opts) as sim:
        check_grouping_model(exl, sim)

    if crt:
        with Simulator(tls_cert=crt, tls_key=key, **opts) as sim:
            check(sim.ews_url.startswith("https://"), "https endpoint")
            acc = account_for(exl, sim.ews_url, "CORP\\svc-ewsgw", "Passw0rd!", exl.NTLM, "alice@example.com")
            check(acc.oof_settings.state == "Disabled", "https + NTLM works")
    else:
        print("note: openssl not available, https not checked")
    return 1 if FAILURES else 0


AD_SETTINGS = ["grouping_information", "external_ews_url", "internal_ews_url", "internal_mailbox_server",
               "external_mailbox_server"]


def user_settings(exl, sim, users):
    """exchangelib's SOAP Autodiscover GetUserSettings, pointed at the simulator."""
    from exchangelib.autodiscover.protocol import AutodiscoverProtocol
    from exchangelib.services import GetUserSettings
    proto = AutodiscoverProtocol(config=exl.Configuration(
        service_endpoint=sim.autodiscover_url, credentials=exl.Credentials("CORP\\svc-ewsgw", "Passw0rd!"),
        auth_type=exl.NTLM, version=exl.Version(build=exl.Build(15, 1, 2507, 6))))
    return list(GetUserSettings(protocol=proto).call(users=users, settings=AD_SETTINGS))


def stream_events(acc, action, sub_id=None, timeout=1):
    """Stream acc's calendar (a new subscription unless sub_id) while action() runs
    in a thread, unsubscribe; -> the event names seen."""
    if sub_id is None:
        sub_id = acc.calendar.subscribe_to_streaming()
    th = threading.Thread(target=action)
    th.start()
    seen = []
    for notification in acc.calendar.get_streaming_events(sub_id, connection_timeout=timeout):
        seen.extend(type(e).__name__ for e in notification.events)
    th.join()
    acc.calendar.unsubscribe(sub_id)
    return seen


def check_grouping_model(exl, sim):
    url = sim.ews_url
    for mb in ({"smtp": "ga1@example.com", "server": 1}, {"smtp": "gb1@example.com", "server": 2},
               {"smtp": "redir@example.com", "autodiscover_redirect": {"url": "https://ad.eu.example.com/"
                                                                                "autodiscover/autodiscover.svc"}}):
        sim.control("POST", "/mailboxes", mb)

    # Autodiscover: one batched GetUserSettings, per-user answers in request order
    got = user_settings(exl, sim, ["ga1@example.com", "gb1@example.com", "nobody@example.com",
                                   "redir@example.com"])
    check(len(got) == 4, "GetUserSettings answered 4 users in one request")
    a, b, nobody, redir = got
    check(a.error_code is None and a.user_settings.get("grouping_information") == "SIMDAG01",
          "ga1: GroupingInformation SIMDAG01 (%s)" % a.user_settings)
    check(b.user_settings.get("internal_mailbox_server") == "MBX02.sim.example.local" and
          b.user_settings.get("grouping_information") == "SIMDAG02", "gb1 lives on MBX02 / SIMDAG02")
    check(a.ews_url == url and a.user_settings.get("internal_ews_url") == url, "ExternalEwsUrl/InternalEwsUrl")
    check(nobody.error_code == "InvalidUser", "unknown user: InvalidUser (%s)" % nobody.error_code)
    check(redir.redirect_url == "https://ad.eu.example.com/autodiscover/autodiscover.svc",
          "RedirectUrl read by exchangelib")
    check(sim.stats()["autodiscover"]["max_users"] == 4, "the simulator saw one 4-user request")

    # a mailbox move: refused while it runs, a new server and grouping afterwards
    ga1 = account_for(exl, url, "CORP\\svc-ewsgw", "Passw0rd!", exl.NTLM, "ga1@example.com")
    ga1.oof_settings  # noqa: B018 - a first request on a healthy mailbox
    sim.control("POST", "/mailboxes/ga1@example.com/move", {"to": 3, "duration_s": 1.5})
    try:
        ga1.calendar.subscribe_to_streaming()
        check(False, "Subscribe refused during the move")
    except Exception as exc:  # noqa: BLE001
        check("ErrorMailboxMoveInProgress" in type(exc).__name__ + str(exc),
              "Subscribe during the move: %s" % type(exc).__name__)
    time.sleep(1.6)
    (after,) = user_settings(exl, sim, ["ga1@example.com"])
    check(after.user_settings.get("grouping_information") == "SIMDAG03" and
          after.user_settings.get("internal_mailbox_server") == "MBX03.sim.example.local",
          "after the move: SIMDAG03 on MBX03")
    check(bool(ga1.calendar.subscribe_to_streaming()), "Subscribe works after the move")

    # an automatic reply switched on raises nothing (as on Exchange)
    alice = account_for(exl, url, "CORP\\svc-ewsgw", "Passw0rd!", exl.NTLM, "alice@example.com")
    before = sim.stats()["events_raised"]

    def oof_on():
        time.sleep(0.5)
        sim.control("PUT", "/mailboxes/alice@example.com/oof", {"state": "Enabled"})
    seen = stream_events(alice, oof_on)
    check(seen == [] and sim.stats()["events_raised"] == before, "OOF change: no event (%s)" % seen)
    check(alice.oof_settings.state == "Enabled", "OOF read shows Enabled")
    sim.control("PUT", "/mailboxes/alice@example.com/oof", {"state": "Disabled"})

    # refuse-grouping: a second mailbox's id on alice's stream closes it
    sim.control("POST", "/config", {"profiles": ["refuse-grouping"]})
    bob = account_for(exl, url, "CORP\\svc-ewsgw", "Passw0rd!", exl.NTLM, "bob@example.com")
    a_id = alice.calendar.subscribe_to_streaming()
    b_id = bob.calendar.subscribe_to_streaming()
    try:
        list(alice.calendar.get_streaming_events([a_id, b_id], connection_timeout=1))
        check(False, "refuse-grouping: mixed stream refused")
    except Exception as exc:  # noqa: BLE001
        check("ErrorInvalidSubscription" in type(exc).__name__ + str(exc),
              "refuse-grouping: %s" % type(exc).__name__)
    g = sim.stats()["grouping"]
    check(g["refused_ids"] == 1 and g["closed_by_foreign_id"] == 1, "refused id counted: %s" % g)

    def create_for_bob():
        time.sleep(0.5)
        sim.add_item("bob@example.com", {"subject": "own stream", "start": "now+1h", "end": "now+2h"})
    names = stream_events(bob, create_for_bob, b_id)
    check("CreatedEvent" in names, "refuse-grouping: the owner's own stream works (%s)" % names)
    alice.calendar.unsubscribe(a_id)
    subs = sim.stats()["subscriptions"]
    check(subs["unsubscribed"] >= 2, "released subscriptions counted: %s" % subs)

    # realserver shapes: prefixes, no declaration, text/xml, no watermarks, a status
    # envelope at a fixed cadence, a notification per subscription, Closed twice
    sim.control("POST", "/config", {"profiles": ["realserver"], "heartbeat_s": 0.3})
    check(bob.oof_settings.state == "Scheduled", "realserver: exchangelib reads OOF")

    def create_for_alice():
        time.sleep(0.5)
        sim.add_item("alice@example.com", {"subject": "realserver", "start": "now+1h", "end": "now+2h"})
    seen = stream_events(alice, create_for_alice)
    check("CreatedEvent" in seen, "realserver: streaming CreatedEvent (%s)" % seen)
    now = datetime.datetime.now(datetime.timezone.utc)
    items = list(alice.calendar.view(start=exl.EWSDateTime.from_datetime(now - datetime.timedelta(days=2)),
                                     end=exl.EWSDateTime.from_datetime(now + datetime.timedelta(days=3))))
    check(any(i.subject == "realserver" for i in items), "realserver: CalendarView items read")
    if all(i.start is None for i in items):
        print("note: exchangelib %s cannot read times with nine fractional digits (start/end None)"
              % getattr(exl, "__version__", "?"))
    sim.control("POST", "/config", {"profiles": []})
    check(sim.stats()["violations_total"] == 0, "grouping model: no violations: %s" % sim.stats()["violations"])


def main():
    logging.getLogger("exchangelib").setLevel(logging.ERROR)
    rc = reexec_with_legacy_provider()
    if rc is not None:
        return rc
    try:
        return run()
    except Exception:  # noqa: BLE001
        traceback.print_exc()
        return 1


if __name__ == "__main__":
    sys.exit(main())
