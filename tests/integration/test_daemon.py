"""The daemon binary itself: options, --check-config, start-up with
sd_notify, SIGHUP with a good and a bad file, SIGTERM exit code, and no
secret in any output."""
import http.server
import os
import signal
import socket
import ssl
import subprocess
import sys
import tempfile
import threading
import time
import unittest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from ewsgwtest import (Daemon, EWSGW, TOP_SRCDIR, check_config,  # noqa: E402
                       wait_for)

PASSWORD = "Pa55-w0rd-never-logged"


def mailbox_sections(n, extra=None):
    sec = {"mailboxes": {"mailbox": ["user%03d@example.com" % i
                                     for i in range(n)]},
           "sink log": {"type": "log"}}
    if extra:
        sec.update(extra)
    return sec


class Options(unittest.TestCase):
    def run_ewsgw(self, *args):
        return subprocess.run([EWSGW] + list(args), capture_output=True,
                              text=True, timeout=30)

    def test_version_and_help(self):
        r = self.run_ewsgw("--version")
        self.assertEqual(r.returncode, 0)
        self.assertRegex(r.stdout, r"^ewsgw \d+\.\d+")
        r = self.run_ewsgw("--help")
        self.assertEqual(r.returncode, 0)
        self.assertIn("--check-config", r.stdout)

    def test_usage_errors(self):
        self.assertEqual(self.run_ewsgw("--no-such-option").returncode, 64)
        self.assertEqual(self.run_ewsgw("extra-arg").returncode, 64)
        self.assertEqual(self.run_ewsgw("--json").returncode, 64)


class CheckConfig(unittest.TestCase):
    def test_sample_config_is_valid(self):
        sample = os.path.join(TOP_SRCDIR, "etc", "ewsgw.conf")
        with tempfile.TemporaryDirectory() as creds:
            # The sample names systemd credentials (bare names) for secrets.
            with open(sample) as f:
                for line in f:
                    k, _, v = line.partition("=")
                    k, v = k.strip().lstrip("#").strip(), v.strip()
                    if k.endswith("_file") and v and "/" not in v:
                        with open(os.open(os.path.join(creds, v),
                                          os.O_WRONLY | os.O_CREAT, 0o600),
                                  "w") as c:
                            c.write("x\n")
            rc, out = check_config(sample, {"CREDENTIALS_DIRECTORY": creds})
        self.assertEqual(rc, 0, out)
        self.assertIn("configuration ok", out)

    def test_invalid_config_exit_78_with_line(self):
        with Daemon(sections={"throttling": {"max_concurency": "10"}}) as d:
            rc, out = check_config(d.conf_path)
            self.assertEqual(rc, 78, out)
            line = d.render({"throttling": {"max_concurency": "10"}}) \
                .split("\n").index("max_concurency = 10") + 1
            self.assertIn("%s:%d:" % (d.conf_path, line), out)
            self.assertIn("max_concurrency", out)   # the suggestion

    def test_missing_file(self):
        rc, out = check_config("/nonexistent/ewsgw.conf")
        self.assertEqual(rc, 78)
        self.assertIn("/nonexistent/ewsgw.conf", out)

    def test_bad_sink_section_is_reported(self):
        with Daemon(sections={"sink f": {"type": "file",
                                         "path": "/tmp/x.json",
                                         "no_such_key": "1"}}) as d:
            rc, out = check_config(d.conf_path)
            self.assertEqual(rc, 78, out)
            self.assertIn("no_such_key", out)


