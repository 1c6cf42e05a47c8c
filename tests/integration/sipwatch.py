"""A minimal SIP presence watcher for the sip sink's tests.

It SUBSCRIBEs (Event: presence) over UDP on loopback, answers every
NOTIFY with 200 OK and keeps their PIDF bodies, parsed into basic
status, RPID activities and note, per presentity.
"""
import re
import socket
import threading
import time
import uuid
import xml.etree.ElementTree as ET

from ewsgwtest import wait_for

PIDF = "{urn:ietf:params:xml:ns:pidf}"
RPID = "{urn:ietf:params:xml:ns:pidf:rpid}"
DM = "{urn:ietf:params:xml:ns:pidf:data-model}"


def parse_pidf(body):
    """{"basic": "open"|"closed"|None, "activities": [...], "note": str}"""
    out = {"basic": None, "activities": [], "note": None}
    if not body.strip():
        return out
    root = ET.fromstring(body)
    b = root.find(".//%sbasic" % PIDF)
    if b is not None:
        out["basic"] = (b.text or "").strip()
    for acts in root.iter("%sactivities" % RPID):
        for a in acts:
            if a.tag.startswith(RPID):
                out["activities"].append(a.tag[len(RPID):])
    n = root.find("%snote" % PIDF)
    if n is None:
        n = root.find(".//%snote" % DM)
    if n is not None:
        out["note"] = (n.text or "").strip()
    return out


def header(msg, name):
    m = re.search(r"^%s\s*:\s*(.*?)\r?$" % re.escape(name), msg,
                  re.I | re.M)
    return m.group(1) if m else None


class Watcher:
    """Subscriptions of one UDP watcher to a SIP presence server."""

    def __init__(self, server_port, host="127.0.0.1"):
        self.server = (host, server_port)
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        self.sock.bind(("127.0.0.1", 0))
        self.sock.settimeout(0.2)
        self.port = self.sock.getsockname()[1]
        self.lock = threading.Lock()
        self.notifies = {}	# presentity -> [parsed pidf, ...]
        self.raw = {}		# presentity -> [body, ...]
        self.responses = {}	# call-id -> status
        self.running = True
        self.thread = threading.Thread(target=self._loop, daemon=True)
        self.thread.start()

    def close(self):
        self.running = False
        self.thread.join(2)
        self.sock.close()

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()
        return False

    def _loop(self):
        while self.running:
            try:
                data, addr = self.sock.recvfrom(65535)
            except socket.timeout:
                continue
            except OSError:
                break
            msg = data.decode("utf-8", "replace")
            head, _, body = msg.partition("\r\n\r\n")
            first = head.split("\r\n", 1)[0]
            if first.startswith("SIP/2.0 "):
                with self.lock:
                    self.responses[header(head, "Call-ID")] = \
                        int(first.split()[1])
                continue
            if not first.startswith("NOTIFY "):
                continue
            self._reply_ok(head, addr)
            uri = re.search(r"<([^>]+)>", header(head, "From") or "")
            pres = uri.group(1) if uri else "?"
            with self.lock:
                self.raw.setdefault(pres, []).append(body)
                try:
                    self.notifies.setdefault(pres, []).append(
                        parse_pidf(body))
                except ET.ParseError:
                    self.notifies.setdefault(pres, []).append(
                        {"basic": "unparsable", "activities": [],
                         "note": body})

    def _reply_ok(self, head, addr):
        lines = ["SIP/2.0 200 OK"]
        for h in head.split("\r\n")[1:]:
            name = h.split(":", 1)[0].strip().lower()
            if name in ("via", "v", "from", "f", "to", "t", "call-id", "i",
                        "cseq"):
                lines.append(h)
        lines.append("Content-Length: 0")
        self.sock.sendto(("\r\n".join(lines) + "\r\n\r\n").encode(), addr)

    def subscribe(self, presentity, expires=600, timeout=10):
        """SUBSCRIBE and wait for the 2xx; returns the Call-ID."""
        call_id = uuid.uuid4().hex
        msg = ("SUBSCRIBE %s SIP/2.0\r\n"
               "Via: SIP/2.0/UDP 127.0.0.1:%d;branch=z9hG4bK%s;rport\r\n"
               "Max-Forwards: 70\r\n"
               "From: <sip:watcher@127.0.0.1>;tag=%s\r\n"
               "To: <%s>\r\nCall-ID: %s\r\nCSeq: 1 SUBSCRIBE\r\n"
               "Contact: <sip:watcher@127.0.0.1:%d>\r\n"
               "Event: presence\r\nAccept: application/pidf+xml\r\n"
               "Expires: %d\r\nContent-Length: 0\r\n\r\n"
               % (presentity, self.port, uuid.uuid4().hex[:12],
                  uuid.uuid4().hex[:8], presentity, call_id, self.port,
                  expires))

        def answered():
            with self.lock:
                st = self.responses.get(call_id)
            if st is None:
                self.sock.sendto(msg.encode(), self.server)
            return st
        st = wait_for(answered, timeout, "SUBSCRIBE %s answered"
                      % presentity, interval=0.5)
        if not 200 <= st < 300:
            raise AssertionError("SUBSCRIBE %s: %d" % (presentity, st))
        return call_id

    def states(self, presentity):
        with self.lock:
            return list(self.notifies.get(presentity, []))

    def wait_state(self, presentity, pred, timeout=30, what=None):
        """Wait for a NOTIFY whose parsed body satisfies pred; returns it."""
        def seen():
            for st in reversed(self.states(presentity)):
                return st if pred(st) else None
            return None
        return wait_for(seen, timeout, what or "NOTIFY for %s" % presentity,
                        interval=0.1)


def is_available(st):
    return st["basic"] == "open" and not st["activities"] and \
        st["note"] == "Available"


def is_meeting(st):
    return st["basic"] == "open" and \
        sorted(st["activities"]) == ["busy", "meeting"] and \
        st["note"] == "In a meeting"


def is_oof(st):
    return st["basic"] == "open" and \
        sorted(st["activities"]) == ["away", "vacation"] and \
        st["note"] == "Out of office"
