"""Start a service the way its installed systemd unit says, without systemd.

Reads the [Service] section of a unit file and runs its ExecStartPre= and
ExecStart= command lines as written, with what systemd would give them for
the directives the ewsgw unit uses: User=/Group=/SupplementaryGroups=
(when run as root and the user exists), UMask=, a clean environment,
RuntimeDirectory=/StateDirectory=/LogsDirectory= created and owned by the
user, LoadCredential= files copied into a private $CREDENTIALS_DIRECTORY
(0500, each credential 0400, owned by the user), and a $NOTIFY_SOCKET on
which it waits for READY=1.  ExecReload=/bin/kill -HUP $MAINPID is a
SIGHUP.  The sandboxing directives (ProtectSystem= and friends,
SystemCallFilter=) are not applied here: `systemd-analyze verify` and
`security` check them on the same file.

A staging root (make install DESTDIR=ROOT, or a --prefix under ROOT)
maps every absolute path the unit names to the same path below ROOT,
unless the path is already below it; /run, /var/lib and /var/log
(the directories above) are mapped the same way.

Command line (used by tests/readme-install.sh):
    unitrun.py [--root ROOT] UNIT check-status EWSGWCTL
starts the unit, waits for READY=1, runs "EWSGWCTL --socket SOCKET status"
until it exits 0 (healthy), prints its output, and stops the service.
"""
import grp
import os
import pwd
import shlex
import shutil
import signal
import subprocess
import sys
import tempfile
import time

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)),
                                "..", "integration"))
from ewsgwtest import NotifyListener, terminate  # noqa: E402


def parse_unit(path):
    """{key: [values]} of the [Service] section (continuation lines and
    comments handled the systemd way)."""
    out = {}
    section = None
    pending = ""
    with open(path, encoding="utf-8") as f:
        for raw in f:
            line = pending + raw.rstrip("\n")
            pending = ""
            if line.endswith("\\"):
                pending = line[:-1] + " "
                continue
            s = line.strip()
            if not s or s[0] in "#;":
                continue
            if s.startswith("[") and s.endswith("]"):
                section = s[1:-1]
                continue
            if section != "Service" or "=" not in s:
                continue
            k, v = s.split("=", 1)
            k, v = k.strip(), v.strip()
            if v == "":
                out.pop(k, None)	# an empty assignment resets a list
                continue
            out.setdefault(k, []).append(v)
    return out


