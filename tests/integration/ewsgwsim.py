"""Run the real ewsgw against the project's EWS simulator.

GatewayRun starts a simulator (tests/sim) and an ewsgw daemon configured
for it (file sink with a change log), and offers the checks the
integration tests share: wait for every mailbox to stream, read the
change log, and assert the simulator counted no throttling violation.
"""
import os
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from ewsgwtest import Daemon, TOP_SRCDIR, read_jsonl, wait_for  # noqa: E402

sys.path.insert(0, os.path.join(TOP_SRCDIR, "tests", "sim"))
from simharness import Simulator  # noqa: E402

ACCOUNT = "svc-ewsgw"
PASSWORD = "Passw0rd!"
SAMPLE = os.path.join(TOP_SRCDIR, "tests", "sim", "directory-sample.json")


def generated(n):
    return ["user%06d@example.com" % i for i in range(1, n + 1)]


class GatewayRun:
    """A simulator plus a daemon; use as a context manager."""

    def __init__(self, mailboxes, sim=None, sections=None, username=ACCOUNT,
                 password=PASSWORD, start=True):
        self.sim_opts = dict(minute_seconds=60, heartbeat_seconds=2,
                             version="Exchange2016")
        self.sim_opts.update(sim or {})
        self.mailboxes = list(mailboxes)
        self.sections = sections or {}
        self.username = username
        self.password = password
        self.autostart = start
        self.sim = None
        self.d = None

    def __enter__(self):
        self.sim = Simulator(**self.sim_opts).__enter__()
        try:
            self.d = Daemon(password=self.password)
            self.d.__enter__()
            mbfile = self.d.path("mailboxes.txt")
            with open(mbfile, "w") as f:
                f.write("# watched mailboxes\n")
                for m in self.mailboxes:
                    f.write(m + "\n")
            secs = {
                "exchange": {"url": self.sim.ews_url, "auth": "basic",
                             "username": self.username,
                             "version": "Exchange2013_SP1",
                             "password_file": self.d.password_path,
                             # Tests fix a refused password within
                             # seconds, not the minutes of the default.
                             "login_retry": "2s",
                             "login_retry_max": "10s"},
                "mailboxes": {"file": mbfile},
                "presence": {"debounce": "200ms"},
                "sink file": {"type": "file",
                              "path": self.d.path("state.json"),
                              "log": self.d.path("changes.jsonl")},
                "log": {"level": "info"},
            }
            for k, v in self.sections.items():
                if v is None:
                    secs.pop(k, None)
                else:
                    secs.setdefault(k, {}).update(v)
            self.config = secs
            self.d.write_config(self.d.render(secs))
            if self.autostart:
                self.d.start()
        except BaseException:
            self.__exit__(*sys.exc_info())
            raise
        return self

    def __exit__(self, et, ev, tb):
        if et is not None and self.sim is not None:
            sys.stderr.write("---- simulator log ----\n%s\n" % self.sim.log())
        try:
            if self.d is not None:
                self.d.__exit__(et, ev, tb)
        finally:
            if self.sim is not None:
                self.sim.__exit__(et, ev, tb)
        return False

    def rewrite_config(self, changes):
        """Write the configuration again with {section: {key: value}}
        merged in (a None value removes the key); the daemon reads it at
        the next reload."""
        for sec, kv in changes.items():
            cur = self.config.setdefault(sec, {})
            for k, v in kv.items():
                if v is None:
                    cur.pop(k, None)
                else:
                    cur[k] = v
        self.d.write_config(self.d.render(self.config))

    # -- observations ---------------------------------------------------
    def status(self):
        return self.d.request("status")

    def mailbox(self, addr):
        return self.d.request("mailbox " + addr)["mailbox"]

    def states(self):
        return self.status()["mailboxes"]["by_state"]

    def wait_state(self, state, count=None, timeout=120):
        count = len(self.mailboxes) if count is None else count

        def ok():
            st = self.states()
            return st if st.get(state, 0) == count else None
        return wait_for(ok, timeout, "%d mailboxes %s" % (count, state),
                        interval=0.2)

    def changes(self, mailbox=None):
        rows = read_jsonl(self.d.path("changes.jsonl"))
        if mailbox is not None:
            rows = [r for r in rows if r["mailbox"] == mailbox]
        return rows

    def wait_changes(self, mailbox, n, timeout=30):
        return wait_for(lambda: (lambda c: c if len(c) >= n else None)(
            self.changes(mailbox)), timeout,
            "%d changes for %s" % (n, mailbox))

    def assert_no_violations(self, tc):
        st = self.sim.stats()
        tc.assertEqual(st["violations_total"], 0, st["violations"])
        return st

    def assert_each_change_once(self, tc):
        """No mailbox publishes the same state twice in a row."""
        last = {}
        for r in self.changes():
            prev = last.get(r["mailbox"])
            if prev is not None:
                tc.assertNotEqual((prev["presence"], prev["activity"]),
                                  (r["presence"], r["activity"]),
                                  "duplicate publication %r" % r)
                tc.assertEqual(r["previous"], prev["presence"], r)
            last[r["mailbox"]] = r
        return last


def iso(t):
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(t))
