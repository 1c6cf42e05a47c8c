#!/usr/bin/python3
# ewsgw - Exchange calendar presence gateway
# SPDX-License-Identifier: ISC
#
# Cluster mode end to end: real ewsgw daemons, one real etcd (Debian
# etcd-server) and the EWS simulator on loopback.  Every node's sink is a
# webhook to one collector in this test, so all publications land on one
# clock.  Checked against the simulator's own counters: the summed
# concurrency and subscriptions of all nodes never exceed the account's
# budget, no mailbox is subscribed twice, every mailbox is run by exactly
# one node; a node killed with SIGKILL is covered by the others, a node
# cut off from etcd fences itself and publishes nothing more while the
# others take over, and an etcd restart moves nothing.
import http.server
import json
import os
import select
import shutil
import socket
import sys
import tempfile
import threading
import time
import unittest

HERE = os.path.dirname(os.path.abspath(__file__))
TOP_SRCDIR = os.environ.get("top_srcdir") or os.path.join(HERE, "..", "..")
sys.path.insert(0, os.path.join(TOP_SRCDIR, "tests", "integration"))
sys.path.insert(0, os.path.join(TOP_SRCDIR, "tests", "sim"))
sys.path.insert(0, HERE)
from ewsgwtest import Daemon, skip, wait_for  # noqa: E402
from simharness import Simulator  # noqa: E402

ETCD = shutil.which("etcd") or "/usr/bin/etcd"
if not os.access(ETCD, os.X_OK):
    skip(None, "etcd not installed (apt-get install etcd-server "
         "etcd-client)")
from test_etcd import Etcd  # noqa: E402

ACCOUNT = "svc-ewsgw"
PASSWORD = "Passw0rd!"
TTL = 8                 # lease TTL of the nodes, seconds


def generated(n):
    return ["user%06d@example.com" % i for i in range(1, n + 1)]


def iso(t):
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(t))


class Collector:
    """The webhook every node posts to: (monotonic time, node, change)."""

    def __init__(self):
        rows = self.rows = []
        lock = self.lock = threading.Lock()

        class Handler(http.server.BaseHTTPRequestHandler):
            def do_POST(self):
                n = int(self.headers.get("Content-Length", "0"))
                body = json.loads(self.rfile.read(n))
                with lock:
                    rows.append((time.monotonic(), self.path.strip("/"),
                                 body))
                self.send_response(200)
                self.send_header("Content-Length", "0")
                self.end_headers()

            def log_message(self, *a):
                pass

        class Server(http.server.ThreadingHTTPServer):
            # Three nodes post at once, each with many changes in
            # flight: socketserver's default backlog of 5 overflows, and
            # Linux then drops requests of connections the client already
            # sees as open (the webhook times out with 0 bytes received).
            # A real webhook server listens with a deep backlog.
            request_queue_size = 1024

        self.srv = Server(("127.0.0.1", 0), Handler)
        self.srv.daemon_threads = True
        self.port = self.srv.server_address[1]
        self.thread = threading.Thread(target=self.srv.serve_forever,
                                       daemon=True)
        self.thread.start()

    def url(self, node):
        return "http://127.0.0.1:%d/%s" % (self.port, node)

    def all(self):
        with self.lock:
            return list(self.rows)

    def of(self, mailbox=None, node=None, after=0.0):
        return [r for r in self.all() if r[0] >= after and
                (mailbox is None or r[2]["mailbox"] == mailbox) and
                (node is None or r[1] == node)]

    def close(self):
        self.srv.shutdown()
        self.srv.server_close()


class Proxy:
    """A TCP relay between one node and etcd that can cut the node off:
    blocked, it drops every connection and every new one at once."""

    def __init__(self, target_port):
        self.target = ("127.0.0.1", target_port)
        self.lsock = socket.socket()
        self.lsock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self.lsock.bind(("127.0.0.1", 0))
        self.lsock.listen(64)
        self.port = self.lsock.getsockname()[1]
        self.blocked = False
        self.conns = []
        self.lock = threading.Lock()
        self.running = True
        threading.Thread(target=self._accept, daemon=True).start()

    @property
    def url(self):
        return "http://127.0.0.1:%d" % self.port

    def _accept(self):
        while self.running:
            try:
                c, _ = self.lsock.accept()
            except OSError:
                return
            if self.blocked:
                c.close()
                continue
            try:
                u = socket.create_connection(self.target, timeout=5)
            except OSError:
                c.close()
                continue
            with self.lock:
                self.conns.append((c, u))
            threading.Thread(target=self._pump, args=(c, u),
                             daemon=True).start()

    def _pump(self, a, b):
        try:
            while self.running and not self.blocked:
                r, _, _ = select.select([a, b], [], [], 0.2)
                for s in r:
                    data = s.recv(65536)
                    if not data:
                        raise OSError("closed")
                    (b if s is a else a).sendall(data)
        except OSError:
            pass
        for s in (a, b):
            try:
                s.close()
            except OSError:
                pass

    def block(self, on=True):
        self.blocked = on

    def close(self):
        self.running = False
        self.lsock.close()