class Unit:
    """One service started from a unit file; use as a context manager."""

    def __init__(self, unit_path, root=None, log_path=None, wrapper=()):
        self.unit_path = unit_path
        self.root = os.path.abspath(root) if root else None
        self.svc = parse_unit(unit_path)
        self.work = tempfile.mkdtemp(prefix="unitrun-")
        os.chmod(self.work, 0o755)
        self.log_path = log_path or os.path.join(self.work, "service.log")
        self.proc = None
        self.notify = None
        self.user = self.one("User")
        self.group = self.one("Group")
        self.as_user = (os.geteuid() == 0 and self.user is not None
                        and self._exists(self.user))
        self.dirs = {}
        self.wrapper = list(wrapper)	# put before ExecStart= (strace)

    # -- the unit's values ---------------------------------------------
    def one(self, key, default=None):
        v = self.svc.get(key)
        return v[-1] if v else default

    def path(self, p):
        """An absolute path of the unit, below the staging root."""
        if self.root is None or not p.startswith("/") or \
                p == self.root or p.startswith(self.root + "/"):
            return p
        return self.root + p

    def argv(self, key):
        """Command lines of an Exec key, prefixes (-@:+!) removed, the
        executable mapped below the root; other arguments as written
        except absolute paths, which are mapped too."""
        out = []
        for line in self.svc.get(key, []):
            args = shlex.split(line)
            ignore = False
            while args and args[0][:1] in "-@:+!":
                ignore |= args[0][0] == "-"
                args[0] = args[0][1:]
            out.append((ignore, [self.path(a) if a.startswith("/") else a
                                 for a in args]))
        return out

    @staticmethod
    def _exists(user):
        try:
            pwd.getpwnam(user)
            return True
        except KeyError:
            return False

    # -- what systemd sets up ------------------------------------------
    def _ids(self):
        if not self.as_user:
            return os.getuid(), os.getgid(), []
        pw = pwd.getpwnam(self.user)
        gid = grp.getgrnam(self.group).gr_gid if self.group else pw.pw_gid
        extra = []
        for line in self.svc.get("SupplementaryGroups", []):
            extra += [grp.getgrnam(g).gr_gid for g in line.split()]
        return pw.pw_uid, gid, extra

    def _make_dir(self, key, base, default_mode):
        names = self.svc.get(key)
        if not names:
            return
        mode = int(self.one(key + "Mode", default_mode), 8)
        uid, gid, _ = self._ids()
        paths = []
        for name in " ".join(names).split():
            d = self.path(os.path.join(base, name))
            os.makedirs(d, exist_ok=True)
            os.chmod(d, mode)
            if os.geteuid() == 0:
                os.chown(d, uid, gid)
            paths.append(d)
        env = {"RuntimeDirectory": "RUNTIME_DIRECTORY",
               "StateDirectory": "STATE_DIRECTORY",
               "LogsDirectory": "LOGS_DIRECTORY"}[key]
        self.dirs[env] = ":".join(paths)

    def _credentials(self):
        creds = self.svc.get("LoadCredential", [])
        if not creds:
            return None
        d = os.path.join(self.work, "credentials")
        os.mkdir(d, 0o700)
        uid, gid, _ = self._ids()
        for c in creds:
            name, src = c.split(":", 1)
            dst = os.path.join(d, name)
            shutil.copyfile(self.path(src), dst)
            os.chmod(dst, 0o400)
            if os.geteuid() == 0:
                os.chown(dst, uid, gid)
        os.chmod(d, 0o500)
        if os.geteuid() == 0:
            os.chown(d, uid, gid)
        return d

    def environment(self):
        uid = self._ids()[0]
        pw = pwd.getpwuid(uid)
        env = {"PATH": "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:"
                       "/sbin:/bin",
               "LANG": "C.UTF-8", "USER": pw.pw_name,
               "LOGNAME": pw.pw_name, "HOME": pw.pw_dir,
               "SHELL": "/usr/sbin/nologin",
               "INVOCATION_ID": os.urandom(16).hex(),
               "NOTIFY_SOCKET": self.notify.path}
        if self.creds:
            env["CREDENTIALS_DIRECTORY"] = self.creds
        env.update(self.dirs)
        # Sanitizer builds: keep their options (systemd would not, but
        # these only change how a sanitizer reports).
        for k, v in os.environ.items():
            if k.endswith("SAN_OPTIONS"):
                env[k] = v
        return env

    def _preexec(self):
        uid, gid, extra = self._ids()
        umask = int(self.one("UMask", "0022"), 8)

        def fn():
            os.setsid()
            os.umask(umask)
            if self.as_user:
                os.setgroups(extra)
                os.setgid(gid)
                os.setuid(uid)
            os.chdir("/")
        return fn

    # -- life cycle -------------------------------------------------------
    def start(self, timeout=60):
        self._make_dir("RuntimeDirectory", "/run", "0755")
        self._make_dir("StateDirectory", "/var/lib", "0755")
        self._make_dir("LogsDirectory", "/var/log", "0755")
        self.creds = self._credentials()
        npath = os.path.join(self.work, "notify.sock")
        self.notify = NotifyListener(npath)
        if self.as_user:
            os.chmod(self.work, 0o755)
            os.chown(npath, self._ids()[0], -1)
        env = self.environment()
        self.log = open(self.log_path, "ab")
        for ignore, args in self.argv("ExecStartPre"):
            r = subprocess.run(args, env=env, stdin=subprocess.DEVNULL,
                               stdout=self.log, stderr=self.log,
                               preexec_fn=self._preexec(), timeout=120)
            if r.returncode != 0 and not ignore:
                raise AssertionError("ExecStartPre %s exited %d:\n%s"
                                     % (args, r.returncode, self.output()))
        (_, args), = self.argv("ExecStart")
        self.proc = subprocess.Popen(self.wrapper + args, env=env, stdin=subprocess.DEVNULL,
                                     stdout=self.log, stderr=self.log,
                                     preexec_fn=self._preexec())
        deadline = time.monotonic() + timeout
        while not self.notify.seen("READY=1"):
            if self.proc.poll() is not None:
                raise AssertionError("%s exited %d before READY=1:\n%s"
                                     % (args[0], self.proc.returncode,
                                        self.output()))
            if time.monotonic() > deadline:
                raise AssertionError("no READY=1 after %ss:\n%s"
                                     % (timeout, self.output()))
            time.sleep(0.05)
        return self

    def main_pid(self):
        """$MAINPID: the service, not a wrapper in front of it."""
        if not self.wrapper:
            return self.proc.pid
        with open("/proc/%d/task/%d/children" % (self.proc.pid,
                                                   self.proc.pid)) as f:
            return int(f.read().split()[0])

    def reload(self):
        """ExecReload=/bin/kill -HUP $MAINPID"""
        os.kill(self.main_pid(), signal.SIGHUP)

    def output(self):
        try:
            with open(self.log_path, "rb") as f:
                return f.read().decode("utf-8", "replace")[-20000:]
        except OSError:
            return ""

    def stop(self, timeout=30):
        """SIGTERM to $MAINPID as systemd sends it; the exit code (a
        wrapper such as strace exits with its child's)."""
        if self.wrapper and self.proc.poll() is None:
            os.kill(self.main_pid(), signal.SIGTERM)
            try:
                return self.proc.wait(timeout)
            except subprocess.TimeoutExpired:
                pass
        return terminate(self.proc, timeout)

    def close(self):
        if self.proc is not None and self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait()
        if self.notify is not None:
            self.notify.close()
        if getattr(self, "log", None):
            self.log.close()
        shutil.rmtree(self.work, ignore_errors=True)

    def __enter__(self):
        return self

    def __exit__(self, et, ev, tb):
        if et is not None:
            sys.stderr.write("---- service output ----\n%s\n"
                             % self.output())
        self.close()
        return False


