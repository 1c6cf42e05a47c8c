#!/usr/bin/python3
# ewsgw - Exchange calendar presence gateway
# SPDX-License-Identifier: ISC
#
# The Autodiscover runner (src/io/discover.c) against the EWS simulator,
# through the EWS call path and its budget: batches of at most 100 users,
# GroupingInformation and the mailbox server per mailbox, a moved mailbox,
# RedirectAddress followed, an http RedirectUrl and a redirect loop
# refused, a busy server retried, an endpoint that is no Autodiscover.
import json
import os
import subprocess
import sys
import tempfile
import unittest

TOP_SRCDIR = os.environ.get("top_srcdir", os.path.join(os.path.dirname(__file__), "..", ".."))
TOP_BUILDDIR = os.environ.get("top_builddir", TOP_SRCDIR)
ADCLIENT = os.path.join(TOP_BUILDDIR, "tests", "http", "adclient")
SIMDIR = os.path.join(TOP_SRCDIR, "tests", "sim")
DIRECTORY = os.path.join(SIMDIR, "directory-sample.json")

sys.path.insert(0, SIMDIR)
try:
    import lxml.etree  # noqa: F401  (the simulator needs it)
    from simharness import Simulator
except ImportError as exc:
    print("SKIP: simulator unavailable: %s" % exc)
    sys.exit(77)

if not os.access(ADCLIENT, os.X_OK):
    print("SKIP: %s not built" % ADCLIENT)
    sys.exit(77)


