#!/usr/bin/python3
# ewsgw - Exchange calendar presence gateway
# SPDX-License-Identifier: ISC
#
# ewsgw --verify against the EWS simulator set up with each
# misconfiguration an Exchange administrator typically leaves behind:
# the exact verdict and fix of the check concerned, the exit code, that
# the run leaves no subscription behind and never prints the password.
import datetime
import json
import os
import re
import subprocess
import sys
import tempfile
import time
import unittest

TOP_SRCDIR = os.environ.get("top_srcdir") or os.path.abspath(
    os.path.join(os.path.dirname(__file__), "..", ".."))
TOP_BUILDDIR = os.environ.get("top_builddir") or TOP_SRCDIR
EWSGW = os.environ.get("EWSGW") or os.path.join(TOP_BUILDDIR, "ewsgw")
EWSGWCTL = os.environ.get("EWSGWCTL") or os.path.join(TOP_BUILDDIR, "ewsgwctl")
SIMDIR = os.path.join(TOP_SRCDIR, "tests", "sim")
DIRECTORY = os.path.join(SIMDIR, "directory-sample.json")

sys.path.insert(0, SIMDIR)
try:
    import lxml.etree  # noqa: F401  (the simulator needs it)
    from simharness import Simulator
except ImportError as exc:
    print("SKIP: simulator unavailable: %s" % exc)
    sys.exit(77)

if not os.access(EWSGW, os.X_OK):
    print("SKIP: %s not built" % EWSGW)
    sys.exit(77)

SVC = ("CORP\\svc-ewsgw", "Passw0rd!")
LIMITED = ("CORP\\svc-limited", "Limited1!")
CAROL_SMTP = "carol.external@mail.example.net"
CAROL_UPN = "carol@corp.example.local"

FIX_NTLM_VDIR = ("enable Windows Authentication (NTLM) on the EWS virtual "
                 "directory: Set-WebServicesVirtualDirectory -Identity "
                 "'SERVER\\EWS (Default Web Site)' -WindowsAuthentication "
                 "$true; or set auth = basic in [exchange]")
FIX_RIGHTS = ("New-ManagementRoleAssignment -Name ewsgw-impersonation -Role "
              "ApplicationImpersonation -User svc-limited (add "
              "-CustomRecipientWriteScope SCOPE to limit it to the watched "
              "mailboxes)")
FIX_UPN = ("if the SMTP address is not the primary alias@FQDN, impersonate "
           "by UPN: write upn=user@ad.domain after it in the mailbox list")
FIX_PUSH = ("use mode = push (Exchange 2007 SP1 supports push "
            "notifications)")
FIX_CONCURRENCY = ("raise EWSMaxConcurrency: Set-ThrottlingPolicy POLICY "
                   "-EWSMaxConcurrency 10 (Get-ThrottlingPolicyAssociation "
                   "svc-ewsgw names POLICY), or set max_concurrency = 3 in "
                   "[throttling]")
FIX_EXPIRED = ("renew the Exchange certificate and bind it to IIS: "
               "New-ExchangeCertificate, then Enable-ExchangeCertificate "
               "-Thumbprint THUMBPRINT -Services IIS")

HEAD = re.compile(r"^(PASS|WARN|FAIL)  (\S+) +(.*)$")


def parse_report(text):
    """The text report as a list of {verdict, name, summary, seen, fix}."""
    checks = []
    for line in text.splitlines():
        m = HEAD.match(line)
        if m:
            checks.append({"verdict": m.group(1), "name": m.group(2),
                           "summary": m.group(3), "seen": None, "fix": None})
        elif line.startswith("      seen: "):
            checks[-1]["seen"] = line[len("      seen: "):]
        elif line.startswith("      fix:  "):
            checks[-1]["fix"] = line[len("      fix:  "):]
    return checks


