"""Protocol sinks that cannot reach their servers slow nothing else.

The daemon runs with the file sink and sip and xmpp sinks pointed at
servers that never answer: a UDP port that swallows datagrams, a TCP
port that accepts and then says nothing (also for a TLS handshake and
an XMPP stream), and ports nobody listens on.  Meetings for every
mailbox must still reach the file sink, boundary by boundary, the status
socket must answer, the mailboxes keep streaming, and each protocol sink
must show that it really failed the way its server made it fail:
RFC 3261 retransmissions seen by the silent UDP port, a PUBLISH read by
the silent TCP port, timeouts and refusals in the sinks' status, and
reconnects to a server that hangs up at once spaced by a growing
back-off.
"""
import os
import re
import socket
import sys
import tempfile
import threading
import time
import unittest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from ewsgwsim import GatewayRun, generated, iso  # noqa: E402
from ewsgwtest import wait_for  # noqa: E402
from presence_servers import free_port, require_sink  # noqa: E402


class Silent:
    """A UDP socket and a TCP listener that read everything and never
    answer; they count what arrives.  A second TCP listener closes each
    connection the moment it accepts it, and notes when."""

    def __init__(self):
        self.udp = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        self.udp.bind(("127.0.0.1", 0))
        self.udp.settimeout(0.2)
        self.udp_port = self.udp.getsockname()[1]
        self.tcp = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self.tcp.bind(("127.0.0.1", 0))
        self.tcp.listen(64)
        self.tcp.settimeout(0.2)
        self.tcp_port = self.tcp.getsockname()[1]
        self.closer = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self.closer.bind(("127.0.0.1", 0))
        self.closer.listen(64)
        self.closer.settimeout(0.2)
        self.closer_port = self.closer.getsockname()[1]
        self.datagrams = []
        self.streams = []
        self.closed_at = []
        self.lock = threading.Lock()
        self.running = True
        self.threads = [threading.Thread(target=f, daemon=True)
                        for f in (self._udp, self._tcp, self._closer)]
        for t in self.threads:
            t.start()

    def _udp(self):
        while self.running:
            try:
                d = self.udp.recv(65535)
            except socket.timeout:
                continue
            except OSError:
                break
            with self.lock:
                self.datagrams.append(d.decode("utf-8", "replace"))

    def _tcp(self):
        conns = []
        while self.running:
            try:
                c, _ = self.tcp.accept()
                c.settimeout(0.05)
                conns.append([c, b""])
            except socket.timeout:
                pass
            except OSError:
                break
            for cb in conns:
                try:
                    d = cb[0].recv(65535)
                    cb[1] += d
                except (socket.timeout, OSError):
                    pass
            with self.lock:
                self.streams = [cb[1] for cb in conns]
        for cb in conns:
            cb[0].close()

    def _closer(self):
        while self.running:
            try:
                c, _ = self.closer.accept()
            except socket.timeout:
                continue
            except OSError:
                break
            c.close()
            with self.lock:
                self.closed_at.append(time.monotonic())

    def close(self):
        self.running = False
        for t in self.threads:
            t.join(2)
        self.udp.close()
        self.tcp.close()
        self.closer.close()