class Node:
    """One ewsgw daemon of the cluster."""

    def __init__(self, name, sim, etcd_url, collector, mailboxes, throttling,
                 ttl=TTL, exchange=None, cluster=None):
        self.name = name
        self.d = Daemon(password=PASSWORD)
        mbfile = self.d.path("mailboxes.txt")
        with open(mbfile, "w") as f:
            f.write("\n".join(mailboxes) + "\n")
        secs = {
            "exchange": {"url": sim.ews_url, "auth": "basic",
                         "username": ACCOUNT, "version": "Exchange2013_SP1",
                         "password_file": self.d.password_path,
                         "login_retry": "2s", "login_retry_max": "10s"},
            "mailboxes": {"file": mbfile},
            "presence": {"debounce": "200ms"},
            "throttling": throttling,
            "daemon": {"state_directory": self.d.dir},
            "sink hook": {"type": "webhook", "url": collector.url(name)},
            "cluster": {"endpoints": etcd_url, "name": "t", "node": name,
                        "lease_ttl": "%ds" % ttl},
            "log": {"level": "info"},
        }
        secs["exchange"].update(exchange or {})
        secs["cluster"].update(cluster or {})
        self.d.write_config(self.d.render(secs))

    def start(self):
        self.d.start()
        return self

    def cluster(self):
        return self.d.request("cluster")

    def running(self):
        try:
            return self.cluster()["running"]
        except (OSError, ValueError, KeyError):
            return None

    def kill(self):
        self.d.proc.kill()
        self.d.proc.wait()

    def close(self, failed):
        if failed:
            sys.stderr.write("---- ewsgw %s log ----\n%s\n" %
                             (self.name, self.d.log()[-15000:]))
        self.d.close()


