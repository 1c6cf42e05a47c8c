#!/usr/bin/python3
# ewsgw - Exchange calendar presence gateway
# SPDX-License-Identifier: ISC
#
# The cluster membership against a real etcd (Debian etcd-server) on
# loopback: nodes are tests/cluster/etcdc processes.  Two nodes split
# the budget with the shrink before the grow (checked at every etcd
# revision of the history), a crashed node's lease expires and the
# survivor takes everything, etcd restarts without the lease being
# lost, a node cut off from etcd fences itself before its lease can
# end, a stopped etcd member is failed over, TLS with client
# certificates, and a second process with the same node name waits.
import base64
import datetime
import ipaddress
import json
import os
import queue
import shutil
import signal
import socket
import ssl
import subprocess
import sys
import tempfile
import threading
import time
import unittest
import urllib.request

TOP_BUILDDIR = os.environ.get(
    "top_builddir", os.path.join(os.path.dirname(__file__), "..", ".."))
ETCDC = os.path.join(TOP_BUILDDIR, "tests", "cluster", "etcdc")
ETCD = shutil.which("etcd") or "/usr/bin/etcd"
ETCDCTL = shutil.which("etcdctl") or "/usr/bin/etcdctl"

if not os.access(ETCD, os.X_OK) or not os.access(ETCDCTL, os.X_OK):
    print("SKIP: etcd not installed (apt-get install etcd-server "
          "etcd-client)")
    sys.exit(77)
if not os.access(ETCDC, os.X_OK):
    print("SKIP: %s not built" % ETCDC)
    sys.exit(77)

TOTAL = {"concurrency": 10, "subscriptions": 1000, "streams": 10}
SPLIT = ("concurrency", "subscriptions")


def free_port():
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()
    return port


def b64(s):
    return base64.b64encode(s.encode()).decode()


class PortTaken(Exception):
    pass


class Etcd:
    """One etcd member, or a member of a cluster given as peers."""

    def __init__(self, tmp, name="e0", tls=None, peers=None):
        self.name = name
        self.dir = os.path.join(tmp, name)
        self.tls = tls
        self.port = free_port()
        self.peer_port = free_port()
        self.peers = peers
        self.proc = None
        self.log = None

    @property
    def url(self):
        scheme = "https" if self.tls else "http"
        return "%s://127.0.0.1:%d" % (scheme, self.port)

    @property
    def peer_url(self):
        return "http://127.0.0.1:%d" % self.peer_port

    def start(self, wait=True):
        os.makedirs(self.dir, exist_ok=True)
        cluster = self.peers or {self.name: self.peer_url}
        args = [ETCD, "--name", self.name,
                "--data-dir", os.path.join(self.dir, "data"),
                "--listen-client-urls", self.url,
                "--advertise-client-urls", self.url,
                "--listen-peer-urls", self.peer_url,
                "--initial-advertise-peer-urls", self.peer_url,
                "--initial-cluster",
                ",".join("%s=%s" % kv for kv in sorted(cluster.items())),
                "--initial-cluster-state", "new",
                "--initial-cluster-token", "ewsgw-test",
                "--logger", "zap", "--log-outputs", "stderr"]
        if self.tls:
            args += ["--cert-file", self.tls["server_cert"],
                     "--key-file", self.tls["server_key"],
                     "--client-cert-auth",
                     "--trusted-ca-file", self.tls["ca"]]
        self.log = open(os.path.join(self.dir, "log"), "ab")
        self.proc = subprocess.Popen(args, stdout=self.log,
                                     stderr=subprocess.STDOUT)
        if wait:
            self.wait_ready()

    def start_on_free_ports(self, tries=5):
        """Start, on other ports if another process took ours."""
        for _ in range(tries):
            try:
                self.start()
                return self
            except PortTaken:
                self.stop()
                shutil.rmtree(self.dir)
                self.new_ports()
        raise AssertionError("no free ports for etcd")

    def new_ports(self):
        self.port = free_port()
        self.peer_port = free_port()

    def log_text(self):
        with open(os.path.join(self.dir, "log"), "rb") as f:
            return f.read().decode(errors="replace")

    def port_taken(self):
        """It exited because a port was taken between free_port and now."""
        return (self.proc.poll() is not None and
                "address already in use" in self.log_text())

    def wait_ready(self, timeout=30):
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise PortTaken() if self.port_taken() else AssertionError(
                    "etcd %s exited: %s" % (self.name,
                                            self.log_text()[-2000:]))
            try:
                self.call("/v3/kv/range", {"key": b64("x")}, timeout=1)
                return
            except (OSError, ValueError):
                time.sleep(0.1)
        raise AssertionError("etcd %s not ready" % self.name)

    def _context(self):
        if not self.tls:
            return None
        ctx = ssl.create_default_context(cafile=self.tls["ca"])
        ctx.load_cert_chain(self.tls["client_cert"], self.tls["client_key"])
        return ctx

    def call(self, path, body, timeout=5):
        req = urllib.request.Request(self.url + path,
                                     data=json.dumps(body).encode(),
                                     method="POST")
        with urllib.request.urlopen(req, timeout=timeout,
                                    context=self._context()) as r:
            return json.loads(r.read())

    def ctl(self, *args):
        """etcdctl (etcd's own gRPC client) against this member."""
        r = subprocess.run([ETCDCTL, "--endpoints", self.url] + list(args),
                           capture_output=True, text=True, timeout=30,
                           env=dict(os.environ, ETCDCTL_API="3"))
        if r.returncode != 0:
            raise AssertionError("etcdctl %s: %s" % (args, r.stderr))
        return r.stdout

    def signal(self, sig):
        self.proc.send_signal(sig)

    def stop(self):
        if self.proc is not None and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGCONT)
            self.proc.terminate()
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        if self.log is not None:
            self.log.close()
            self.log = None

    def members(self, cluster, revision=0):
        """{node: record} under the members prefix at a revision."""
        prefix = "/ewsgw/%s/members/" % cluster
        body = {"key": b64(prefix), "range_end": b64(prefix[:-1] + "0")}
        if revision:
            body["revision"] = str(revision)
        r = self.call("/v3/kv/range", body)
        out = {}
        for kv in r.get("kvs", []):
            name = base64.b64decode(kv["key"]).decode()[len(prefix):]
            out[name] = json.loads(base64.b64decode(kv.get("value", "")))
            out[name]["lease"] = int(kv.get("lease", "0"))
        return out, int(r["header"]["revision"])