class Lifecycle(unittest.TestCase):
    def test_start_reload_stop(self):
        with Daemon(sections=mailbox_sections(3), password=PASSWORD) as d:
            d.start()
            self.assertTrue(d.notify.seen("STATUS="), d.notify.messages)
            st = d.request("status")
            self.assertTrue(st["ok"], st)
            self.assertEqual(st["mailboxes"]["total"], 3)
            self.assertEqual(st["pid"], d.proc.pid)

            # A good change: one more mailbox, taken without a restart.
            d.write_config(d.render(mailbox_sections(4)))
            before = len(d.notify.poll())
            d.signal(signal.SIGHUP)
            wait_for(lambda: d.request("status")["reloads"] == 1, 15,
                     "reload")
            # RELOADING=1, then READY=1 once the reload is done.
            msgs = wait_for(lambda: (lambda m: m if "READY=1" in m else
                                     None)(d.notify.poll()[before:]), 10,
                            "READY=1 after the reload")
            self.assertTrue(any(m.startswith("RELOADING=1") for m in msgs),
                            msgs)
            self.assertLess([m.startswith("RELOADING=1") for m in
                             msgs].index(True), msgs.index("READY=1"))
            self.assertEqual(d.request("status")["mailboxes"]["total"], 4)

            # A bad change: rejected, the running configuration stays.
            d.write_config(d.render(mailbox_sections(
                5, {"throttling": {"max_concurrency": "0",
                                   "max_concurency": "5"}})))
            d.signal(signal.SIGHUP)
            st = wait_for(lambda: (lambda s: s if s["reload_failures"] == 1
                                   else None)(d.request("status")), 15,
                          "rejected reload")
            self.assertEqual(st["mailboxes"]["total"], 4)
            self.assertEqual(st["reloads"], 1)
            self.assertIn("max_concurrency", st["last_reload_error"])
            self.assertIn("max_concurency", st["last_reload_error"])
            self.assertEqual(d.proc.poll(), None)
            # Logged: one record per error, each naming FILE:LINE.
            logged = [l for l in d.log().splitlines()
                      if "reload rejected: %s:" % d.conf_path in l]
            self.assertEqual(len(logged), 2, d.log())
            self.assertIn("(2 errors), running configuration kept",
                          d.log())
            # Shown by ewsgwctl status, not only in --json.
            r = d.ctl("status")
            self.assertRegex(r.stdout, r"(?m)^last reload: +REJECTED")
            shown = [l for l in r.stdout.splitlines()
                     if "%s:" % d.conf_path in l]
            self.assertEqual(len(shown), 2, r.stdout)
            self.assertTrue(shown[1].endswith(
                "(did you mean 'max_concurrency'?)"), shown)

            # The same over the status socket, and ewsgwctl reload says
            # each error on its own line.
            r = d.request("reload")
            self.assertFalse(r["ok"])
            self.assertIn("max_concurrency", r["error"])
            r = d.ctl("reload")
            self.assertNotEqual(r.returncode, 0)
            lines = r.stderr.splitlines()
            self.assertEqual(len(lines), 2, r.stderr)
            for l in lines:
                self.assertTrue(l.startswith("ewsgwctl: error: %s:"
                                             % d.conf_path), l)
            self.assertTrue(lines[0].endswith("out of range 1..1000"), lines)

            # A good reload clears it from status.
            d.write_config(d.render(mailbox_sections(4)))
            r = d.ctl("reload")
            self.assertEqual(r.returncode, 0, r.stderr)
            self.assertNotIn("last reload", d.ctl("status").stdout)

            before = len(d.notify.poll())
            self.assertEqual(d.stop(), 0)
            wait_for(lambda: "STOPPING=1" in d.notify.poll()[before:], 5,
                     "STOPPING=1")
            self.assertFalse(os.path.exists(d.socket_path))
            self.assertNotIn(PASSWORD, d.log())

    def test_watchdog_pings(self):
        """With WatchdogSec= set, WATCHDOG=1 comes at half the interval."""
        with Daemon(sections=mailbox_sections(1),
                    extra_env={"WATCHDOG_USEC": "400000"}) as d:
            d.start()
            wait_for(lambda: d.notify.poll().count("WATCHDOG=1") >= 3, 10,
                     "three watchdog pings")
            self.assertEqual(d.stop(), 0)

    def test_stuck_service_manager_never_blocks_the_loop(self):
        """A notification socket nobody reads fills up; the daemon drops
        notifications instead of blocking, and keeps answering."""
        with Daemon(sections=mailbox_sections(2),
                    extra_env={"WATCHDOG_USEC": "2000"}) as d:
            d.start(wait_ready=False)
            d.notify.running = False        # stop draining
            d.notify.thread.join(2)
            time.sleep(1.5)                 # ~1,500 pings: the queue is full
            # A slow (sanitizer) build may still be starting.
            wait_for(lambda: os.path.exists(d.socket_path), 30,
                     "the status socket")
            # The fault happened: the daemon had to drop pings, and the
            # queue takes no more.
            wait_for(lambda: d.request("status", timeout=10)[
                "notify_dropped"] > 0, 30, "a dropped notification")
            probe = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
            probe.setblocking(False)
            with self.assertRaises(BlockingIOError):
                probe.sendto(b"X=1", d.notify.path)
            probe.close()
            # A blocked loop would never answer: the request times out.
            for _ in range(5):
                self.assertTrue(d.request("status", timeout=10)["ok"])
            self.assertEqual(d.stop(), 0)

    def test_sigint_also_stops_cleanly(self):
        with Daemon(sections=mailbox_sections(1)) as d:
            d.start()
            d.signal(signal.SIGINT)
            self.assertEqual(d.proc.wait(30), 0)

    def test_unusable_status_socket_fails_start(self):
        with Daemon(sections=mailbox_sections(
                1, {"status": {"socket": "/nonexistent/dir/s.sock"}})) as d:
            d.start(wait_ready=False)
            self.assertNotEqual(d.proc.wait(30), 0)
            self.assertIn("/nonexistent/dir/s.sock", d.log())

    def test_cleartext_credentials_warned(self):
        # The default test url is http:// with auth = basic.
        with Daemon(sections=mailbox_sections(1), password=PASSWORD) as d:
            d.start()
            self.assertIn("url http://127.0.0.1:9/EWS/Exchange.asmx is "
                          "plain http: the password", d.log())
            self.assertEqual(d.stop(), 0)

    def test_cleartext_secret_and_webhook_token_warned(self):
        # The client secret to a token_url, a bearer token to a webhook.
        with Daemon() as d:
            secret = d.path("client-secret")
            for path, text in ((secret, "the-client-secret\n"),
                               (d.path("hook-token"), "the-hook-token\n")):
                with open(os.open(path, os.O_WRONLY | os.O_CREAT, 0o600),
                          "w") as f:
                    f.write(text)
            sec = mailbox_sections(1, {"sink hook": {
                "type": "webhook", "url": "http://127.0.0.1:9/hook",
                "bearer_token_file": d.path("hook-token")}})
            sec["exchange"] = {
                "url": "https://127.0.0.1:9/EWS/Exchange.asmx",
                "auth": "oauth2", "tenant": "contoso.example",
                "client_id": "ewsgw-test", "client_secret_file": secret,
                "token_url": "http://127.0.0.1:9/token"}
            d.write_config(d.render(sec))
            d.start()
            log = d.log()
            self.assertEqual(d.stop(), 0)
        self.assertIn("token_url http://127.0.0.1:9/token is plain http: "
                      "the client secret", log)
        self.assertIn("url http://127.0.0.1:9/hook is plain http: the "
                      "bearer token", log)
        self.assertNotIn("Exchange.asmx is plain http", log)
        self.assertNotIn("the-client-secret", log)
        self.assertNotIn("the-hook-token", log)


