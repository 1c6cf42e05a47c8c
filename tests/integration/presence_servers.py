"""Real presence servers for the sip and xmpp sinks' tests, on loopback.

Kamailio (presence + presence_xml, everything in memory) and Prosody
(a virtual host plus external components) are started from the minimal
configurations in tests/servers/ with ports picked at run time and all
state in a private temporary directory; a test certificate authority
signs their TLS certificates for "localhost" and 127.0.0.1.  Each server
raises unittest.SkipTest with the packages to install when it is not
there; tests/install-deps.sh installs them.
"""
import glob
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import unittest

from ewsgwtest import EWSGW, TOP_SRCDIR, wait_for

SERVERS = os.path.join(TOP_SRCDIR, "tests", "servers")


def require_sink(name):
    """Skip unless this ewsgw has the sink type (ewsgw --version lists
    them; configure leaves sip or xmpp out without their libraries)."""
    r = subprocess.run([EWSGW, "--version"], capture_output=True,
                       text=True, timeout=30)
    for line in r.stdout.splitlines():
        if line.startswith("sinks:") and name in line.split()[1:]:
            return
    raise unittest.SkipTest("this ewsgw was built without the %s sink "
                            "(configure --with-%s names what is missing)"
                            % (name, name))


def free_port(kinds=(socket.SOCK_STREAM, socket.SOCK_DGRAM)):
    """A port free for every socket type in kinds right now."""
    for _ in range(50):
        s = socket.socket(socket.AF_INET, kinds[0])
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
        others = []
        try:
            for k in kinds[1:]:
                o = socket.socket(socket.AF_INET, k)
                o.bind(("127.0.0.1", port))
                others.append(o)
        except OSError:
            continue
        finally:
            s.close()
            for o in others:
                o.close()
        return port
    raise RuntimeError("no free port")