class ClusterRun(unittest.TestCase):
    N = 600
    CONC = 8

    def setUp(self):
        self.tmpobj = tempfile.TemporaryDirectory(prefix="ewsgw-nodes-")
        self.nodes = []
        self.proxies = []
        self.etcd = None
        self.sim = None
        self.collector = Collector()

    def tearDown(self):
        failed = any(e for _, e in (self._outcome.errors
                                    if hasattr(self._outcome, "errors")
                                    else []))
        failed = failed or not self._outcome.success
        for n in self.nodes:
            n.close(failed)
        for p in self.proxies:
            p.close()
        if self.etcd is not None:
            self.etcd.stop()
        if self.sim is not None:
            if failed:
                sys.stderr.write("---- simulator ----\n%s\n" %
                                 self.sim.log()[-5000:])
            self.sim.__exit__(None, None, None)
        self.collector.close()
        self.tmpobj.cleanup()

    def start_etcd(self):
        self.etcd = Etcd(self.tmpobj.name)
        return self.etcd.start_on_free_ports()

    def start_sim(self, n, charging, max_subscriptions=None, **more):
        opts = dict(generate=n, version="Exchange2016", minute_seconds=60,
                    heartbeat_seconds=2, charging=charging,
                    max_concurrency=self.CONC)
        if max_subscriptions is not None:
            opts["max_subscriptions"] = max_subscriptions
        opts.update(more)
        self.sim = Simulator(**opts).__enter__()
        return self.sim

    def node(self, name, mailboxes, throttling, via=None, exchange=None,
             cluster=None):
        url = via.url if via is not None else self.etcd.url
        n = Node(name, self.sim, url, self.collector, mailboxes, throttling,
                 exchange=exchange, cluster=cluster)
        self.nodes.append(n)
        return n

    def proxy(self):
        p = Proxy(self.etcd.port)
        self.proxies.append(p)
        return p

    # -- checks ---------------------------------------------------------
    def settled(self, nodes, total, timeout=240):
        """Every mailbox runs on exactly one of nodes and every node has
        applied its share of an agreed member list."""
        names = sorted(n.name for n in nodes)

        def ok():
            runs = []
            for n in nodes:
                c = n.cluster()
                cl = c["cluster"]
                if sorted(m["node"] for m in cl["members"]) != names:
                    return None
                if not cl["may_acquire"] or cl["applied"] != cl["share"]:
                    return None
                runs.append(c["running"])
            return runs if sum(runs) == total else None
        return wait_for(ok, timeout, "%s to settle on %d mailboxes" %
                        (names, total), interval=0.3)

    def groups_known(self, nodes, total, timeout=300):
        """Every node has every mailbox's group key in its group map and
        nothing left to write: placement by group is final, so settled()
        sees no earlier state."""
        def ok():
            for x in nodes:
                gm = x.cluster()["cluster"].get("group_map", {})
                if gm.get("mailboxes") != total or gm.get("pending") != 0:
                    return None
            return True
        return wait_for(ok, timeout, "every group key known",
                        interval=0.3)

    def served(self, nodes, total, timeout=300):
        """Every mailbox is streaming or polled on its node."""
        def ok():
            n = 0
            for nd in nodes:
                st = nd.d.request("status")["mailboxes"]["by_state"]
                n += st.get("streaming", 0) + st.get("polling", 0)
            return n if n == total else None
        return wait_for(ok, timeout, "%d mailboxes served" % total,
                        interval=0.5)

    def no_double_subscriptions(self):
        subs = self.sim.control("GET", "/subscriptions")[1]["subscriptions"]
        seen = {}
        for s in subs:
            if s["mailbox"] in seen:
                self.fail("%s subscribed twice: %s and %s" % (
                    s["mailbox"], s["id"], seen[s["mailbox"]]["id"]))
            seen[s["mailbox"]] = s
        return seen

    def budget_kept(self, subscriptions=None):
        st = self.sim.stats()
        self.assertEqual(st["violations_total"], 0, st["violations"])
        self.assertLessEqual(st["concurrency"][ACCOUNT]["peak"], self.CONC)
        if subscriptions is not None:
            self.assertLessEqual(st["live_subscriptions"]["peak"],
                                 subscriptions)
        return st

    def seq_ordered(self):
        """Per mailbox, seq grows in the order the changes arrived, also
        across a hand-over from one node to another.  Delivery is at least
        once: a webhook post whose answer the sink did not see in time is
        sent again, possibly after later changes.  Such a repeat carries a
        seq already received, with the same change, and is what a consumer
        drops by its seq (ewsgw-sinks(5)); any other change must carry a
        seq above every one received before it."""
        last = {}
        seen = {}
        moved = 0
        for _, node, ch in self.collector.all():
            key = (ch["mailbox"], ch["seq"])
            if key in seen:
                self.assertEqual(ch, seen[key],
                                 "%s: seq %d reused for another change" %
                                 key)
                continue
            seen[key] = ch
            prev = last.get(ch["mailbox"])
            if prev is not None:
                self.assertGreater(ch["seq"], prev[1],
                                   "%s: seq %d from %s after %d from %s" % (
                                       ch["mailbox"], ch["seq"], node,
                                       prev[1], prev[0]))
                moved += prev[0] != node
            last[ch["mailbox"]] = (node, ch["seq"])
        return moved

    def mailboxes_of(self, node):
        return [m["address"] for m in
                node.d.request("mailboxes")["mailboxes"]]

    def meeting_now(self, mailbox):
        now = time.time()
        return self.sim.add_item(mailbox, {"subject": "Standup",
                                           "start": iso(now - 60),
                                           "end": iso(now + 3600)})

    def wait_busy(self, mailbox, after, timeout=120):
        return wait_for(lambda: [r for r in self.collector.of(
            mailbox, after=after) if r[2]["presence"] == "busy"],
            timeout, "busy published for %s" % mailbox)


