# ewsgw - Exchange calendar presence gateway
# SPDX-License-Identifier: ISC
#
# ewsgwctl end to end against a scripted status socket: the request line
# it sends, what it prints, and its exit status for each kind of answer.
import os
import socket
import subprocess
import sys
import tempfile
import threading

EWSGWCTL = os.environ.get("EWSGWCTL") or os.path.join(
    os.environ.get("top_builddir", "."), "ewsgwctl")

STATUS_OK = ('{"ok":true,"version":"0.1.0","pid":7,"uptime_s":42,'
             '"healthy":true,"problems":[]}\n')
STATUS_BAD = ('{"ok":true,"version":"0.1.0","pid":7,"uptime_s":42,'
              '"healthy":false,"problems":["no connection to Exchange"]}\n')
METRICS = "# TYPE ewsgw_up gauge\newsgw_up 1\n# EOF\n"


class FakeDaemon:
    """Answers each request line from a script; records the requests."""

    def __init__(self, path):
        self.path = path
        self.script = {}
        self.requests = []
        self.refuse = None
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        self.sock.bind(path)
        self.sock.listen(8)
        self.thread = threading.Thread(target=self.serve, daemon=True)
        self.thread.start()

    def serve(self):
        while True:
            try:
                conn, _ = self.sock.accept()
            except OSError:
                return
            with conn:
                if self.refuse:
                    # As the daemon does when full: reason, then close.
                    conn.sendall(self.refuse.encode())
                    continue
                data = b""
                while not data.endswith(b"\n"):
                    chunk = conn.recv(4096)
                    if not chunk:
                        break
                    data += chunk
                line = data.decode()
                self.requests.append(line)
                answer = self.script.get(line.strip())
                if answer is None:
                    continue            # close without answering
                if answer == "hang":
                    conn.recv(1)        # until the client gives up
                    continue
                conn.sendall(answer.encode())

    def close(self):
        # shutdown() wakes the thread blocked in accept(); close() alone
        # would leave the socket listening until the next connection.
        try:
            self.sock.shutdown(socket.SHUT_RDWR)
        except OSError:
            pass
        self.sock.close()
        self.thread.join(5)


failures = []


def run(args, env=None, want_rc=None, want_out=None, want_err=None):
    e = dict(os.environ)
    e.pop("EWSGW_SOCKET", None)
    if env:
        e.update(env)
    p = subprocess.run([EWSGWCTL] + args, capture_output=True, text=True,
                       env=e, timeout=30)
    problems = []
    if want_rc is not None and p.returncode != want_rc:
        problems.append("exit %d, want %d" % (p.returncode, want_rc))
    if want_out is not None and want_out not in p.stdout:
        problems.append("stdout lacks %r" % want_out)
    if want_err is not None and want_err not in p.stderr:
        problems.append("stderr lacks %r" % want_err)
    if problems:
        failures.append("ewsgwctl %s: %s\n--- stdout\n%s--- stderr\n%s" % (
            " ".join(args), "; ".join(problems), p.stdout, p.stderr))
    return p


def main():
    if not os.access(EWSGWCTL, os.X_OK):
        print("ewsgwctl not built: %s" % EWSGWCTL)
        return 77
    with tempfile.TemporaryDirectory(prefix="ewsgwctl.") as tmp:
        path = os.path.join(tmp, "s.sock")
        d = FakeDaemon(path)
        d.script = {
            "status": STATUS_OK,
            "mailbox a@x": '{"ok":false,"error":"unknown mailbox: a@x"}\n',
            "sinks": '{"ok":true,"sinks":[{"name":"f","type":"file",'
                     '"healthy":true}]}\n',
            "metrics": METRICS,
            "help": "this is not json\n",
            "reload": "hang",
        }
        s = ["-s", path]

        run(s + ["status"], want_rc=0, want_out="health:  healthy")
        assert d.requests[-1] == "status\n", d.requests
        run(s + ["--json", "status"], want_rc=0, want_out=STATUS_OK)
        run(["status"], env={"EWSGW_SOCKET": path}, want_rc=0,
            want_out="pid 7, up 42s")
        run(s + ["sinks"], want_rc=0, want_out="f     file  yes")
        run(s + ["metrics"], want_rc=0, want_out=METRICS)
        run(s + ["mailbox", "a@x"], want_rc=1,
            want_err="unknown mailbox: a@x")
        assert d.requests[-1] == "mailbox a@x\n", d.requests
        d.script["status"] = STATUS_BAD
        run(s + ["status"], want_rc=1, want_out="UNHEALTHY")
        run(s + ["--socket", path, "--json", "status"], want_rc=1,
            want_out=STATUS_BAD)

        # Protocol errors: garbage, closed without an answer, no answer.
        run(s + ["help"], want_rc=2, want_err="malformed answer")
        run(s + ["connections"], want_rc=2, want_err="connection closed")
        run(s + ["--timeout", "1", "reload"], want_rc=2,
            want_err="timed out")

        # Usage errors never reach the daemon.
        n = len(d.requests)
        run(s, want_rc=64, want_err="usage:")
        run(s + ["frobnicate"], want_rc=64, want_err="unknown command")
        run(s + ["mailbox"], want_rc=64, want_err="mailbox ADDRESS")
        run(s + ["status", "extra"], want_rc=64, want_err="usage")
        run(s + ["mailbox", "a b"], want_rc=64, want_err="one word")
        run(s + ["mailbox", "x" * 5000], want_rc=64, want_err="too long")
        run(s + ["--timeout", "0", "status"], want_rc=64)
        run(s + ["--bogus", "status"], want_rc=64)
        assert len(d.requests) == n, d.requests[n:]
        run(["--help"], want_rc=0, want_out="resync ADDRESS")
        run(["-V"], want_rc=0, want_out="ewsgwctl ")

        # Refused before the request is read: the reason still shows.
        d.refuse = '{"ok":false,"error":"too many clients"}\n'
        run(s + ["status"], want_rc=1, want_err="too many clients")
        d.refuse = None

        d.close()
        # Nobody listening: a stale socket file, then no file at all.
        run(s + ["status"], want_rc=2, want_err="cannot connect")
        os.unlink(path)
        run(s + ["status"], want_rc=2, want_err="cannot connect")

    for f in failures:
        print(f)
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
