#!/usr/bin/python3
# ewsgw - Exchange calendar presence gateway
# SPDX-License-Identifier: ISC
#
# Attack benchmark for the push listener: the real daemon in push mode
# against the EWS simulator, hit with hostile request shapes and a
# slowloris crowd while Exchange (the simulator) keeps delivering, and
# measured from outside.
"""Usage: tests/attack/attack.py [--slow 1000] [--duration 30] [--json F]

Starts the simulator and ewsgw (mode = push, default listener limits),
then for --duration seconds runs, in two separate processes so that
they cannot disturb the measurement:

  * slowloris: --slow connections, each sending a request a byte at a
    time (half without the token, half with it and a large announced
    body), reconnecting 50..150 ms after the daemon closes it;
  * hostile shapes, one after another with the real token URL: the
    report's 1 MiB / 112k-attribute POST, floods of attributes,
    namespace declarations and nodes and deep nesting sized to fit
    max_body, a DTD with entities, an oversize Content-Length, huge
    chunks, and 256 KiB bodies without the token;

while the simulator posts a status notification per subscription every
second and a meeting is added every 2 s.  The main process samples
'status' on the control socket every 10 ms (latency = how long the loop
took to answer), the daemon's VmRSS and its open push connections (from
/proc, independently of the daemon's counters) every 100 ms.

Reports: loop stall (max, p99 of the status latency during the attack,
against a baseline before it), RSS growth, genuine notifications
delivered, and what the listener did.  --ci runs a short version and
asserts what cannot flake on a loaded machine; see tests/attack/README.md.
"""
import argparse
import asyncio
import http.client
import json
import os
import random
import resource
import socket
import statistics
import subprocess
import sys
import threading
import time

HERE = os.path.dirname(os.path.abspath(__file__))
TOP = os.environ.get("top_srcdir") or os.path.dirname(os.path.dirname(HERE))
os.environ.setdefault("top_srcdir", TOP)
sys.path.insert(0, os.path.join(TOP, "tests", "integration"))
from ewsgwsim import GatewayRun, generated, iso  # noqa: E402
from ewsgwtest import free_port, skip, wait_for  # noqa: E402

NS_M = "http://schemas.microsoft.com/exchange/services/2006/messages"
NS_T = "http://schemas.microsoft.com/exchange/services/2006/types"
MAX_BODY = 262144		# the listener's default max_body
TARGETS = {"stall_ms": 20, "rss_growth_mib": 16, "delivered": 100.0}
# --ci: the most loop-thread CPU one listener callback may take (us).
CI_BUSY_MAX_US = 250000


def log(msg):
    sys.stderr.write("[%s] %s\n" % (time.strftime("%H:%M:%S"), msg))
    sys.stderr.flush()


def raise_nofile(n):
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    want = min(hard, max(soft, n))
    resource.setrlimit(resource.RLIMIT_NOFILE, (want, hard))
    return want


# ---- hostile shapes ----------------------------------------------------

def envelope(inner_open="", inner_close="", events=""):
    return ('<?xml version="1.0" encoding="utf-8"?><soap:Envelope xmlns:soap='
            '"http://schemas.xmlsoap.org/soap/envelope/"><soap:Body>'
            '<m:SendNotification xmlns:m="%s" xmlns:t="%s">%s'
            '<m:ResponseMessages><m:SendNotificationResponseMessage '
            'ResponseClass="Success"><m:ResponseCode>NoError</m:ResponseCode>'
            '<m:Notification><t:SubscriptionId>forged</t:SubscriptionId>'
            '<t:MoreEvents>false</t:MoreEvents>%s</m:Notification>'
            '</m:SendNotificationResponseMessage></m:ResponseMessages>%s'
            '</m:SendNotification></soap:Body></soap:Envelope>'
            % (NS_M, NS_T, inner_open, events, inner_close))


def attribute_flood(size):
    """One element with as many distinct attributes as fit in size."""
    head = envelope().split("<m:ResponseMessages>")
    attrs = []
    n = len(head[0]) + len(head[1]) + 40
    i = 0
    while n < size:
        a = ' a%d=""' % i
        attrs.append(a)
        n += len(a)
        i += 1
    return (head[0] + "<m:ResponseMessages" + "".join(attrs) + ">" +
            head[1]).encode(), i