def make_cert(path_cert, path_key, not_before, not_after):
    """A self-signed certificate for 127.0.0.1 (also its own CA)."""
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID
    import ipaddress

    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME,
                                         "ews.test.example")])
    cert = (x509.CertificateBuilder()
            .subject_name(name).issuer_name(name)
            .public_key(key.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(not_before).not_valid_after(not_after)
            .add_extension(x509.SubjectAlternativeName([
                x509.DNSName("localhost"),
                x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]),
                critical=False)
            .add_extension(x509.BasicConstraints(ca=True, path_length=None),
                           critical=True)
            .sign(key, hashes.SHA256()))
    with open(path_cert, "wb") as f:
        f.write(cert.public_bytes(serialization.Encoding.PEM))
    with open(path_key, "wb") as f:
        f.write(key.private_bytes(serialization.Encoding.PEM,
                                  serialization.PrivateFormat.PKCS8,
                                  serialization.NoEncryption()))


class VerifyTest(unittest.TestCase):
    def setUp(self):
        self.tmp = tempfile.TemporaryDirectory(prefix="ewsgw-verify-")
        self.dir = self.tmp.name

    def tearDown(self):
        self.tmp.cleanup()

    def sim(self, **kw):
        opts = dict(directory=DIRECTORY, minute_seconds=1,
                    heartbeat_seconds=0.5)
        opts.update(kw)
        return Simulator(**opts)

    def config(self, url, account=SVC, mailboxes=("alice@example.com",),
               exchange="", sections=""):
        pw = os.path.join(self.dir, "password")
        with open(os.open(pw, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600),
                  "w") as f:
            f.write(account[1] + "\n")
        text = ("[exchange]\nurl = %s\nusername = %s\npassword_file = %s\n"
                "%s\n[mailboxes]\n%s\n%s\n[sink log]\ntype = log\n"
                % (url, account[0], pw, exchange,
                   "".join("mailbox = %s\n" % m for m in mailboxes),
                   sections))
        path = os.path.join(self.dir, "ewsgw.conf")
        with open(path, "w") as f:
            f.write(text)
        return path

    def verify(self, conf, *args):
        r = subprocess.run([EWSGW, "--verify", "-c", conf] + list(args),
                           capture_output=True, text=True, timeout=180)
        for secret in (SVC[1], LIMITED[1]):
            self.assertNotIn(secret, r.stdout + r.stderr)
        return r

    def check(self, checks, name, mailbox=None):
        found = [c for c in checks if c["name"] == name and
                 (mailbox is None or c["summary"].startswith(mailbox + ":"))]
        self.assertEqual(len(found), 1, "%s %s in %r" % (name, mailbox,
                                                         checks))
        return found[0]

    def assert_clean(self, sim):
        self.assertEqual(sim.control("GET", "/subscriptions")[1],
                         {"subscriptions": []})
        self.assertEqual(sim.stats()["violations_total"], 0)

    def test_clean_run_passes(self):
        with self.sim() as sim:
            conf = self.config(sim.ews_url, mailboxes=(
                "alice@example.com", "bob@example.com",
                "%s upn=%s" % (CAROL_SMTP, CAROL_UPN)))
            r = self.verify(conf)
            self.assertEqual(r.returncode, 0, r.stdout + r.stderr)
            checks = parse_report(r.stdout)
            self.assertEqual([c["name"] for c in checks],
                             ["connect", "auth-schemes", "login", "version",
                              "mode", "impersonation", "impersonation",
                              "impersonation", "subscription", "find-count"])
            self.assertTrue(all(c["verdict"] == "PASS" for c in checks),
                            r.stdout)
            self.assertEqual(self.check(checks, "impersonation",
                                        CAROL_SMTP)["summary"],
                             "%s: impersonated by PrincipalName %s"
                             % (CAROL_SMTP, CAROL_UPN))
            self.assertIn("created and removed again",
                          self.check(checks, "subscription")["summary"])
            self.assertIn("10 passed, 0 warnings, 0 failed", r.stdout)
            self.assert_clean(sim)

    def test_json_shape(self):
        with self.sim() as sim:
            conf = self.config(sim.ews_url, mailboxes=(
                "alice@example.com", "bob@example.com"))
            r = self.verify(conf, "--json", "--mailbox", "bob@example.com")
            self.assertEqual(r.returncode, 0, r.stdout + r.stderr)
            doc = json.loads(r.stdout)
            self.assertIs(doc["ok"], True)
            self.assertIsInstance(doc["checks"], list)
            for c in doc["checks"]:
                self.assertLessEqual({"name", "verdict", "seen", "fix"},
                                     set(c))
                self.assertIn(c["verdict"], ("PASS", "WARN", "FAIL"))
            imp = [c for c in doc["checks"] if c["name"] == "impersonation"]
            # --mailbox narrows the sample to that mailbox.
            self.assertEqual([c["mailbox"] for c in imp], ["bob@example.com"])
            self.assert_clean(sim)

    def test_rights_missing_for_one_mailbox(self):
        with self.sim() as sim:
            conf = self.config(sim.ews_url, account=LIMITED, mailboxes=(
                "alice@example.com", "bob@example.com"))
            r = self.verify(conf)
            self.assertEqual(r.returncode, 1, r.stdout)
            checks = parse_report(r.stdout)
            self.assertEqual(self.check(checks, "impersonation",
                                        "alice@example.com")["verdict"],
                             "PASS")
            bob = self.check(checks, "impersonation", "bob@example.com")
            self.assertEqual(bob["verdict"], "FAIL")
            self.assertIn("ErrorImpersonateUserDenied", bob["summary"])
            self.assertEqual(bob["fix"], FIX_RIGHTS)
            # The rest runs on the mailbox that works.
            self.assertEqual(self.check(checks, "subscription")["verdict"],
                             "PASS")
            self.assert_clean(sim)

    def test_upn_needed(self):
        with self.sim() as sim:
            conf = self.config(sim.ews_url, mailboxes=(CAROL_SMTP,))
            r = self.verify(conf)
            self.assertEqual(r.returncode, 1, r.stdout)
            carol = self.check(parse_report(r.stdout), "impersonation")
            self.assertEqual(carol["verdict"], "FAIL")
            self.assertIn("ErrorNonExistentMailbox", carol["seen"])
            self.assertEqual(carol["fix"], FIX_UPN)

            # Trying the UPN from the command line, then from the list.
            r = self.verify(conf, "--mailbox", "%s upn=%s"
                            % (CAROL_SMTP, CAROL_UPN))
            self.assertEqual(r.returncode, 0, r.stdout)
            carol = self.check(parse_report(r.stdout), "impersonation")
            self.assertEqual(carol["verdict"], "PASS")
            conf = self.config(sim.ews_url, mailboxes=(
                "%s upn=%s" % (CAROL_SMTP, CAROL_UPN),))
            r = self.verify(conf)
            self.assertEqual(r.returncode, 0, r.stdout)
            carol = self.check(parse_report(r.stdout), "impersonation")
            self.assertEqual(carol["verdict"], "PASS")
            self.assertEqual(carol["summary"], "%s: impersonated by "
                             "PrincipalName %s" % (CAROL_SMTP, CAROL_UPN))
            self.assert_clean(sim)

    def test_basic_only_virtual_directory(self):
        with self.sim(auth="basic") as sim:
            conf = self.config(sim.ews_url, exchange="auth = ntlm")
            r = self.verify(conf)
            self.assertEqual(r.returncode, 1, r.stdout)
            checks = parse_report(r.stdout)
            schemes = self.check(checks, "auth-schemes")
            self.assertEqual(schemes["verdict"], "FAIL")
            self.assertEqual(schemes["summary"],
                             "server offers Basic, not NTLM (auth = ntlm)")
            self.assertEqual(schemes["fix"], FIX_NTLM_VDIR)
            # Nothing after it can work: no login attempt is reported.
            self.assertEqual(checks[-1]["name"], "auth-schemes")

            conf = self.config(sim.ews_url, exchange="auth = basic")
            r = self.verify(conf)
            self.assertEqual(r.returncode, 0, r.stdout)

    def test_exchange2007_with_streaming(self):
        with self.sim(version="Exchange2007_SP1") as sim:
            conf = self.config(sim.ews_url, exchange=(
                "version = Exchange2007_SP1\nmode = streaming"))
            r = self.verify(conf)
            self.assertEqual(r.returncode, 1, r.stdout)
            checks = parse_report(r.stdout)
            self.assertEqual(self.check(checks, "version")["verdict"],
                             "PASS")
            mode = self.check(checks, "mode")
            self.assertEqual(mode["verdict"], "FAIL")
            self.assertEqual(mode["fix"], FIX_PUSH)
            # No streaming request was sent to the 2007 server.
            self.assertEqual(sim.stats()["violations_total"], 0)

            # A request version newer than the server.
            conf = self.config(sim.ews_url, exchange="version = Exchange2013_SP1")
            r = self.verify(conf)
            self.assertEqual(r.returncode, 1, r.stdout)
            version = self.check(parse_report(r.stdout), "version")
            self.assertEqual(version["verdict"], "FAIL")
            self.assertEqual(version["fix"],
                             "set version = Exchange2007_SP1 in [exchange]")

    def test_exchange2007_with_push(self):
        with self.sim(version="Exchange2007_SP1") as sim:
            conf = self.config(sim.ews_url, exchange=(
                "version = Exchange2007_SP1\nmode = push"),
                sections=("[push]\nlisten = 127.0.0.1:1\n"
                          "url = http://127.0.0.1:1/ews/push\n"))
            r = self.verify(conf)
            self.assertEqual(r.returncode, 0, r.stdout + r.stderr)
            checks = parse_report(r.stdout)
            self.assertEqual(self.check(checks, "mode")["verdict"], "PASS")
            sub = self.check(checks, "subscription")
            self.assertEqual(sub["verdict"], "PASS")
            self.assertEqual(sub["summary"], "push subscription on the "
                             "calendar of alice@example.com created; "
                             "Exchange will call "
                             "http://127.0.0.1:1/ews/push")
            self.assertEqual(sim.stats()["violations_total"], 0)

    def tls_run(self, not_before, not_after):
        cert = os.path.join(self.dir, "cert.pem")
        key = os.path.join(self.dir, "key.pem")
        make_cert(cert, key, not_before, not_after)
        with self.sim(tls_cert=cert, tls_key=key) as sim:
            self.assertTrue(sim.ews_url.startswith("https://"))
            conf = self.config(sim.ews_url, exchange="ca_file = %s" % cert)
            return self.verify(conf)

    def test_certificate_expiring(self):
        now = datetime.datetime.now(datetime.timezone.utc)
        end = now + datetime.timedelta(days=10, hours=1)
        r = self.tls_run(now - datetime.timedelta(days=1), end)
        self.assertEqual(r.returncode, 0, r.stdout + r.stderr)
        tls = self.check(parse_report(r.stdout), "tls")
        self.assertEqual(tls["verdict"], "WARN")
        self.assertEqual(tls["summary"], "certificate for 127.0.0.1 "
                         "expires in 10 days (%s)" % end.strftime("%Y-%m-%d"))
        self.assertTrue(tls["fix"].startswith(
            "renew the Exchange certificate before %s: "
            % end.strftime("%Y-%m-%d")))

    def test_certificate_expired(self):
        now = datetime.datetime.now(datetime.timezone.utc)
        end = now - datetime.timedelta(days=2)
        r = self.tls_run(now - datetime.timedelta(days=30), end)
        self.assertEqual(r.returncode, 1, r.stdout + r.stderr)
        checks = parse_report(r.stdout)
        tls = self.check(checks, "tls")
        self.assertEqual(tls["verdict"], "FAIL")
        self.assertEqual(tls["summary"], "certificate for 127.0.0.1 "
                         "expired on %s" % end.strftime("%Y-%m-%d"))
        self.assertEqual(tls["fix"], FIX_EXPIRED)
        self.assertEqual(len(checks), 1)

    def test_valid_certificate(self):
        now = datetime.datetime.now(datetime.timezone.utc)
        end = now + datetime.timedelta(days=400)
        r = self.tls_run(now - datetime.timedelta(days=1), end)
        self.assertEqual(r.returncode, 0, r.stdout + r.stderr)
        tls = self.check(parse_report(r.stdout), "tls")
        self.assertEqual(tls["verdict"], "PASS")
        self.assertEqual(tls["summary"], "certificate for 127.0.0.1 "
                         "valid until %s" % end.strftime("%Y-%m-%d"))
        self.assertIn("issued by ews.test.example", tls["seen"])

    def probe_run(self, server_limit):
        """--probe-throttling against a 2010 SP1 server (every open stream
        is charged to the service account's EWSMaxConcurrency) allowing
        server_limit, with max_concurrency = 10 configured."""
        with self.sim(version="Exchange2010_SP1",
                      max_concurrency=server_limit) as sim:
            conf = self.config(sim.ews_url, exchange=(
                "version = Exchange2010_SP1"),
                sections="[throttling]\nmax_concurrency = 10\n")
            r = self.verify(conf, "--probe-throttling")
            self.assertEqual(r.returncode, 0, r.stdout + r.stderr)
            # The probe subscriptions are gone again.
            self.assertEqual(sim.control("GET", "/subscriptions")[1],
                             {"subscriptions": []})
            return (self.check(parse_report(r.stdout), "throttling"),
                    sim.stats()["violations"])

    def test_probe_low_concurrency(self):
        probe, violations = self.probe_run(3)
        self.assertEqual(probe["verdict"], "WARN")
        self.assertEqual(probe["summary"], "measured concurrency 3 is "
                         "below max_concurrency = 10")
        self.assertEqual(probe["fix"], FIX_CONCURRENCY)
        # Only the probe itself went over the limit: 11 opened, 8 refused.
        self.assertEqual(violations, {"concurrency": 8})

    def test_probe_enough_concurrency(self):
        probe, violations = self.probe_run(10)
        self.assertEqual(probe["verdict"], "PASS")
        self.assertEqual(probe["summary"], "measured concurrency 10, "
                         "max_concurrency = 10 is configured")
        self.assertEqual(violations, {"concurrency": 1})

    def test_find_count_limit_lower_on_server(self):
        with self.sim(find_count_limit=2) as sim:
            conf = self.config(sim.ews_url)
            r = self.verify(conf)
            self.assertEqual(r.returncode, 0, r.stdout)
            fc = self.check(parse_report(r.stdout), "find-count")
            self.assertEqual(fc["verdict"], "WARN")
            self.assertEqual(fc["summary"], "the server cut FindItem at 2 "
                             "items: its EWSFindCountLimit is below "
                             "find_count_limit = 1000")

    def test_wrong_password(self):
        with self.sim(auth="ntlm") as sim:
            conf = self.config(sim.ews_url, account=("CORP\\svc-ewsgw",
                                                     "not-the-password"))
            r = self.verify(conf)
            self.assertNotIn("not-the-password", r.stdout + r.stderr)
            self.assertEqual(r.returncode, 1, r.stdout)
            login = self.check(parse_report(r.stdout), "login")
            self.assertEqual(login["verdict"], "FAIL")
            self.assertTrue(login["summary"].startswith(
                "the server refused the login of CORP\\svc-ewsgw"))

    def test_nothing_listening(self):
        conf = self.config("http://127.0.0.1:1/EWS/Exchange.asmx")
        r = self.verify(conf)
        self.assertEqual(r.returncode, 1, r.stdout)
        checks = parse_report(r.stdout)
        self.assertEqual(len(checks), 1)
        self.assertEqual(checks[0]["name"], "connect")
        self.assertEqual(checks[0]["verdict"], "FAIL")

    def test_ewsgwctl_verify(self):
        """The same checks from the running daemon, over the control
        socket (the daemon always offers verify: "not available" fails)."""
        if not os.access(EWSGWCTL, os.X_OK):
            self.skipTest("ewsgwctl not built")
        sock = os.path.join(self.dir, "status.sock")
        with self.sim() as sim:
            conf = self.config(sim.ews_url, account=LIMITED, mailboxes=(
                "alice@example.com", "bob@example.com"),
                sections="[status]\nsocket = %s\n" % sock)
            log = open(os.path.join(self.dir, "daemon.log"), "w")
            daemon = subprocess.Popen([EWSGW, "-f", "-c", conf],
                                      stdout=log, stderr=log)
            try:
                deadline = time.monotonic() + 20
                while not os.path.exists(sock):
                    self.assertIsNone(daemon.poll(), "daemon exited")
                    self.assertLess(time.monotonic(), deadline)
                    time.sleep(0.05)
                r = subprocess.run([EWSGWCTL, "-s", sock, "--json",
                                    "verify"], capture_output=True,
                                   text=True, timeout=60)
            finally:
                daemon.terminate()
                daemon.wait(timeout=30)
                log.close()
            doc = json.loads(r.stdout)
            self.assertIs(doc["ok"], True, r.stdout)
            self.assertIs(doc["passed"], False)
            self.assertNotEqual(r.returncode, 0)
            bob = [c for c in doc["checks"] if c.get("mailbox") ==
                   "bob@example.com" and c["name"] == "impersonation"]
            self.assertEqual(len(bob), 1, r.stdout)
            self.assertEqual(bob[0]["verdict"], "FAIL")
            self.assertEqual(bob[0]["fix"], FIX_RIGHTS)
            self.assertNotIn(LIMITED[1], r.stdout)

    def test_ewsgwctl_verify_inside_the_budget(self):
        """verify over the control socket while the daemon holds every
        slot of max_concurrency: its requests wait for the daemon's
        budget, so the server never sees more than max_concurrency at
        once (before, they went out beside the daemon's)."""
        if not os.access(EWSGWCTL, os.X_OK):
            self.skipTest("ewsgwctl not built")
        sock = os.path.join(self.dir, "status.sock")
        n = 40
        mbx = ["user%06d@example.com" % i for i in range(1, n + 1)]
        # Every request takes 0.4 s: the daemon's first sync of 40
        # mailboxes keeps both slots busy for several seconds.
        with self.sim(generate=n, max_concurrency=2, latency_ms=400) as sim:
            conf = self.config(sim.ews_url, mailboxes=mbx, sections=(
                "[throttling]\nmax_concurrency = 2\n"
                "[status]\nsocket = %s\n" % sock))
            log = open(os.path.join(self.dir, "daemon.log"), "w")
            daemon = subprocess.Popen([EWSGW, "-f", "-c", conf],
                                      stdout=log, stderr=log)
            try:
                deadline = time.monotonic() + 30
                # The daemon is at its limit: two requests in flight.
                while True:
                    self.assertIsNone(daemon.poll(), "daemon exited")
                    self.assertLess(time.monotonic(), deadline)
                    conc = sim.stats()["concurrency"]
                    if os.path.exists(sock) and \
                            max([c["now"] for c in conc.values()] + [0]) >= 2:
                        break
                    time.sleep(0.02)
                before = sum(sum(c.values()) for c in
                             sim.stats()["requests"].values())
                r = subprocess.run([EWSGWCTL, "-s", sock, "--json",
                                    "verify"], capture_output=True,
                                   text=True, timeout=60)
                stats = sim.stats()
            finally:
                daemon.terminate()
                daemon.wait(timeout=30)
                log.close()
            doc = json.loads(r.stdout)
            self.assertIs(doc["ok"], True, r.stdout)
            self.assertIs(doc["complete"], True, r.stdout)
            self.assertIs(doc["passed"], True, r.stdout)
            self.assertEqual(r.returncode, 0)
            # The daemon kept working while the checks ran ...
            after = sum(sum(c.values()) for c in stats["requests"].values())
            self.assertGreater(after - before, 10, stats["requests"])
            # ... and the two together stayed inside the budget.
            self.assertEqual(stats["violations_total"], 0,
                             stats["violations"])
            peaks = [c["peak"] for c in stats["concurrency"].values()]
            self.assertEqual(max(peaks), 2, stats["concurrency"])


if __name__ == "__main__":
    unittest.main(verbosity=2)