class DiscoverTests(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.sim = Simulator(directory=DIRECTORY, generate=250, minute_seconds=1).start()
        cls.tmp = tempfile.mkdtemp(prefix="ewsgw-ad-")
        pw = os.path.join(cls.tmp, "password")
        with open(os.open(pw, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600),
                  "w") as fh:
            fh.write("Passw0rd!\n")
        cls.conf = os.path.join(cls.tmp, "ewsgw.conf")
        with open(cls.conf, "w") as fh:
            fh.write("[exchange]\nurl = %s\nauth = basic\nusername = svc-ewsgw\npassword_file = %s\n"
                     "[throttling]\nmax_concurrency = 4\n[status]\nsocket = %s\n"
                     % (cls.sim.ews_url, pw, os.path.join(cls.tmp, "status.sock")))

    @classmethod
    def tearDownClass(cls):
        cls.sim.stop()
        import shutil
        shutil.rmtree(cls.tmp, ignore_errors=True)

    def setUp(self):
        self.sim.control("DELETE", "/faults")
        self.sim.control("POST", "/stats/reset")

    def run_client(self, addresses, *args, url=None):
        path = os.path.join(self.tmp, "addresses")
        with open(path, "w") as fh:
            fh.write("\n".join(addresses) + "\n")
        wrapper = os.environ.get("EWSGW_WRAPPER", "").split()
        argv = wrapper + [ADCLIENT, "-c", self.conf, "-u", url or self.sim.autodiscover_url, "-V", "Exchange2013_SP1",
                "-r", "50", "-f", path] + list(args)
        p = subprocess.run(argv, stdout=subprocess.PIPE, stderr=subprocess.PIPE, timeout=120, check=False)
        self.assertEqual(p.returncode, 0, p.stderr.decode())
        lines = [json.loads(x) for x in p.stdout.decode().splitlines()]
        self.assertEqual(len(lines), len(addresses) + 1, lines)
        return {r["address"]: r for r in lines[:-1]}, lines[-1]

    def test_batches_of_100(self):
        users = ["user%06d@example.com" % i for i in range(1, 251)] + ["nobody@example.com"]
        rows, counts = self.run_client(users)
        self.assertEqual((counts["requests"], counts["users"], counts["retries"]), (3, 251, 0))
        ad = self.sim.stats()["autodiscover"]
        self.assertEqual((ad["requests"], ad["users"], ad["max_users"]), (3, 251, 100))
        self.assertEqual(rows["nobody@example.com"]["status"], "invalid-user")
        servers = set()
        for u in users[:-1]:
            r = rows[u]
            self.assertEqual((r["status"], r["code"], r["via"]), ("ok", "NoError", self.sim.autodiscover_url))
            srv = self.sim.control("GET", "/mailboxes/%s/server" % u)[1]
            self.assertEqual((r["GroupingInformation"], r["InternalMailboxServer"]),
                             (srv["grouping"], srv["server"]))
            self.assertEqual((r["ExternalEwsUrl"], r["InternalEwsUrl"]), (self.sim.ews_url, self.sim.ews_url))
            self.assertEqual(r["key"], "%s\n%s" % (self.sim.ews_url, srv["grouping"]))
            servers.add(srv["server"])
        self.assertEqual(len(servers), 4)
        self.assertEqual(self.sim.stats()["violations_total"], 0)

    def test_moved_mailbox_and_redirects(self):
        sim = self.sim
        sim.control("POST", "/mailboxes", {"smtp": "mover@example.com", "server": 1})
        sim.control("POST", "/mailboxes", {"smtp": "renamed@example.com",
                                           "autodiscover_redirect": {"address": "alice@example.com"}})
        sim.control("POST", "/mailboxes", {"smtp": "plain@example.com",
                                           "autodiscover_redirect": {"url": "http://127.0.0.1:9/autodiscover/"
                                                                            "autodiscover.svc"}})
        sim.control("POST", "/mailboxes", {"smtp": "loop1@example.com",
                                           "autodiscover_redirect": {"address": "loop2@example.com"}})
        sim.control("POST", "/mailboxes", {"smtp": "loop2@example.com",
                                           "autodiscover_redirect": {"address": "loop1@example.com"}})
        rows, counts = self.run_client(["mover@example.com"])
        self.assertEqual(rows["mover@example.com"]["GroupingInformation"], "SIMDAG01")
        sim.control("POST", "/mailboxes/mover@example.com/move", {"to": 3, "duration_s": 0})
        rows, counts = self.run_client(["mover@example.com", "renamed@example.com", "plain@example.com",
                                        "loop1@example.com", "bad\x01@example.com"])
        mover = rows["mover@example.com"]
        self.assertEqual((mover["GroupingInformation"], mover["InternalMailboxServer"]),
                         ("SIMDAG03", "MBX03.sim.example.local"))
        ren = rows["renamed@example.com"]
        self.assertEqual((ren["status"], ren["as"], ren["hops"]), ("ok", "alice@example.com", 1))
        self.assertEqual((rows["plain@example.com"]["status"], rows["plain@example.com"]["code"]),
                         ("failed", "RedirectUrl"))
        loop = rows["loop1@example.com"]
        self.assertEqual((loop["status"], loop["code"], loop["hops"]), ("failed", "RedirectAddress", 3))
        bad = rows["bad\x01@example.com"]
        self.assertEqual((bad["status"], bad["code"]), ("failed", "InvalidAddress"))
        self.assertEqual(counts["redirects"], 4)
        # the first request asked 4 users, the redirected ones went again
        self.assertEqual(sim.stats()["autodiscover"]["max_users"], 4)

    def test_busy_server_retried(self):
        self.sim.fault({"kind": "http_status", "status": 503, "count": 2, "operation": "GetUserSettings"})
        rows, counts = self.run_client(["alice@example.com", "bob@example.com"])
        self.assertEqual([rows[a]["status"] for a in ("alice@example.com", "bob@example.com")], ["ok", "ok"])
        self.assertEqual((counts["requests"], counts["retries"]), (3, 4))
        self.assertEqual(self.sim.stats()["requests"]["GetUserSettings"], {"503": 2, "NoError": 1})
        # a server that stays busy: given up after the attempts, one URL only
        self.sim.fault({"kind": "http_status", "status": 503, "count": 10, "operation": "GetUserSettings"})
        rows, counts = self.run_client(["alice@example.com"], "-a", "2")
        self.assertEqual((rows["alice@example.com"]["status"], rows["alice@example.com"]["code"]),
                         ("failed", "HTTP503"))
        self.assertEqual(counts["requests"], 2)

    def test_not_an_autodiscover_endpoint(self):
        rows, counts = self.run_client(["alice@example.com"], url=self.sim.ews_url)
        r = rows["alice@example.com"]
        self.assertEqual(r["status"], "failed")
        self.assertEqual(counts["requests"], 1)
        self.assertEqual(counts["retries"], 0)


if __name__ == "__main__":
    unittest.main(verbosity=2)