def main(argv):
    import argparse
    p = argparse.ArgumentParser()
    p.add_argument("--root")
    p.add_argument("--socket", help="status socket (default: the "
                   "RuntimeDirectory's status.sock)")
    p.add_argument("--timeout", type=float, default=120)
    p.add_argument("unit")
    p.add_argument("action", choices=["check-status"])
    p.add_argument("ewsgwctl")
    a = p.parse_args(argv)
    with Unit(a.unit, a.root) as u:
        u.start()
        sock = a.socket or os.path.join(
            u.dirs["RUNTIME_DIRECTORY"].split(":")[0], "status.sock")
        print("started %s as %s, credentials in %s" % (
            u.argv("ExecStart")[0][1][0],
            u.user if u.as_user else pwd.getpwuid(os.getuid()).pw_name,
            u.creds))
        deadline = time.monotonic() + a.timeout
        while True:
            r = subprocess.run([a.ewsgwctl, "--socket", sock, "status"],
                               capture_output=True, text=True, timeout=30)
            if r.returncode == 0 or time.monotonic() > deadline:
                break
            time.sleep(0.5)
        sys.stdout.write(r.stdout + r.stderr)
        rc = u.stop()
        if rc != 0:
            sys.stdout.write(u.output())
            print("service exited %d" % rc)
            return 1
        return r.returncode


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