def shapes(token_path):
    """(name, request bytes, expected status) with the token URL."""
    out = []

    def post(name, body, want, path=token_path, extra=""):
        if isinstance(body, str):
            body = body.encode()
        head = ("POST %s HTTP/1.1\r\nHost: gw\r\nContent-Type: text/xml; "
                "charset=utf-8\r\nConnection: close\r\n%sContent-Length: "
                "%d\r\n\r\n" % (path, extra, len(body)))
        out.append((name, head.encode() + body, want))

    big, n = attribute_flood(1024 * 1024)
    post("attributes-1MiB (%dk attributes, as reported)" % (n // 1000), big,
         413)
    fit, n = attribute_flood(MAX_BODY - 512)
    post("attributes-256KiB (%dk attributes)" % (n // 1000), fit, 400)
    ns = "".join('<x xmlns:p%d="urn:%d">' % (i, i) for i in range(5000))
    post("namespaces (5,000 nested declarations)",
         envelope(ns, "</x>" * 5000)[:MAX_BODY - 512], 400)
    post("deep (30,000 levels)",
         envelope("<a>" * 30000, "</a>" * 30000)[:MAX_BODY - 512], 400)
    post("nodes (60,000 elements)", envelope(events="<t:X/>" * 60000)[
        :MAX_BODY - 512], 400)
    post("entities (DTD)", '<?xml version="1.0"?><!DOCTYPE l [<!ENTITY a '
         '"aaaaaaaaaa">' + "".join('<!ENTITY e%d "&a;&a;&a;&a;&a;">' % i
                                   for i in range(20)) + ']><l>&e19;</l>',
         400)
    out.append(("oversize Content-Length", (
        "POST %s HTTP/1.1\r\nHost: gw\r\nContent-Length: 10485760\r\n\r\n"
        % token_path).encode(), 413))
    out.append(("huge chunk", (
        "POST %s HTTP/1.1\r\nHost: gw\r\nTransfer-Encoding: chunked\r\n\r\n"
        "fffffffff\r\n" % token_path).encode(), 413))
    post("no token, 256 KiB body", fit, 403,
         path=token_path.rsplit("/", 1)[0])
    return out


SOURCE = None		# the attackers' address (--attacker-address)


def send_raw(port, data, timeout=20):
    """Send a request; return (status or None, seconds)."""
    t0 = time.monotonic()
    try:
        s = socket.create_connection(("127.0.0.1", port), timeout=timeout,
                                     source_address=SOURCE)
    except OSError:
        return None, time.monotonic() - t0
    try:
        try:
            s.sendall(data)
        except OSError:
            pass	# refused early: the answer may be there anyway
        buf = b""
        while b"\r\n" not in buf:
            chunk = s.recv(4096)
            if not chunk:
                break
            buf += chunk
    except OSError:
        buf = b""
    finally:
        s.close()
    try:
        status = int(buf.split(b" ", 2)[1])
    except (IndexError, ValueError):
        status = None
    return status, time.monotonic() - t0


def role_shapes(port, token_path, duration, out_path):
    """Send every shape in turn until duration is over."""
    os.nice(10)		# an attacker elsewhere: not the daemon's CPU
    todo = shapes(token_path)
    results = {name: {"want": want, "got": {}, "max_s": 0.0}
               for name, _, want in todo}
    end = time.monotonic() + duration
    rounds = 0
    while time.monotonic() < end:
        for name, data, want in todo:
            if time.monotonic() >= end + 30:
                break
            status, secs = send_raw(port, data)
            r = results[name]
            r["got"][str(status)] = r["got"].get(str(status), 0) + 1
            r["max_s"] = max(r["max_s"], secs)
        rounds += 1
    with open(out_path, "w") as f:
        json.dump({"rounds": rounds, "shapes": results}, f)


async def slow_client(port, head, stats, end):
    """One slowloris connection, renewed whenever the daemon closes it."""
    while time.monotonic() < end:
        try:
            reader, writer = await asyncio.open_connection(
                "127.0.0.1", port, local_addr=SOURCE)
        except OSError:
            stats["connect_errors"] += 1
            await asyncio.sleep(0.1 + random.random() * 0.1)
            continue
        stats["connects"] += 1
        opened = time.monotonic()
        i = 0
        try:
            while time.monotonic() < end:
                writer.write(head[i % len(head):i % len(head) + 1])
                await writer.drain()
                i += 1
                try:
                    data = await asyncio.wait_for(
                        reader.read(4096), 0.5 + random.random())
                    if not data:
                        break		# closed by the daemon
                except asyncio.TimeoutError:
                    pass
        except (OSError, ConnectionError):
            pass
        stats["closed_after_s"].append(time.monotonic() - opened)
        writer.close()
        await asyncio.sleep(0.05 + random.random() * 0.1)


def role_slowloris(port, token_path, count, duration, out_path):
    os.nice(10)
    raise_nofile(count + 64)
    stats = {"connects": 0, "connect_errors": 0, "closed_after_s": []}
    heads = [
        # Without the token: a head that never ends.
        b"POST /ews/push HTTP/1.1\r\nHost: gw\r\n" +
        b"".join(b"X-Pad-%d: %s\r\n" % (i, b"x" * 40) for i in range(60)),
        # With it: a large body, a byte at a time.
        ("POST %s HTTP/1.1\r\nHost: gw\r\nContent-Type: text/xml\r\n"
         "Content-Length: 200000\r\n\r\n" % token_path).encode() +
        b"<" * 200000,
    ]
    end = time.monotonic() + duration

    async def main():
        await asyncio.gather(*(slow_client(port, heads[i % 2], stats, end)
                               for i in range(count)))
    asyncio.run(main())
    c = stats.pop("closed_after_s")
    stats["closed"] = len(c)
    stats["lifetime_max_s"] = round(max(c), 2) if c else None
    with open(out_path, "w") as f:
        json.dump(stats, f)


# ---- measurement -------------------------------------------------------

def cpu_s(pid):
    """utime + stime of pid in seconds."""
    with open("/proc/%d/stat" % pid) as f:
        rest = f.read().rsplit(")", 1)[1].split()
    return (int(rest[11]) + int(rest[12])) / os.sysconf("SC_CLK_TCK")


def vmrss_kib(pid):
    with open("/proc/%d/status" % pid) as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    return 0


def tcp_inodes(port):
    """Inodes of the TCP sockets (any state) with this local port."""
    out = set()
    for name in ("/proc/net/tcp", "/proc/net/tcp6"):
        try:
            with open(name) as f:
                next(f)
                for line in f:
                    p = line.split()
                    if int(p[1].rsplit(":", 1)[1], 16) == port and \
                            p[9] != "0":
                        out.add(p[9])
        except OSError:
            pass
    return out


def push_sockets(pid, port):
    """The daemon's open TCP sockets whose local port is the listener's:
    the listening socket plus every accepted connection, from the
    kernel's view (/proc), not from the daemon's counters.  /proc is not
    read atomically, so only sockets seen in the TCP table before and
    after the daemon's descriptors were listed count: they were all open
    at once, whatever else happened meanwhile."""
    before = tcp_inodes(port)
    fds = set()
    try:
        for fd in os.listdir("/proc/%d/fd" % pid):
            try:
                t = os.readlink("/proc/%d/fd/%s" % (pid, fd))
            except OSError:
                continue
            if t.startswith("socket:["):
                fds.add(t[8:-1])
    except OSError:
        return 0
    return len(before & fds & tcp_inodes(port))


class Sampler(threading.Thread):
    """'status' every 10 ms: the latency is how long the loop took to get
    to it.  Nothing else runs in this process meanwhile (the /proc
    watcher and the attackers are other processes), so no lock of the
    interpreter delays the measurement."""

    def __init__(self, sock_path, interval=0.01, timeout=30):
        super().__init__(daemon=True)
        self.sock_path = sock_path
        self.interval = interval
        self.timeout = timeout
        self.samples = []	# (t, latency s, phase)
        self.errors = []
        self.listener_max = 0	# push.connections from status
        self.phase = "baseline"
        self.running = True

    def status(self):
        s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        s.settimeout(self.timeout)
        try:
            s.connect(self.sock_path)
            s.sendall(b"status\n")
            data = b""
            while not data.endswith(b"\n"):
                chunk = s.recv(65536)
                if not chunk:
                    break
                data += chunk
            return json.loads(data)
        finally:
            s.close()

    def run(self):
        while self.running:
            t0 = time.monotonic()
            try:
                st = self.status()
                lat = time.monotonic() - t0
                self.samples.append((t0, lat, self.phase))
                push = st.get("push") or {}
                self.listener_max = max(self.listener_max,
                                        push.get("connections", 0))
            except (OSError, ValueError) as e:
                self.errors.append((t0, repr(e), self.phase))
            time.sleep(max(0.0, self.interval - (time.monotonic() - t0)))


def role_procwatch(pid, port, stop_path, out_path):
    """VmRSS and the kernel's count of push sockets every 100 ms, with
    CLOCK_MONOTONIC times (shared with the main process), until
    stop_path exists."""
    rss, socks = [], []
    while not os.path.exists(stop_path):
        t = time.monotonic()
        try:
            rss.append((t, vmrss_kib(pid)))
        except OSError:
            break
        socks.append((t, push_sockets(pid, port)))
        time.sleep(max(0.0, 0.1 - (time.monotonic() - t)))
    with open(out_path, "w") as f:
        json.dump({"rss": rss, "sockets": socks}, f)


def pct(values, p):
    if not values:
        return None
    v = sorted(values)
    return v[min(len(v) - 1, int(round(p / 100.0 * (len(v) - 1))))]


def run(opts):
    raise_nofile(opts.slow + 256)
    port = free_port()
    n = opts.mailboxes
    mbs = generated(n)
    secs = {"exchange": {"mode": "push"},
            "push": {"listen": "127.0.0.1:%d" % port,
                     "url": "http://127.0.0.1:%d/ews/push" % port,
                     "status_frequency": "1", "heartbeat_timeout": "10s"},
            "log": {"level": "notice"}}
    if opts.allow:
        secs["push"]["allow"] = opts.allow
    res = {"config": {"mailboxes": n, "slowloris": opts.slow,
                      "no_shapes": opts.no_shapes,
                      "allow": opts.allow,
                      "attacker_address": opts.attacker_address,
                      "duration_s": opts.duration,
                      "listener": "defaults (max_connections 256, max_body "
                                  "262144, request_timeout 10s)"}}
    simopts = {"generate": n, "minute_seconds": 1, "push_timeout": 5}
    if os.environ.get("ATTACK_SIM_VERBOSE"):
        simopts["extra_args"] = ["-vv"]
    with GatewayRun(mbs, sim=simopts, sections=secs) as g:
        pid = g.d.proc.pid
        if opts.realtime:
            # The machine is shared: keep other work from showing up as
            # the daemon's stall.  SCHED_FIFO for the daemon and this
            # sampler only (both sleep nearly all the time; the kernel's
            # RT throttling bounds them anyway); the attackers run at +10.
            prm = os.sched_param(10)
            os.sched_setscheduler(pid, os.SCHED_FIFO, prm)
            os.sched_setscheduler(0, os.SCHED_FIFO, prm)
        elif opts.renice:
            os.setpriority(os.PRIO_PROCESS, pid, -10)
            os.setpriority(os.PRIO_PROCESS, 0, -10)
        g.wait_state("push", timeout=120)
        subs = g.sim.control("GET", "/subscriptions")[1]["subscriptions"]
        url = [s for s in subs if s.get("kind") == "push"][0]["url"]
        token_path = "/" + url.split("/", 3)[3]
        tmp = g.d.path("attack")
        os.makedirs(tmp, exist_ok=True)
        me = os.path.abspath(__file__)
        stop = os.path.join(tmp, "stop")
        watch = subprocess.Popen([sys.executable, me, "--role", "procwatch",
                                  "--pid", str(pid), "--port", str(port),
                                  "--stop", stop, "--out",
                                  os.path.join(tmp, "watch.json")])
        sampler = Sampler(g.d.socket_path, timeout=opts.status_timeout)
        sampler.start()
        time.sleep(opts.baseline)
        push0 = dict(g.sim.stats()["push"])
        d0 = g.status()["push"]
        rss0 = vmrss_kib(pid)
        cpu0 = cpu_s(pid)
        t_attack = time.monotonic()
        sampler.phase = "attack"
        log("attack: %d slow connections and hostile shapes for %d s"
            % (opts.slow, opts.duration))
        procs = []
        extra = ["--attacker-address", opts.attacker_address] \
            if opts.attacker_address else []
        if opts.slow > 0:
            procs.append(subprocess.Popen([sys.executable, me, "--role",
                                           "slowloris",
                                   "--port", str(port), "--token-path",
                                   token_path, "--slow", str(opts.slow),
                                   "--duration", str(opts.duration),
                                   "--out", os.path.join(tmp, "slowloris.json")]
                                          + extra))
        if not opts.no_shapes:
            procs.append(subprocess.Popen([sys.executable, me, "--role",
                                           "shapes", "--port", str(port),
                                           "--token-path", token_path,
                                           "--duration", str(opts.duration),
                                           "--out", os.path.join(tmp,
                                                                 "shapes.json")]
                                          + extra))
        # Genuine calendar changes while it runs: each must be published.
        changes = []
        end = time.monotonic() + opts.duration
        i = 0
        while time.monotonic() < end:
            mb = mbs[i % n]
            now = time.time()
            g.sim.add_item(mb, {"subject": "m%d" % i, "start": iso(now - 60),
                                "end": iso(now + 600 + i)})
            changes.append(mb)
            i += 1
            time.sleep(2)
        for p in procs:
            try:
                p.wait(timeout=opts.duration + 90)
            except subprocess.TimeoutExpired:
                p.kill()
                p.wait()
        t_end = time.monotonic()
        cpu1 = cpu_s(pid)
        sampler.phase = "after"
        push1 = dict(g.sim.stats()["push"])
        expected = {}
        for mb in changes:
            expected[mb] = expected.get(mb, 0) + 1
        # Published means: presence went busy for each mailbox changed.
        def busy():
            return [mb for mb in expected if any(
                r["presence"] == "busy" for r in g.changes(mb))]
        try:
            published = wait_for(lambda: (lambda b: b if len(b) == len(
                expected) else None)(busy()), 60, "every changed mailbox busy")
        except AssertionError:
            published = busy()
        time.sleep(1)
        sampler.running = False
        sampler.join(5)
        open(stop, "w").close()
        watch.wait(timeout=30)
        with open(os.path.join(tmp, "watch.json")) as f:
            w = json.load(f)
        try:
            d1 = g.d.request("status", timeout=120)["push"]
        except (OSError, ValueError, KeyError) as e:
            sampler.errors.append((time.monotonic(), "final status: %r" % e,
                                   "after"))
            d1 = {}
        for role in ("slowloris", "shapes"):
            try:
                with open(os.path.join(tmp, role + ".json")) as f:
                    res[role] = json.load(f)
            except (OSError, ValueError):
                res[role] = None	# the role did not finish
        alive = g.d.proc.poll() is None
        if os.environ.get("ATTACK_SIM_VERBOSE"):
            for line in g.sim.log().splitlines():
                if "failed" in line and "push" in line:
                    log("sim: " + line[:200])
    base = [lat for _, lat, ph in sampler.samples if ph == "baseline"]
    att = [lat for _, lat, ph in sampler.samples if ph == "attack"]
    res["stall_ms"] = {
        "baseline_max": round(max(base) * 1000, 2) if base else None,
        "baseline_p99": round(pct(base, 99) * 1000, 2) if base else None,
        "attack_max": round(max(att) * 1000, 2) if att else None,
        "attack_p99": round(pct(att, 99) * 1000, 2) if att else None,
        "attack_median": round(statistics.median(att) * 1000, 2)
        if att else None,
        "samples": len(att), "errors": len(sampler.errors),
        "attack_over_20": sum(1 for x in att if x > 0.020),
        "baseline_over_20": sum(1 for x in base if x > 0.020),
        "baseline_samples": len(base)}
    res["daemon_cpu_pct"] = round(100.0 * (cpu1 - cpu0) / (t_end - t_attack),
                                  1)
    rss_att = [k for t, k in w["rss"] if t >= t_attack]
    res["rss_kib"] = {"before": rss0, "max": max(rss_att) if rss_att else
                      None}
    res["rss_growth_mib"] = round((max(rss_att) - rss0) / 1024.0, 2) \
        if rss_att else None
    posts = push1["posts"] - push0["posts"]
    ok = (push1["ok"] - push0["ok"]) + (push1.get("unsubscribe", 0) -
                                        push0.get("unsubscribe", 0))
    res["genuine"] = {
        "posts": posts, "answered_ok": ok,
        "failed": push1["failed"] - push0["failed"],
        "retries": push1["retries"] - push0["retries"],
        "expired": push1["expired"] - push0["expired"],
        # Delivered at the first attempt; a failed one is retried by
        # Exchange (the simulator) and counts as lost only if the
        # subscription expires.
        "delivered_pct": round(100.0 * (posts - (push1["failed"] -
                                                 push0["failed"])) / posts, 2)
        if posts else None,
        "calendar_changes": len(changes),
        "mailboxes_changed": len(expected),
        "mailboxes_published": len(published)}
    res["listener"] = {k: d1[k] - d0.get(k, 0) if isinstance(d1[k], int) and
                       k not in ("connections", "busy_max_us") else d1[k]
                       for k in d1}
    res["listener"]["connections_max_status"] = sampler.listener_max
    socks = [n for t, n in w["sockets"] if t_attack <= t <= t_end]
    # One of them is the listening socket.
    res["listener"]["connections_max_kernel"] = max(socks) - 1 if socks \
        else None
    res["daemon_alive"] = alive
    res["load_average"] = os.getloadavg()
    res["priority"] = "SCHED_FIFO" if opts.realtime else \
        "nice -10" if opts.renice else "default"
    res["targets"] = TARGETS
    res["met"] = {
        "stall": res["stall_ms"]["attack_max"] is not None and
        res["stall_ms"]["attack_max"] <= TARGETS["stall_ms"],
        "rss": res["rss_growth_mib"] is not None and
        res["rss_growth_mib"] <= TARGETS["rss_growth_mib"],
        "delivered": res["genuine"]["failed"] == 0 and
        res["genuine"]["expired"] == 0 and
        res["genuine"]["mailboxes_published"] == len(expected)}
    return res, sampler


def opts_no_shapes(res):
    return res["config"].get("no_shapes", False)


def ci_checks(res, sampler):
    """What the short CI run asserts: nothing that a loaded machine can
    turn into a failure.  Returns a list of problems."""
    bad = []
    if not res["daemon_alive"]:
        bad.append("the daemon died")
    st = res["stall_ms"]
    if st["errors"]:
        bad.append("status requests failed or timed out during the attack: "
                   "%r" % sampler.errors[:3])
    if st["samples"] < 20:
        bad.append("only %d status answers during the attack"
                   % st["samples"])
    if res["shapes"] is None:
        if not opts_no_shapes(res):
            bad.append("the hostile requests did not finish in time")
        res["shapes"] = {"shapes": {}}
    for name, r in res["shapes"]["shapes"].items():
        # "None": no answer, the connection closed to make room (a shed
        # request is fine too); any other answer is not.
        if set(r["got"]) - {str(r["want"]), "None"} or \
                r["got"].get(str(r["want"]), 0) == 0:
            bad.append("%s: answers %s, want %s" % (name, r["got"],
                                                   r["want"]))
    lst = dict(res["listener"])
    for k in ("unparsable", "evicted", "timeouts", "connections_max_status"):
        lst.setdefault(k, 0)
    n_xml = sum(r["got"].get("400", 0)
                for r in res["shapes"]["shapes"].values())
    if lst["unparsable"] < n_xml:
        bad.append("pre-scan/parser refused %d bodies, %d hostile ones sent"
                   % (lst["unparsable"], n_xml))
    if lst["connections_max_kernel"] is None or \
            lst["connections_max_kernel"] > 256:
        bad.append("the daemon held %s push connections (cap 256)"
                   % lst["connections_max_kernel"])
    if lst["connections_max_status"] > 256:
        bad.append("status showed %d push connections (cap 256)"
                   % lst["connections_max_status"])
    if lst["evicted"] + lst["timeouts"] == 0:
        bad.append("no slow connection was ever closed")
    # The loop's stall from the daemon's side: the most CPU time (of the
    # loop's own thread, which other load on the machine cannot inflate)
    # one callback of the listener took.  The target is 20 ms, judged by
    # the benchmark; CI allows CI_BUSY_MAX_US for sanitizer builds on a
    # loaded machine.  The 1 MiB attribute flood once took 17-19 s.
    busy = lst.get("busy_max_us")
    if busy is None or busy > CI_BUSY_MAX_US:
        bad.append("a listener callback held the loop for %s us of CPU "
                   "(CI limit %d)" % (busy, CI_BUSY_MAX_US))
    g = res["genuine"]
    if g["mailboxes_published"] != g["mailboxes_changed"]:
        bad.append("calendar changes lost: %d of %d mailboxes published"
                   % (g["mailboxes_published"], g["mailboxes_changed"]))
    return bad


def main():
    ap = argparse.ArgumentParser(description=__doc__,
                                 formatter_class=argparse.RawTextHelpFormatter)
    ap.add_argument("--slow", type=int, default=1000)
    ap.add_argument("--duration", type=int, default=30)
    ap.add_argument("--baseline", type=float, default=5.0)
    ap.add_argument("--mailboxes", type=int, default=20)
    ap.add_argument("--json")
    ap.add_argument("--attacker-address",
                    help="the attackers' source address (e.g. 127.0.0.2)")
    ap.add_argument("--allow",
                    help="[push] allow (e.g. 127.0.0.1: the simulator only)")
    ap.add_argument("--no-shapes", action="store_true",
                    help="slowloris only (--slow 0: hostile shapes only)")
    ap.add_argument("--renice", action="store_true",
                    help="run the daemon and the sampler at nice -10 "
                    "(needs root)")
    ap.add_argument("--realtime", action="store_true",
                    help="run the daemon and the sampler under SCHED_FIFO "
                    "(needs root): other load on the machine then cannot "
                    "show as stall")
    ap.add_argument("--status-timeout", type=float, default=30.0,
                    help="a status request not answered by then is an "
                    "error (--ci: 5)")
    ap.add_argument("--ci", action="store_true",
                    help="short run with assertions (make check)")
    ap.add_argument("--role", choices=("slowloris", "shapes", "procwatch"),
                    help=argparse.SUPPRESS)
    ap.add_argument("--pid", type=int, help=argparse.SUPPRESS)
    ap.add_argument("--stop", help=argparse.SUPPRESS)
    ap.add_argument("--port", type=int, help=argparse.SUPPRESS)
    ap.add_argument("--token-path", help=argparse.SUPPRESS)
    ap.add_argument("--out", help=argparse.SUPPRESS)
    opts = ap.parse_args()
    global SOURCE
    if opts.attacker_address:
        SOURCE = (opts.attacker_address, 0)
    if opts.role == "slowloris":
        role_slowloris(opts.port, opts.token_path, opts.slow, opts.duration,
                       opts.out)
        return 0
    if opts.role == "shapes":
        role_shapes(opts.port, opts.token_path, opts.duration, opts.out)
        return 0
    if opts.role == "procwatch":
        role_procwatch(opts.pid, opts.port, opts.stop, opts.out)
        return 0
    if opts.ci:
        opts.slow, opts.duration, opts.baseline = 300, 12, 2.0
        opts.mailboxes = 5
        opts.status_timeout = 5.0
        if resource.getrlimit(resource.RLIMIT_NOFILE)[1] < opts.slow + 256:
            skip(None, "RLIMIT_NOFILE hard limit below %d"
                 % (opts.slow + 256))
    res, sampler = run(opts)
    text = json.dumps(res, indent=1, sort_keys=True)
    print(text)
    if opts.json:
        with open(opts.json, "a") as f:
            f.write(json.dumps(res, sort_keys=True) + "\n")
    st = res["stall_ms"]
    log("stall: max %s ms (p99 %s, median %s; baseline max %s) target <= "
        "%d ms: %s" % (st["attack_max"], st["attack_p99"],
                       st["attack_median"], st["baseline_max"],
                       TARGETS["stall_ms"],
                       "met" if res["met"]["stall"] else "MISSED"))
    log("RSS growth %s MiB, target <= %d: %s"
        % (res["rss_growth_mib"], TARGETS["rss_growth_mib"],
           "met" if res["met"]["rss"] else "MISSED"))
    gen = res["genuine"]
    log("genuine: %d posts, %d answered, %d failed; %d/%d changed mailboxes "
        "published: %s" % (gen["posts"], gen["answered_ok"], gen["failed"],
                           gen["mailboxes_published"],
                           gen["mailboxes_changed"],
                           "met" if res["met"]["delivered"] else "MISSED"))
    if opts.ci:
        bad = ci_checks(res, sampler)
        for b in bad:
            log("FAIL: " + b)
        if not bad:
            log("PASS: status answered throughout (%d samples), every "
                "hostile body refused before or by the pre-scan, at most %d "
                "push connections open (cap 256), %d of %d changes published"
                % (res["stall_ms"]["samples"],
                   res["listener"]["connections_max_kernel"],
                   res["genuine"]["mailboxes_published"],
                   res["genuine"]["mailboxes_changed"]))
        return 1 if bad else 0
    return 0


if __name__ == "__main__":
    sys.exit(main())