class Node:
    """An etcdc process; its JSON lines are collected by a thread."""

    def __init__(self, tmp, endpoints, node, cluster="c1", ttl=4,
                 mailboxes=2000, shrink_delay=300, extra=()):
        self.name = node
        self.errpath = os.path.join(tmp, "node-%s-%d.err" % (
            node, int(time.monotonic() * 1000)))
        self.err = open(self.errpath, "wb")
        b = "%d,%d,%d" % (TOTAL["concurrency"], TOTAL["subscriptions"],
                          TOTAL["streams"])
        args = [ETCDC, "-e", ",".join(endpoints), "-c", cluster,
                "-n", node, "-t", str(ttl), "-M", str(mailboxes),
                "-d", str(shrink_delay), "-b", b, "-v"] + list(extra)
        self.proc = subprocess.Popen(args, stdin=subprocess.PIPE,
                                     stdout=subprocess.PIPE,
                                     stderr=self.err)
        self.events = []
        self.lock = threading.Lock()
        self.q = queue.Queue()
        self.thread = threading.Thread(target=self._read, daemon=True)
        self.thread.start()

    def _read(self):
        for line in self.proc.stdout:
            ev = json.loads(line)
            with self.lock:
                self.events.append(ev)
            self.q.put(ev)

    def send(self, cmd):
        self.proc.stdin.write((cmd + "\n").encode())
        self.proc.stdin.flush()

    def seen(self, pred):
        with self.lock:
            return [e for e in self.events if pred(e)]

    def wait(self, pred, timeout=30, after=0):
        """The first event (from index after) for which pred holds."""
        deadline = time.monotonic() + timeout
        while True:
            with self.lock:
                for e in self.events[after:]:
                    if pred(e):
                        return e
            if time.monotonic() > deadline:
                raise AssertionError("node %s: no such event in %ss; "
                                     "stderr %s" % (self.name, timeout,
                                                    self.stderr()[-3000:]))
            if self.proc.poll() is not None and self.q.empty():
                raise AssertionError("node %s exited %s: %s"
                                     % (self.name, self.proc.returncode,
                                        self.stderr()[-3000:]))
            try:
                self.q.get(timeout=0.2)
            except queue.Empty:
                pass

    def mark(self):
        with self.lock:
            return len(self.events)

    def status(self):
        n = self.mark()
        self.send("status")
        return self.wait(lambda e: e["ev"] == "status", 10, n)["cluster"]

    def stderr(self):
        with open(self.errpath, "rb") as f:
            return f.read().decode(errors="replace")

    def stop(self):
        """Quit cleanly (sanitizers check the exit) unless killed."""
        clean = None
        if self.proc.poll() is None:
            try:
                self.send("quit")
                clean = self.proc.wait(10)
            except (OSError, subprocess.TimeoutExpired):
                self.proc.kill()
        self.proc.wait()
        self.thread.join(5)
        if clean not in (None, 0):
            raise AssertionError("node %s exited %d: %s" % (
                self.name, clean, self.stderr()[-3000:]))
        self.proc.stdin.close()
        self.proc.stdout.close()
        self.err.close()