class TwoNodes(ClusterRun):
    def test_split_and_handover(self):
        """Service-account charging: concurrency and subscriptions are
        split between two nodes; a second node takes half the mailboxes
        without the sum ever passing the budget; an orderly stop hands
        everything back at once."""
        n, subs = 300, 200
        mbs = generated(n)
        self.start_etcd()
        self.start_sim(n, "service-account", max_subscriptions=subs)
        thr = {"max_concurrency": str(self.CONC),
               "max_subscriptions": str(subs),
               "charging": "service-account",
               "subscriptions_per_connection": "50"}
        a = self.node("a", mbs, thr).start()
        self.settled([a], n)
        self.served([a], n)
        b = self.node("b", mbs, thr).start()
        runs = self.settled([a, b], n)
        self.assertTrue(all(r > 0 for r in runs), runs)
        self.served([a, b], n)
        self.no_double_subscriptions()
        st = self.budget_kept(subs)
        self.assertLessEqual(st["live_subscriptions"]["total"], subs)
        self.assertEqual(st["live_subscriptions"]["per_mailbox_peak"], 1)
        # The shares add up to the budget and each node keeps to its own.
        shares = [x.cluster()["cluster"]["share"] for x in (a, b)]
        self.assertEqual(sum(s["concurrency"] for s in shares), self.CONC)
        self.assertEqual(sum(s["subscriptions"] for s in shares), subs)
        # ewsgwctl cluster: members, mailboxes each owns, share.
        out = a.d.ctl("cluster")
        self.assertEqual(out.returncode, 0, out.stderr)
        for word in ("share.concurrency:", "last_rebalance:", "MAILBOXES",
                     "SUBSCRIPTIONS"):
            self.assertIn(word, out.stdout)
        owned = {r["node"]: r["mailboxes"] for r in
                 a.cluster()["assignment"]}
        self.assertEqual(sorted(owned), ["a", "b"])
        self.assertEqual(sum(owned.values()), n)
        self.assertEqual(owned["a"], a.running())
        self.assertRegex(out.stdout, r"\nb +no +%d +\d+ +\d+\n" % owned["b"])
        # A meeting in one of b's mailboxes is published by b alone.
        mb = self.mailboxes_of(b)[0]
        t0 = time.monotonic()
        self.meeting_now(mb)
        self.wait_busy(mb, t0)
        self.assertEqual({r[1] for r in self.collector.of(mb, after=t0)},
                         {"b"})
        # b leaves: its lease is revoked, a takes everything at once.
        t0 = time.monotonic()
        self.assertEqual(b.d.stop(), 0)
        self.settled([a], n, timeout=120)
        took = time.monotonic() - t0
        self.served([a], n)
        self.assertLess(took, TTL * 10)
        self.no_double_subscriptions()
        self.budget_kept(subs)
        self.assertGreater(self.seq_ordered(), 0)
        # Nothing of b's after it stopped.
        self.assertEqual(self.collector.of(node="b", after=time.monotonic()),
                         [])


class Autodiscovered(ClusterRun):
    def streams_by_backend(self):
        """{connection: backends of its subscriptions}, and the
        mailboxes on a stream."""
        subs = {x["id"]: x for x in self.sim.control(
            "GET", "/subscriptions")[1]["subscriptions"]}
        out, streamed = {}, set()
        for st in self.sim.control("GET", "/streams")[1]["streams"]:
            ids = [i for i in st["subscription_ids"] if i in subs]
            out[st["connection"]] = {subs[i]["backend"] for i in ids}
            streamed.update(subs[i]["mailbox"] for i in ids)
        return out, streamed

    def grouped_by_server(self, mbs):
        """Every stream, whenever looked at, keeps to one server, until
        every mailbox is on one (a stream being reopened for a new
        member is briefly missing)."""
        def ok():
            by_conn, streamed = self.streams_by_backend()
            for conn, backends in by_conn.items():
                self.assertEqual(len(backends), 1, (conn, backends))
            if streamed != set(mbs):
                return None
            return set().union(*by_conn.values())
        servers = wait_for(ok, 120, "every mailbox on a stream",
                           interval=0.5)
        self.assertEqual(len(servers), 3)

    def test_taken_over_mailboxes_are_discovered_first(self):
        """With [exchange] autodiscover every node asks Autodiscover for
        the mailboxes it owns, also those it takes over from a node that
        left, before it subscribes them: every stream keeps to one
        server (the simulator counts a breach of the affinity rules as
        a violation)."""
        n = 150
        mbs = generated(n)
        self.start_etcd()
        self.start_sim(n, "impersonated", backends=3, affinity_rules=True)
        thr = {"max_concurrency": str(self.CONC), "charging": "impersonated",
               "subscriptions_per_connection": "20"}
        ex = {"autodiscover": "yes",
              "autodiscover_url": self.sim.autodiscover_url}
        # Three groups, each cut in eight, so that both nodes own some.
        cl = {"group_slices": "8"}
        a = self.node("a", mbs, thr, exchange=ex, cluster=cl).start()
        b = self.node("b", mbs, thr, exchange=ex, cluster=cl).start()
        self.groups_known([a, b], n)
        runs = self.settled([a, b], n)
        self.assertTrue(all(r > 0 for r in runs), runs)
        self.served([a, b], n)
        self.grouped_by_server(mbs)
        self.budget_kept()
        # b leaves: a asks for b's mailboxes before it subscribes them.
        asked = self.sim.stats()["autodiscover"]["users"]
        self.assertGreaterEqual(asked, n)
        self.assertEqual(b.d.stop(), 0)
        self.settled([a], n, timeout=120)
        self.served([a], n)
        self.grouped_by_server(mbs)
        self.assertGreaterEqual(self.sim.stats()["autodiscover"]["users"],
                                asked + runs[1])
        self.no_double_subscriptions()
        self.budget_kept()


