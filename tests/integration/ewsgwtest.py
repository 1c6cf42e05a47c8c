"""Test harness for running the real ewsgw binary.

Starts the daemon in the foreground with a generated configuration in a
private temporary directory, listens on a NOTIFY_SOCKET like systemd does,
talks to the status socket, reads sink output, and always stops the
daemon, even when a test fails.  Used by every integration test.
"""
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time

TOP_SRCDIR = os.environ.get("top_srcdir") or os.path.abspath(
    os.path.join(os.path.dirname(__file__), "..", ".."))
TOP_BUILDDIR = os.environ.get("top_builddir") or TOP_SRCDIR
EWSGW = os.environ.get("EWSGW") or os.path.join(TOP_BUILDDIR, "ewsgw")
EWSGWCTL = os.environ.get("EWSGWCTL") or os.path.join(TOP_BUILDDIR, "ewsgwctl")
sys.path.insert(0, os.path.join(TOP_SRCDIR, "tests", "sim"))

SKIP = 77
# CI has everything every test needs: there a skip is a failure.
NO_SKIP = os.environ.get("EWSGW_CI_NO_SKIP") == "1"


def skip(tc, reason):
    """Skip test case tc (or, with tc None, the whole program with exit
    77); under EWSGW_CI_NO_SKIP=1 fail instead."""
    if NO_SKIP:
        msg = "would skip (%s), but EWSGW_CI_NO_SKIP=1" % reason
        if tc is None:
            sys.stderr.write("FAIL: %s\n" % msg)
            sys.exit(1)
        tc.fail(msg)
    if tc is None:
        sys.stderr.write("SKIP: %s\n" % reason)
        sys.exit(SKIP)
    tc.skipTest(reason)


def free_port():
    """A loopback TCP port nobody listens on (at the time of asking)."""
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()
    return port


def wait_for(pred, timeout, what, interval=0.05):
    """Poll pred() until it returns a true value; fail after timeout s."""
    deadline = time.monotonic() + timeout
    last = None
    while time.monotonic() < deadline:
        last = pred()
        if last:
            return last
        time.sleep(interval)
    raise AssertionError("timed out after %ss waiting for %s (last: %r)"
                         % (timeout, what, last))


def free_port():
    """A TCP port on 127.0.0.1 that was free a moment ago."""
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()
    return port


def terminate(proc, timeout=30):
    """SIGTERM a process as systemd stops a service, and wait; its exit
    code (None if it never started)."""
    if proc is None or proc.poll() is not None:
        return proc.returncode if proc else None
    proc.send_signal(signal.SIGTERM)
    try:
        return proc.wait(timeout)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()
        raise AssertionError("%s did not stop within %ss"
                             % (proc.args[0], timeout))


class NotifyListener:
    """A datagram socket that collects sd_notify messages, drained all
    the time by a thread the way systemd drains it."""

    def __init__(self, path):
        self.path = path
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
        self.sock.bind(path)
        self.sock.settimeout(0.2)
        self.messages = []
        self.lock = threading.Lock()
        self.running = True
        self.thread = threading.Thread(target=self._drain, daemon=True)
        self.thread.start()

    def _drain(self):
        while self.running:
            try:
                data = self.sock.recv(65536)
            except socket.timeout:
                continue
            except OSError:
                break
            with self.lock:
                for line in data.decode("utf-8", "replace").split("\n"):
                    if line:
                        self.messages.append(line)

    def poll(self):
        with self.lock:
            return list(self.messages)

    def seen(self, msg):
        return any(m == msg or m.startswith(msg) for m in self.poll())

    def close(self):
        self.running = False
        self.thread.join(2)
        self.sock.close()