def make_ca(directory):
    """A test CA and a server certificate for localhost and 127.0.0.1.

    Returns (ca.pem, cert.pem, key.pem) paths in directory."""
    import datetime
    import ipaddress
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID

    now = datetime.datetime.now(datetime.timezone.utc)
    ca_key = ec.generate_private_key(ec.SECP256R1())
    ca_name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME,
                                            "ewsgw test CA")])
    ca = (x509.CertificateBuilder()
          .subject_name(ca_name).issuer_name(ca_name)
          .public_key(ca_key.public_key())
          .serial_number(x509.random_serial_number())
          .not_valid_before(now - datetime.timedelta(hours=1))
          .not_valid_after(now + datetime.timedelta(days=2))
          .add_extension(x509.BasicConstraints(ca=True, path_length=0),
                         critical=True)
          .add_extension(x509.KeyUsage(
              digital_signature=True, key_cert_sign=True, crl_sign=True,
              content_commitment=False, key_encipherment=False,
              data_encipherment=False, key_agreement=False,
              encipher_only=False, decipher_only=False), critical=True)
          .sign(ca_key, hashes.SHA256()))
    key = ec.generate_private_key(ec.SECP256R1())
    cert = (x509.CertificateBuilder()
            .subject_name(x509.Name([x509.NameAttribute(
                NameOID.COMMON_NAME, "localhost")]))
            .issuer_name(ca_name)
            .public_key(key.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(now - datetime.timedelta(hours=1))
            .not_valid_after(now + datetime.timedelta(days=2))
            .add_extension(x509.SubjectAlternativeName([
                x509.DNSName("localhost"),
                x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]),
                critical=False)
            .add_extension(x509.BasicConstraints(ca=False, path_length=None),
                           critical=True)
            .sign(ca_key, hashes.SHA256()))
    paths = tuple(os.path.join(directory, n)
                  for n in ("ca.pem", "cert.pem", "key.pem"))
    with open(paths[0], "wb") as f:
        f.write(ca.public_bytes(serialization.Encoding.PEM))
    with open(paths[1], "wb") as f:
        f.write(cert.public_bytes(serialization.Encoding.PEM))
    with open(paths[2], "wb") as f:
        f.write(key.private_bytes(serialization.Encoding.PEM,
                                  serialization.PrivateFormat.PKCS8,
                                  serialization.NoEncryption()))
    os.chmod(paths[2], 0o644)	# servers may drop privileges
    return paths


def fill(template, out, values):
    with open(template) as f:
        text = f.read()
    for k, v in values.items():
        text = text.replace("@%s@" % k, str(v))
    with open(out, "w") as f:
        f.write(text)


class Server:
    """A server process in its own session, stopped with its children."""

    proc = None
    log_path = None

    def _spawn(self, argv, env=None):
        self.log = open(self.log_path, "ab")
        self.proc = subprocess.Popen(argv, stdin=subprocess.DEVNULL,
                                     stdout=self.log, stderr=self.log,
                                     env=env, start_new_session=True)

    def running(self):
        return self.proc is not None and self.proc.poll() is None

    def stop(self):
        if self.proc is None:
            return
        if self.proc.poll() is None:
            try:
                os.killpg(self.proc.pid, signal.SIGTERM)
            except ProcessLookupError:
                pass
            try:
                self.proc.wait(15)
            except subprocess.TimeoutExpired:
                os.killpg(self.proc.pid, signal.SIGKILL)
                self.proc.wait()
        # Children of the session may outlive the leader for a moment.
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            try:
                os.killpg(self.proc.pid, 0)
            except ProcessLookupError:
                break
            time.sleep(0.05)
        else:
            try:
                os.killpg(self.proc.pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
        self.log.close()
        self.proc = None

    def server_log(self):
        try:
            with open(self.log_path, "rb") as f:
                return f.read().decode("utf-8", "replace")
        except OSError:
            return ""

    def all_logs(self):
        return self.server_log()

    def restart(self):
        self.stop()
        return self.start()

    def __enter__(self):
        try:
            return self.start()
        except BaseException:
            self.__exit__(None, None, None)
            raise

    def __exit__(self, et, ev, tb):
        if et is not None:
            sys.stderr.write("---- %s log ----\n%s\n"
                             % (type(self).__name__,
                                self.all_logs()[-20000:]))
        self.stop()
        shutil.rmtree(self.dir, ignore_errors=True)
        return False


class Kamailio(Server):
    """Kamailio as a SIP presence server: UDP and TCP on one port, TLS on
    another, digest authentication for auth.test (401) and
    proxyauth.test (407) with PASSWORD."""

    PASSWORD = "sip-Secret-1"

    def __init__(self):
        self.binary = shutil.which("kamailio") or "/usr/sbin/kamailio"
        mods = glob.glob("/usr/lib/*/kamailio/modules/presence_xml.so") + \
            glob.glob("/usr/lib/kamailio/modules/presence_xml.so")
        tls = [m for m in glob.glob(os.path.join(
            os.path.dirname(mods[0]) if mods else "/nonexistent", "tls.so"))]
        if not os.access(self.binary, os.X_OK) or not mods or not tls:
            raise unittest.SkipTest(
                "Kamailio with its presence and TLS modules is not "
                "installed (apt-get install kamailio "
                "kamailio-presence-modules kamailio-tls-modules)")
        self.modules = os.path.dirname(mods[0]) + "/"
        self.dir = tempfile.mkdtemp(prefix="ewsgw-kamailio-")
        self.log_path = os.path.join(self.dir, "kamailio.log")
        self.ca, self.cert, self.key = make_ca(self.dir)
        self.port = free_port()
        self.tls_port = free_port((socket.SOCK_STREAM,))
        self.cfg = os.path.join(self.dir, "kamailio.cfg")
        self.tls_cfg = os.path.join(self.dir, "tls.cfg")
        self.db = os.path.join(self.dir, "db")
        fill(os.path.join(SERVERS, "kamailio-tls.cfg"), self.tls_cfg,
             {"CERT": self.cert, "KEY": self.key})
        fill(os.path.join(SERVERS, "kamailio-presence.cfg"), self.cfg,
             {"SIP_PORT": self.port, "TLS_PORT": self.tls_port,
              "MODULES": self.modules, "TLS_CFG": self.tls_cfg,
              "DB_DIR": self.db, "PASSWORD": self.PASSWORD})
        self.starts = 0

    def start(self):
        # A fresh db_text directory: whatever was published before a
        # restart is gone, as after a crash of a real server.
        shutil.rmtree(self.db, ignore_errors=True)
        os.makedirs(self.db)
        for t in ("version", "presentity", "active_watchers", "watchers",
                  "xcap", "pua"):
            shutil.copy(os.path.join("/usr/share/kamailio/dbtext/kamailio",
                                     t), self.db)
        rundir = os.path.join(self.dir, "run")
        os.makedirs(rundir, exist_ok=True)
        self._spawn([self.binary, "-DD", "-E", "-m", "64", "-M", "8",
                     "-f", self.cfg, "-P", os.path.join(rundir, "pid"),
                     "-Y", rundir])
        self.starts += 1
        wait_for(self.answering, 30, "Kamailio on 127.0.0.1:%d" % self.port,
                 interval=0.2)
        return self

    def publishes(self, uri=None):
        """The PUBLISH requests Kamailio logged (each attempt, a
        challenged one twice), oldest first, as dicts with uri, expires
        (int) and if_match (None without SIP-If-Match); only those for
        uri when given."""
        out = []
        for m in re.finditer(r"PUBLISH (\S+) from \S+ via \S+ "
                             r"expires=(\S+) if-match=(\S+)",
                             self.server_log()):
            if uri is not None and m.group(1) != uri:
                continue
            out.append({"uri": m.group(1),
                        "expires": int(m.group(2)) if
                        m.group(2).isdigit() else None,
                        "if_match": None if m.group(3) == "<null>"
                        else m.group(3)})
        return out

    def answering(self):
        """An OPTIONS over UDP gets a response, and TCP and TLS listen."""
        if not self.running():
            raise AssertionError("kamailio exited:\n" +
                                 self.server_log()[-4000:])
        s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        s.settimeout(0.3)
        try:
            s.bind(("127.0.0.1", 0))
            lp = s.getsockname()[1]
            msg = ("OPTIONS sip:ping@127.0.0.1:%d SIP/2.0\r\n"
                   "Via: SIP/2.0/UDP 127.0.0.1:%d;branch=z9hG4bKping%d\r\n"
                   "From: <sip:ping@127.0.0.1>;tag=1\r\n"
                   "To: <sip:ping@127.0.0.1>\r\nCall-ID: ping%d\r\n"
                   "CSeq: 1 OPTIONS\r\nMax-Forwards: 70\r\n"
                   "Content-Length: 0\r\n\r\n"
                   % (self.port, lp, time.monotonic_ns(), lp))
            s.sendto(msg.encode(), ("127.0.0.1", self.port))
            s.recv(4096)
        except OSError:
            return False
        finally:
            s.close()
        for p in (self.port, self.tls_port):
            try:
                socket.create_connection(("127.0.0.1", p), 1).close()
            except OSError:
                return False
        return True



class Prosody(Server):
    """Prosody with the virtual host "localhost" (c2s on a plain port),
    the components presence.localhost and tlspresence.localhost on a
    plain component port and a direct-TLS port, and users created with
    register()."""

    SECRET = "component-Secret-1"
    DOMAIN = "localhost"
    COMPONENTS = ("presence.localhost", "tlspresence.localhost")

    def __init__(self):
        self.binary = shutil.which("prosody") or "/usr/bin/prosody"
        if not os.access(self.binary, os.X_OK):
            raise unittest.SkipTest("Prosody is not installed "
                                    "(apt-get install prosody)")
        self.dir = tempfile.mkdtemp(prefix="ewsgw-prosody-")
        os.chmod(self.dir, 0o755)
        self.log_path = os.path.join(self.dir, "prosody.log")
        self.ca, self.cert, self.key = make_ca(self.dir)
        self.c2s_port = free_port((socket.SOCK_STREAM,))
        self.component_port = free_port((socket.SOCK_STREAM,))
        self.tls_port = free_port((socket.SOCK_STREAM,))
        self.data = os.path.join(self.dir, "data")
        os.makedirs(self.data)
        self.cfg = os.path.join(self.dir, "prosody.cfg.lua")
        fill(os.path.join(SERVERS, "prosody.cfg.lua"), self.cfg,
             {"DATA": self.data, "PID": os.path.join(self.dir, "pid"),
              "LOG": os.path.join(self.dir, "prosody-internal.log"),
              "C2S_PORT": self.c2s_port,
              "COMPONENT_PORT": self.component_port,
              "TLS_PORT": self.tls_port, "CERT": self.cert,
              "KEY": self.key, "SECRET": self.SECRET})
        self.starts = 0

    def env(self):
        e = dict(os.environ)
        e["HOME"] = self.dir
        return e

    def register(self, user, password):
        """An account on the virtual host, in internal_plain storage
        (what prosodyctl register writes; prosodyctl itself would
        switch to the prosody user, who cannot write our directory)."""
        d = os.path.join(self.data, self.DOMAIN, "accounts")
        os.makedirs(d, exist_ok=True)
        with open(os.path.join(d, user + ".dat"), "w") as f:
            f.write('return {\n\t["password"] = "%s";\n};\n' % password)

    def start(self):
        self._spawn([self.binary, "--config", self.cfg, "-F"],
                    env=self.env())
        self.starts += 1
        wait_for(self.answering, 30, "Prosody on 127.0.0.1:%d"
                 % self.c2s_port, interval=0.2)
        return self

    def answering(self):
        if not self.running():
            raise AssertionError("prosody exited:\n" +
                                 self.server_log()[-4000:])
        for p in (self.c2s_port, self.component_port, self.tls_port):
            try:
                socket.create_connection(("127.0.0.1", p), 1).close()
            except OSError:
                return False
        return True

    def all_logs(self):
        try:
            with open(os.path.join(self.dir, "prosody-internal.log"),
                      "rb") as f:
                internal = f.read().decode("utf-8", "replace")
        except OSError:
            internal = ""
        return self.server_log() + internal


class DnsServer:
    """An authoritative-only DNS responder on a loopback UDP port for
    RFC 3263 tests: records {(name, type): [rdata text, ...]}; anything
    else is answered NXDOMAIN (unknown name) or NODATA.  Counts the
    questions it got, as (name, type) pairs."""

    def __init__(self, records):
        try:
            import dns.message
            import dns.rrset
        except ImportError:
            raise unittest.SkipTest("dnspython is not installed "
                                    "(apt-get install python3-dnspython)")
        import threading
        self.records = {(n.lower().rstrip("."), t): v
                        for (n, t), v in records.items()}
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        self.sock.bind(("127.0.0.1", 0))
        self.sock.settimeout(0.2)
        self.port = self.sock.getsockname()[1]
        self.questions = []
        self.running = True
        self.thread = threading.Thread(target=self._loop, daemon=True)
        self.thread.start()

    def _loop(self):
        import dns.flags
        import dns.message
        import dns.rcode
        import dns.rdatatype
        import dns.rrset
        while self.running:
            try:
                data, addr = self.sock.recvfrom(4096)
            except socket.timeout:
                continue
            except OSError:
                break
            try:
                q = dns.message.from_wire(data)
            except Exception:
                continue
            r = dns.message.make_response(q)
            r.flags |= dns.flags.AA
            for question in q.question:
                name = question.name.to_text().lower().rstrip(".")
                rtype = dns.rdatatype.to_text(question.rdtype)
                self.questions.append((name, rtype))
                vals = self.records.get((name, rtype))
                if vals:
                    r.answer.append(dns.rrset.from_text_list(
                        question.name, 60, "IN", rtype, vals))
                elif not any(n == name for n, _ in self.records):
                    r.set_rcode(dns.rcode.NXDOMAIN)
            self.sock.sendto(r.to_wire(), addr)

    def asked(self, name, rtype):
        return (name.lower(), rtype) in self.questions

    def close(self):
        self.running = False
        self.thread.join(2)
        self.sock.close()

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()
        return False


class LossyRelay:
    """A UDP relay on a loopback port in front of a SIP server that
    drops the first copy of every request (by its Via branch), so only
    an RFC 3261 retransmission gets through; responses (sent back to
    the relay: the client asks for rport) go to the last client seen.
    Counts what it dropped and what it passed."""

    def __init__(self, server_port):
        import threading
        self.server = ("127.0.0.1", server_port)
        self.front = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        self.front.bind(("127.0.0.1", 0))
        self.port = self.front.getsockname()[1]
        self.back = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        self.back.bind(("127.0.0.1", 0))
        self.client = None
        self.seen = set()
        self.dropped = []
        self.passed = []
        self.lock = threading.Lock()
        self.running = True
        self.thread = threading.Thread(target=self._loop, daemon=True)
        self.thread.start()

    def _loop(self):
        import select
        while self.running:
            try:
                ready, _, _ = select.select([self.front, self.back],
                                            [], [], 0.2)
            except (OSError, ValueError):
                break
            for sock in ready:
                try:
                    data, addr = sock.recvfrom(65535)
                except OSError:
                    continue
                if sock is self.back:
                    if self.client is not None:
                        self.front.sendto(data, self.client)
                    continue
                self.client = addr
                text = data.decode("utf-8", "replace")
                m = re.search(r"branch=([^;\r\n]+)", text)
                key = m.group(1) if m else None
                with self.lock:
                    first = key is not None and key not in self.seen
                    if key is not None:
                        self.seen.add(key)
                    (self.dropped if first else self.passed).append(text)
                if not first:
                    self.back.sendto(data, self.server)

    def counts(self):
        with self.lock:
            return len(self.dropped), len(self.passed)

    def close(self):
        self.running = False
        self.thread.join(2)
        self.front.close()
        self.back.close()

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()
        return False