class Unreachable(unittest.TestCase):
    def setUp(self):
        require_sink("sip")
        require_sink("xmpp")
    def test_dead_servers_slow_nothing(self):
        mbs = generated(20)
        silent = Silent()
        tmp = tempfile.TemporaryDirectory(prefix="ewsgw-unreachable-")
        try:
            refused = free_port()
            secret = os.path.join(tmp.name, "secret")
            with open(os.open(secret, os.O_WRONLY | os.O_CREAT | os.O_TRUNC,
                                   0o600), "w") as f:
                f.write("component-secret\n")
            fast = {"retry_initial": "200ms", "retry_max": "2s"}
            secs = {
                "sink sip-silent-udp": dict(
                    fast, type="sip", presentity="sip:%l@a.test",
                    server="127.0.0.1:%d" % silent.udp_port),
                "sink sip-silent-tcp": dict(
                    fast, type="sip", presentity="sip:%l@b.test",
                    server="sip:127.0.0.1:%d;transport=tcp"
                    % silent.tcp_port),
                "sink sip-stalled-tls": dict(
                    fast, type="sip", presentity="sip:%l@c.test",
                    server="sips:localhost:%d" % silent.tcp_port,
                    connect_timeout="3s"),
                "sink sip-refused": dict(
                    fast, type="sip", presentity="sip:%l@d.test",
                    server="127.0.0.1:%d" % refused),
                "sink xmpp-silent": dict(
                    fast, type="xmpp", domain="presence.test",
                    server="127.0.0.1:%d" % silent.tcp_port,
                    secret_file=secret, timeout="3s"),
                "sink xmpp-refused": dict(
                    fast, type="xmpp", domain="presence.test",
                    server="127.0.0.1:%d" % refused,
                    secret_file=secret),
                "sink xmpp-hangup": dict(
                    fast, type="xmpp", domain="presence.test",
                    server="127.0.0.1:%d" % silent.closer_port,
                    secret_file=secret, reconnect_min="500ms",
                    reconnect_max="4s"),
            }
            with GatewayRun(mbs, sim={"generate": 20}, sections=secs) as g:
                g.wait_state("streaming")
                for m in mbs:
                    g.wait_changes(m, 1)

                t0 = int(time.time()) + 4
                for i, m in enumerate(mbs):
                    g.sim.add_item(m, {"subject": "m%d" % i,
                                       "start": iso(t0 + i % 3),
                                       "end": iso(t0 + 3 + i % 3)})
                for i, m in enumerate(mbs):
                    rows = g.wait_changes(m, 3)
                    self.assertEqual([(r["presence"], r["activity"])
                                      for r in rows],
                                     [("available", None),
                                      ("busy", "meeting"),
                                      ("available", None)])
                    self.assertEqual(rows[1]["since"], iso(t0 + i % 3))
                    self.assertEqual(rows[2]["since"], iso(t0 + 3 + i % 3))
                st = g.status()
                self.assertEqual(st["mailboxes"]["by_state"].get(
                    "streaming"), len(mbs))

                sinks = {s["name"]: s for s in
                         g.d.request("sinks")["sinks"]}
                self.assertEqual(sinks["file"]["delivered"], 3 * len(mbs))
                self.assertEqual(sinks["file"]["queue"], 0)

                def sink(name):
                    return {s["name"]: s for s in
                            g.d.request("sinks")["sinks"]}[name]

                # Each dead server failed its sink the way it should.
                wait_for(lambda: "no response" in
                         (sink("sip-silent-udp")["last_error"] or ""), 60,
                         "Timer F on the silent UDP port")
                wait_for(lambda: "no response" in
                         (sink("sip-silent-tcp")["last_error"] or ""), 60,
                         "Timer F on the silent TCP port")
                wait_for(lambda: "timed out" in
                         sink("sip-stalled-tls")["detail"], 30,
                         "the stalled TLS handshake")
                wait_for(lambda: re.search("refused", sink(
                    "sip-refused")["detail"], re.I), 30, "ICMP refusal")
                wait_for(lambda: "no component handshake" in
                         sink("xmpp-silent")["detail"], 30,
                         "the silent XMPP server")
                wait_for(lambda: re.search("refused", sink(
                    "xmpp-refused")["detail"], re.I), 30,
                    "the refused XMPP connection")
                for name in ("sip-silent-udp", "sip-silent-tcp",
                             "sip-stalled-tls", "sip-refused",
                             "xmpp-silent", "xmpp-refused",
                             "xmpp-hangup"):
                    s = sink(name)
                    self.assertEqual(s["delivered"], 0, name)
                    self.assertGreater(s["queue"], 0, name)
                # RFC 3261 17.1.2.2: the same PUBLISH again and again.
                with silent.lock:
                    grams = list(silent.datagrams)
                branches = [re.search(r"branch=([^;\r\n]+)", d).group(1)
                            for d in grams if d.startswith("PUBLISH ")]
                self.assertTrue(any(branches.count(b) >= 3
                                    for b in branches), branches[:10])
                with silent.lock:
                    streams = list(silent.streams)
                self.assertTrue(any(s.startswith(b"PUBLISH sip:")
                                    for s in streams))
                self.assertTrue(any(b"jabber:component:accept" in s
                                    for s in streams))
                # A server that hangs up at once is retried with
                # back-off: never sooner than reconnect_min (less a
                # little for the connect itself), and the waits grow
                # (at reconnect_min each they would average 0.5 s; the
                # decorrelated jitter averages under 0.75 s over nine
                # waits about once in 10,000 runs).
                wait_for(lambda: len(silent.closed_at) >= 10, 90,
                         "reconnects to the server that hangs up")
                with silent.lock:
                    at = list(silent.closed_at)
                gaps = [b - a for a, b in zip(at, at[1:])]
                self.assertGreater(min(gaps), 0.4, gaps)
                self.assertGreater(sum(gaps) / len(gaps), 0.75, gaps)
                g.assert_no_violations(self)
                # A clean stop with the sinks still failing (and, under
                # the sanitizers, no leak).
                self.assertEqual(g.d.stop(), 0, g.d.log()[-3000:])
        finally:
            silent.close()
            tmp.cleanup()


if __name__ == "__main__":
    unittest.main(verbosity=2)