class Daemon:
    """One ewsgw process with its own directory, config and sockets."""

    def __init__(self, config_text=None, sections=None, password="secret",
                 extra_env=None, keep=False):
        self.dir = tempfile.mkdtemp(prefix="ewsgw-test-")
        self.keep = keep
        self.socket_path = os.path.join(self.dir, "status.sock")
        self.conf_path = os.path.join(self.dir, "ewsgw.conf")
        self.password_path = os.path.join(self.dir, "password")
        with open(os.open(self.password_path,
                          os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600),
                  "w") as f:
            f.write(password + "\n")
        self.proc = None
        self.notify = None
        self.extra_env = extra_env or {}
        self.stderr_path = os.path.join(self.dir, "stderr.log")
        self.write_config(config_text if config_text is not None
                          else self.render(sections or {}))

    # -- configuration --------------------------------------------------
    def render(self, sections):
        """Build a config from {section: {key: value}}; sane defaults."""
        base = {
            "exchange": {"url": "http://127.0.0.1:9/EWS/Exchange.asmx",
                         "auth": "basic", "username": "svc-ewsgw",
                         "password_file": self.password_path},
            "status": {"socket": self.socket_path},
        }
        for sec, kv in sections.items():
            if kv is None:
                base.pop(sec, None)
                continue
            base.setdefault(sec, {}).update(kv)
        out = []
        for sec, kv in base.items():
            out.append("[%s]" % sec)
            for k, v in kv.items():
                if isinstance(v, (list, tuple)):
                    for item in v:
                        out.append("%s = %s" % (k, item))
                else:
                    out.append("%s = %s" % (k, v))
            out.append("")
        return "\n".join(out)

    def write_config(self, text):
        tmp = self.conf_path + ".tmp"
        with open(tmp, "w") as f:
            f.write(text)
        os.replace(tmp, self.conf_path)

    def path(self, name):
        return os.path.join(self.dir, name)

    # -- process --------------------------------------------------------
    def start(self, args=(), wait_ready=True, timeout=30):
        """Start (or start again after stop) the daemon."""
        path = os.path.join(self.dir, "notify.sock")
        if self.notify is not None:
            self.notify.close()
            os.unlink(path)
        if getattr(self, "stderr", None):
            self.stderr.close()
        self.notify = NotifyListener(path)
        env = dict(os.environ)
        env["NOTIFY_SOCKET"] = self.notify.path
        env.pop("JOURNAL_STREAM", None)
        env.update(self.extra_env)
        wrapper = os.environ.get("EWSGW_WRAPPER", "").split()
        cmd = wrapper + [EWSGW, "-f", "-c", self.conf_path] + list(args)
        self.stderr = open(self.stderr_path, "ab")
        self.proc = subprocess.Popen(cmd, stdin=subprocess.DEVNULL,
                                     stdout=self.stderr, stderr=self.stderr,
                                     env=env)
        if wait_ready:
            self.wait_ready(timeout)
        return self

    def wait_ready(self, timeout=30):
        def ready():
            if self.proc.poll() is not None:
                raise AssertionError("ewsgw exited with %s:\n%s"
                                     % (self.proc.returncode, self.log()))
            return self.notify.seen("READY=1")
        wait_for(ready, timeout, "READY=1")

    def log(self):
        try:
            with open(self.stderr_path, "rb") as f:
                return f.read().decode("utf-8", "replace")
        except OSError:
            return ""

    def signal(self, sig):
        self.proc.send_signal(sig)

    def stop(self, timeout=30):
        """SIGTERM and wait; returns the exit code."""
        return terminate(self.proc, timeout)

    def close(self):
        if self.proc is not None and self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait()
        if self.notify is not None:
            self.notify.close()
        if getattr(self, "stderr", None):
            self.stderr.close()
        if not self.keep:
            shutil.rmtree(self.dir, ignore_errors=True)

    def __enter__(self):
        return self

    def __exit__(self, exc_type, exc, tb):
        if exc_type is not None:
            sys.stderr.write("---- ewsgw log (%s) ----\n%s\n"
                             % (self.dir, self.log()[-20000:]))
        self.close()

    # -- status socket --------------------------------------------------
    def request(self, line, timeout=30):
        """Send one status command; return the decoded JSON answer."""
        raw = self.request_raw(line, timeout)
        return json.loads(raw.split("\n", 1)[0])

    def request_raw(self, line, timeout=30, until_eof_marker=False):
        s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        s.settimeout(timeout)
        s.connect(self.socket_path)
        s.sendall(line.encode() + b"\n")
        data = b""
        while True:
            chunk = s.recv(65536)
            if not chunk:
                break
            data += chunk
            if until_eof_marker:
                if data.endswith(b"# EOF\n"):
                    break
            elif data.endswith(b"\n"):
                break
        s.close()
        return data.decode("utf-8")

    def ctl(self, *args, check=False):
        cmd = [EWSGWCTL, "--socket", self.socket_path] + list(args)
        return subprocess.run(cmd, capture_output=True, text=True,
                              check=check, timeout=30)


def check_config(path, env=None):
    """Run ewsgw --check-config; return (exit code, stdout+stderr)."""
    e = dict(os.environ)
    if env:
        e.update(env)
    r = subprocess.run([EWSGW, "--check-config", "-c", path],
                       capture_output=True, text=True, env=e, timeout=30)
    return r.returncode, r.stdout + r.stderr


def read_jsonl(path):
    """Parse a JSON-lines file; missing file = no lines."""
    try:
        with open(path) as f:
            return [json.loads(l) for l in f if l.strip()]
    except FileNotFoundError:
        return []