class Groups(ClusterRun):
    def owners(self, nodes):
        return {m: x.name for x in nodes for m in self.mailboxes_of(x)}

    def groups_whole(self, nodes, n):
        """Every node knows every mailbox's group key, and each server's
        (group's) mailboxes run on one node: {server: node}."""
        servers = self.sim.control("GET", "/servers")[1]["servers"]

        self.groups_known(nodes, n)

        def ok():
            own = self.owners(nodes)
            if len(own) != n:
                return None
            out = {}
            for srv, v in servers.items():
                on = {own.get(m) for m in v["mailboxes"]}
                if len(on) != 1 or None in on:
                    return None
                out[srv] = on.pop()
            return out
        return wait_for(ok, 300, "every group on one node", interval=0.5)

    def test_groups_stay_together(self):
        """With [exchange] autodiscover the owner of each mailbox writes
        its group key to etcd; every node places by it, so all mailboxes
        of a server (one GroupingInformation) run on one node, moved
        there without ever breaking the budget or the affinity rules;
        a killed node's groups move whole to the others."""
        n = 360
        mbs = generated(n)
        self.start_etcd()
        self.start_sim(n, "impersonated", backends=6, affinity_rules=True)
        thr = {"max_concurrency": str(self.CONC), "charging": "impersonated",
               "subscriptions_per_connection": "20"}
        ex = {"autodiscover": "yes",
              "autodiscover_url": self.sim.autodiscover_url}
        nodes = [self.node(x, mbs, thr, exchange=ex).start()
                 for x in ("a", "b", "c")]
        self.groups_known(nodes, n)
        self.settled(nodes, n)
        self.served(nodes, n)
        placed = self.groups_whole(nodes, n)
        self.assertEqual(len(placed), 6)
        self.no_double_subscriptions()
        st = self.budget_kept()
        self.assertEqual(st["live_subscriptions"]["per_mailbox_peak"], 1)
        for x in nodes:
            gm = x.cluster()["cluster"]["group_map"]
            self.assertEqual(gm["groups"], 6, gm)
        # The node with the most groups dies: each of them moves whole.
        count = {x.name: list(placed.values()).count(x.name)
                 for x in nodes}
        victim = max(nodes, key=lambda x: (count[x.name], x.name))
        self.assertGreater(count[victim.name], 0)
        rest = [x for x in nodes if x is not victim]
        victim.kill()
        self.settled(rest, n, timeout=300)
        self.served(rest, n, timeout=300)
        after = self.groups_whole(rest, n)
        for srv, owner in placed.items():
            if owner != victim.name:
                self.assertEqual(after[srv], owner, srv)
            else:
                self.assertIn(after[srv], [x.name for x in rest], srv)
        self.budget_kept()