def settled(members):
    """A view event of exactly these members, acquiring."""
    return lambda e: (e["ev"] == "view" and e["members"] == members
                      and e["may_acquire"])


class ClusterTest(unittest.TestCase):
    def setUp(self):
        self.tmpobj = tempfile.TemporaryDirectory(prefix="ewsgw-etcd-")
        self.tmp = self.tmpobj.name
        self.etcds = []
        self.nodes = []

    def tearDown(self):
        for n in self.nodes:
            n.stop()
        for e in self.etcds:
            e.stop()
        self.tmpobj.cleanup()

    def etcd(self, **kw):
        e = Etcd(self.tmp, **kw)
        self.etcds.append(e)
        return e.start_on_free_ports()

    def etcd_cluster(self, names):
        members = [Etcd(self.tmp, name=nm) for nm in names]
        self.etcds.extend(members)
        for _ in range(5):
            peers = {m.name: m.peer_url for m in members}
            for m in members:
                m.peers = peers
                m.start(wait=False)
            try:
                for m in members:
                    m.wait_ready()
                return members
            except PortTaken:
                for m in members:
                    m.stop()
                    shutil.rmtree(m.dir)
                    m.new_ports()
        raise AssertionError("no free ports for etcd")

    def node(self, endpoints, name, **kw):
        n = Node(self.tmp, endpoints, name, **kw)
        self.nodes.append(n)
        return n

    def check_history(self, etcd, cluster="c1"):
        """Every revision: records add up to at most the budget."""
        _, last = etcd.members(cluster)
        seen = []
        for rev in range(1, last + 1):
            recs, _ = etcd.members(cluster, rev)
            for res in SPLIT:
                total = sum(r[res] for r in recs.values())
                self.assertLessEqual(total, TOTAL[res],
                                     "revision %d: %r" % (rev, recs))
            seen.append(recs)
        return seen

    def test_two_nodes_shrink_before_grow(self):
        e = self.etcd()
        a = self.node([e.url], "a", shrink_delay=500)
        a.wait(settled(["a"]))
        a.wait(lambda ev: ev["ev"] == "applied" and ev["concurrency"] == 10)
        b = self.node([e.url], "b")
        a.wait(settled(["a", "b"]))
        b.wait(settled(["a", "b"]))
        shrunk = a.wait(lambda ev: ev["ev"] == "applied" and
                        ev["concurrency"] == 5)
        grown = b.wait(lambda ev: ev["ev"] == "limits" and
                       ev["concurrency"] > 0)
        # b grows only after a applied its smaller share (one clock).
        self.assertGreaterEqual(grown["t"], shrunk["t"])
        self.assertEqual(grown["concurrency"], 5)
        # The subscriptions follow the mailboxes each node owns.
        va = a.seen(settled(["a", "b"]))[-1]
        vb = b.seen(settled(["a", "b"]))[-1]
        self.assertEqual(va["owned"] + vb["owned"], 2000)
        sa, sb = a.status(), b.status()
        self.assertEqual(sa["share"]["subscriptions"] +
                         sb["share"]["subscriptions"], 1000)
        self.assertAlmostEqual(sa["share"]["subscriptions"],
                               va["owned"] / 2, delta=1)
        # The watch, not the periodic read, brought b's arrival.
        self.assertGreaterEqual(sa["watch_ranges"], 1)
        # etcd's own client sees both keys, each on its node's lease.
        keys = e.ctl("get", "--prefix", "--keys-only", "/ewsgw/c1/members/")
        self.assertEqual(keys.split(), ["/ewsgw/c1/members/a",
                                        "/ewsgw/c1/members/b"])
        leases = e.ctl("lease", "list")
        for st in (sa, sb):
            self.assertIn(st["lease"]["id"], leases)
        history = self.check_history(e)
        # The shrink really happened: a held all, then half.
        self.assertTrue(any(h.get("a", {}).get("concurrency") == 10
                            for h in history))
        self.assertEqual(history[-1]["a"]["concurrency"], 5)
        self.assertEqual(history[-1]["b"]["concurrency"], 5)

        # b leaves: its key goes with its lease, a takes everything.
        n = a.mark()
        b.send("leave")
        b.wait(lambda ev: ev["ev"] == "left")
        a.wait(settled(["a"]), after=n)
        a.wait(lambda ev: ev["ev"] == "applied" and
               ev["concurrency"] == 10, after=n)
        self.check_history(e)

    def test_crashed_node_expires(self):
        e = self.etcd()
        a = self.node([e.url], "a", ttl=3)
        b = self.node([e.url], "b", ttl=3)
        a.wait(settled(["a", "b"]))
        b.wait(settled(["a", "b"]))
        lease_b = int(b.status()["lease"]["id"], 16)
        n = a.mark()
        b.proc.send_signal(signal.SIGKILL)
        a.wait(settled(["a"]), timeout=20, after=n)
        a.wait(lambda ev: ev["ev"] == "applied" and
               ev["concurrency"] == 10, after=n)
        # The lease really expired (it was not revoked by b).
        ttl = e.call("/v3/lease/timetolive", {"ID": str(lease_b)})
        self.assertEqual(int(ttl["TTL"]), -1)
        self.assertEqual(a.seen(lambda ev: ev["ev"] == "fenced"), [])
        self.check_history(e)

    def test_etcd_restart_keeps_lease(self):
        e = self.etcd()
        # The lease outlives the restart only if etcd is back within its
        # TTL: 20 s leaves room for a slow start on a loaded machine.
        a = self.node([e.url], "a", ttl=20)
        a.wait(settled(["a"]))
        lease = a.status()["lease"]["id"]
        n = a.mark()
        e.stop()
        a.wait(lambda ev: ev["ev"] == "lease" and ev["what"] == "failed",
               after=n)
        e.start()
        kept = a.wait(lambda ev: ev["ev"] == "lease" and
                      ev["what"] == "kept", after=n)
        self.assertEqual(kept["id"], lease, a.events[n:])
        self.assertEqual(a.seen(lambda ev: ev["ev"] == "fenced"), [])
        recs, _ = e.members("c1")
        self.assertEqual(recs["a"]["lease"], int(lease, 16))
        self.assertEqual(a.status()["state"], "member")

    def test_cut_off_node_fences_before_ttl(self):
        e = self.etcd()
        a = self.node([e.url], "a", ttl=4)
        b = self.node([e.url], "b", ttl=4)
        a.wait(settled(["a", "b"]))
        b.wait(settled(["a", "b"]))
        na, nb = a.mark(), b.mark()
        e.signal(signal.SIGSTOP)
        try:
            for node, n in ((a, na), (b, nb)):
                fenced = node.wait(lambda ev: ev["ev"] == "fenced",
                                   timeout=20, after=n)
                kept = [ev for ev in node.events[:node.events.index(fenced)]
                        if ev["ev"] == "lease" and
                        ev["what"] in ("kept", "granted")][-1]
                self.assertIn("no keepalive", fenced["why"])
                # Fenced on its own clock before the lease could end,
                # and not before its deadline.
                self.assertLess(fenced["t"], kept["sent"] + kept["ttl_ms"])
                self.assertGreaterEqual(fenced["t"], kept["deadline"])
                self.assertEqual(fenced["budget_until"],
                                 kept["sent"] + kept["ttl_ms"])
                self.assertTrue(node.seen(lambda ev: ev["ev"] == "lease" and
                                          ev["what"] == "failed"))
        finally:
            e.signal(signal.SIGCONT)
        # Back: both register again and settle.
        for node, n in ((a, na), (b, nb)):
            node.wait(settled(["a", "b"]), timeout=30, after=n)
        self.check_history(e)

    def test_member_failover(self):
        members = self.etcd_cluster(("m0", "m1", "m2"))
        a = self.node([m.url for m in members], "a", ttl=8)
        a.wait(settled(["a"]))
        st = a.status()
        used = [m for m in members if m.url == st["endpoint"]][0]
        n = a.mark()
        used.proc.send_signal(signal.SIGKILL)
        used.proc.wait()
        kept = a.wait(lambda ev: ev["ev"] == "lease" and
                      ev["what"] == "kept", timeout=20, after=n)
        self.assertEqual(kept["id"], st["lease"]["id"])
        st2 = a.status()
        self.assertNotEqual(st2["endpoint"], used.url)
        self.assertGreater(st2["etcd_failovers"], 0)
        self.assertEqual(st2["state"], "member")
        self.assertEqual(a.seen(lambda ev: ev["ev"] == "fenced"), [])

    def test_tls_client_certificate(self):
        tls = make_pki(self.tmp)
        e = self.etcd(tls=tls)
        a = self.node([e.url], "a", extra=("-A", tls["ca"],
                                           "-C", tls["client_cert"],
                                           "-K", tls["client_key"]))
        a.wait(settled(["a"]))
        # Without a client certificate etcd refuses the connection.
        b = self.node([e.url], "b", extra=("-A", tls["ca"]))
        # A server certificate from another CA is not trusted.
        other = make_pki(os.path.join(self.tmp, "other"))
        c = self.node([e.url], "c", extra=("-A", other["ca"],
                                           "-C", tls["client_cert"],
                                           "-K", tls["client_key"]))
        for refused in (b, c):
            deadline = time.monotonic() + 20
            while "no lease from etcd" not in refused.stderr():
                self.assertLess(time.monotonic(), deadline,
                                refused.stderr())
                time.sleep(0.2)
            self.assertEqual(refused.seen(lambda ev: ev["ev"] == "lease"),
                             [])
        self.assertEqual(list(e.members("c1")[0]), ["a"])

    def test_same_name_waits(self):
        e = self.etcd()
        a1 = self.node([e.url], "a", ttl=3)
        a1.wait(settled(["a"]))
        a2 = self.node([e.url], "a", ttl=3)
        a2.wait(lambda ev: ev["ev"] == "lease" and ev["what"] == "granted")
        deadline = time.monotonic() + 20
        while "is held by lease" not in a2.stderr():
            self.assertLess(time.monotonic(), deadline, a2.stderr())
            time.sleep(0.2)
        self.assertEqual(a2.seen(lambda ev: ev["ev"] == "view"), [])
        a1.proc.send_signal(signal.SIGKILL)
        a2.wait(settled(["a"]), timeout=20)