class TokenEndpointTLS(unittest.TestCase):
    """The token endpoint (where the client secret goes) has TLS settings
    of its own: [exchange] tls_verify = no does not reach it."""

    def token_server(self, d):
        cert, key = d.path("token.crt"), d.path("token.key")
        subprocess.run(["openssl", "req", "-x509", "-newkey", "ec",
                        "-pkeyopt", "ec_paramgen_curve:prime256v1",
                        "-nodes", "-keyout", key, "-out", cert, "-days", "2",
                        "-subj", "/CN=localhost",
                        "-addext", "subjectAltName=IP:127.0.0.1"],
                       check=True, capture_output=True)
        posts = []

        class Handler(http.server.BaseHTTPRequestHandler):
            def do_POST(self):
                n = int(self.headers.get("Content-Length", "0"))
                posts.append(self.rfile.read(n))
                body = b'{"error":"invalid_client"}'
                self.send_response(400)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, *args):
                pass

        srv = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        ctx.load_cert_chain(cert, key)
        srv.socket = ctx.wrap_socket(srv.socket, server_side=True)
        srv.handle_error = lambda *args: None   # refused handshakes
        threading.Thread(target=srv.serve_forever, daemon=True).start()
        self.addCleanup(srv.server_close)
        self.addCleanup(srv.shutdown)
        return srv.server_address[1], cert, posts

    def run_daemon(self, extra):
        with Daemon(sections=mailbox_sections(1)) as d:
            port, cert, posts = self.token_server(d)
            secret = d.path("client-secret")
            with open(os.open(secret, os.O_WRONLY | os.O_CREAT, 0o600),
                      "w") as f:
                f.write("the-client-secret\n")
            ex = {"auth": "oauth2", "tenant": "contoso.example",
                  "client_id": "ewsgw-test", "client_secret_file": secret,
                  "token_url": "https://127.0.0.1:%d/token" % port,
                  "tls_verify": "no"}
            ex.update({k: v.replace("@CERT@", cert)
                       for k, v in extra.items()})
            d.write_config(d.render(dict(mailbox_sections(1),
                                         exchange=ex)))
            d.start()
            wait_for(lambda: "OAuth2:" in d.log(), 30, "a token attempt")
            log = d.log()
            self.assertEqual(d.stop(), 0)
        self.assertNotIn("the-client-secret", log)
        return posts, log

    def test_exchange_tls_verify_does_not_reach_the_token_endpoint(self):
        posts, log = self.run_daemon({})
        self.assertEqual(posts, [], "the client secret went to an "
                         "unverified token endpoint")
        self.assertIn("OAuth2: token endpoint", log)

    def test_token_ca_file_trusts_the_token_endpoint(self):
        posts, log = self.run_daemon({"token_ca_file": "@CERT@"})
        self.assertGreaterEqual(len(posts), 1, log)
        self.assertIn(b"client_secret=the-client-secret", posts[0])
        self.assertIn("invalid_client", log)


if __name__ == "__main__":
    unittest.main(verbosity=2)