class ThreeNodes(ClusterRun):
    N = int(os.environ.get("EWSGW_CLUSTER_MAILBOXES", "3000"))
    CONC = 9

    def connected_once(self):
        """No mailbox has a subscription on two open streams (a killed
        node's subscriptions stay on the server, unconnected, until
        they expire)."""
        subs = self.sim.control("GET", "/subscriptions")[1]["subscriptions"]
        seen = set()
        for s in subs:
            if not s["connected"]:
                continue
            self.assertNotIn(s["mailbox"], seen,
                             "%s on two streams" % s["mailbox"])
            seen.add(s["mailbox"])
        return seen

    def test_kill_partition_etcd_restart(self):
        """Impersonated charging, three nodes: each mailbox on one node,
        the concurrency split; an etcd restart moves nothing; SIGKILL of
        a node is covered by the others, with the change made during the
        gap published after it; a node cut off from etcd fences itself
        before its lease runs out and publishes nothing after, while the
        last node takes everything over."""
        n = self.N
        mbs = generated(n)
        self.start_etcd()
        self.start_sim(n, "impersonated")
        thr = {"max_concurrency": str(self.CONC), "charging": "impersonated"}
        pc = self.proxy()
        a = self.node("a", mbs, thr).start()
        b = self.node("b", mbs, thr).start()
        c = self.node("c", mbs, thr, via=pc).start()
        runs = self.settled([a, b, c], n, timeout=600)
        self.assertTrue(all(r > n // 6 for r in runs), runs)
        self.served([a, b, c], n, timeout=600)
        self.no_double_subscriptions()
        st = self.budget_kept()
        self.assertEqual(st["live_subscriptions"]["total"], n)
        self.assertEqual(st["live_subscriptions"]["per_mailbox_peak"], 1)
        shares = [x.cluster()["cluster"]["share"]["concurrency"]
                  for x in (a, b, c)]
        self.assertEqual(sorted(shares), [3, 3, 3])
        # Presence: every mailbox published once, by its owner.
        owner = {m: x.name for x in (a, b, c) for m in self.mailboxes_of(x)}
        self.assertEqual(len(owner), n)

        def published():
            by = {(ch["mailbox"], node) for _, node, ch in
                  self.collector.all()}
            return all((m, o) in by for m, o in owner.items())
        wait_for(published, 120, "every mailbox published by its owner")

        # etcd restarts: the leases survive, nothing is subscribed again.
        created = self.sim.stats()["subscriptions"]["created"]
        self.etcd.stop()
        self.etcd.start()
        time.sleep(TTL)
        self.settled([a, b, c], n, timeout=120)
        for x in (a, b, c):
            self.assertEqual(x.cluster()["cluster"]["fences"], 0)
        self.assertEqual(self.sim.stats()["subscriptions"]["created"],
                         created)

        # SIGKILL b; a meeting starts in one of its mailboxes meanwhile.
        mb = self.mailboxes_of(b)[len(self.mailboxes_of(b)) // 2]
        t0 = time.monotonic()
        b.kill()
        self.meeting_now(mb)
        self.settled([a, c], n, timeout=300)
        self.served([a, c], n, timeout=300)
        took = time.monotonic() - t0
        sys.stderr.write("fail-over of %d mailboxes (SIGKILL): %.1f s\n"
                         % (n // 3, took))
        row = self.wait_busy(mb, t0)[0]
        self.assertIn(row[1], ("a", "c"))
        self.connected_once()
        self.budget_kept()

        # Cut c off from etcd: it fences itself within its lease, a takes
        # over after, and no mailbox is published by both in between.
        t0 = time.monotonic()
        pc.block()
        cm = self.mailboxes_of(c)
        for m in cm[:20]:
            self.meeting_now(m)
        wait_for(lambda: c.cluster()["cluster"]["fences"] >= 1, 4 * TTL,
                 "c to fence itself", interval=0.1)
        fenced = time.monotonic()
        self.assertLess(fenced - t0, TTL)
        self.assertEqual(c.running(), 0)
        self.settled([a], n, timeout=300)
        self.served([a], n, timeout=300)
        for m in cm[:20]:
            self.wait_busy(m, t0)
        # Its webhook may still deliver what it published before; give
        # that a few seconds under load, then nothing more may come.
        late = self.collector.of(node="c", after=fenced + 5.0)
        self.assertEqual(late, [], "c published after its fence")
        for m in cm:
            rc = [r[0] for r in self.collector.of(m, node="c", after=t0)]
            ra = [r[0] for r in self.collector.of(m, node="a", after=t0)]
            if rc and ra:
                self.assertLess(max(rc), min(ra),
                                "%s published by c and a at once" % m)
        self.connected_once()
        self.budget_kept()

        self.assertGreater(self.seq_ordered(), 0)

        # Back in touch: c rejoins and takes its share again.
        pc.block(False)
        runs = self.settled([a, c], n, timeout=300)
        self.assertTrue(all(r > 0 for r in runs), runs)
        self.served([a, c], n, timeout=300)
        self.connected_once()
        self.budget_kept()


if __name__ == "__main__":
    unittest.main(verbosity=2)