def make_pki(d):
    """A CA, a server certificate for 127.0.0.1 and a client one."""
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

    os.makedirs(d, exist_ok=True)
    now = datetime.datetime.now(datetime.timezone.utc)
    ca_key = ec.generate_private_key(ec.SECP256R1())
    ca_name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "test CA")])
    ca = (x509.CertificateBuilder()
          .subject_name(ca_name).issuer_name(ca_name)
          .public_key(ca_key.public_key())
          .serial_number(x509.random_serial_number())
          .not_valid_before(now - datetime.timedelta(hours=1))
          .not_valid_after(now + datetime.timedelta(days=1))
          .add_extension(x509.BasicConstraints(ca=True, path_length=None),
                         critical=True)
          .sign(ca_key, hashes.SHA256()))
    out = {"ca": os.path.join(d, "ca.pem")}
    with open(out["ca"], "wb") as f:
        f.write(ca.public_bytes(serialization.Encoding.PEM))
    # etcd's gateway dials its own gRPC port with the server certificate,
    # so that one must be good for client authentication too.
    for role, usage in (("server", [ExtendedKeyUsageOID.SERVER_AUTH,
                                    ExtendedKeyUsageOID.CLIENT_AUTH]),
                        ("client", [ExtendedKeyUsageOID.CLIENT_AUTH])):
        key = ec.generate_private_key(ec.SECP256R1())
        cert = (x509.CertificateBuilder()
                .subject_name(x509.Name([x509.NameAttribute(
                    NameOID.COMMON_NAME, "ewsgw-" + role)]))
                .issuer_name(ca_name)
                .public_key(key.public_key())
                .serial_number(x509.random_serial_number())
                .not_valid_before(now - datetime.timedelta(hours=1))
                .not_valid_after(now + datetime.timedelta(days=1))
                .add_extension(x509.SubjectAlternativeName([
                    x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]),
                    critical=False)
                .add_extension(x509.ExtendedKeyUsage(usage),
                               critical=False)
                .sign(ca_key, hashes.SHA256()))
        out[role + "_cert"] = os.path.join(d, role + ".pem")
        out[role + "_key"] = os.path.join(d, role + ".key")
        with open(out[role + "_cert"], "wb") as f:
            f.write(cert.public_bytes(serialization.Encoding.PEM))
        with open(out[role + "_key"], "wb") as f:
            f.write(key.private_bytes(serialization.Encoding.PEM,
                                      serialization.PrivateFormat.PKCS8,
                                      serialization.NoEncryption()))
    return out


if __name__ == "__main__":
    unittest.main(verbosity=2)
