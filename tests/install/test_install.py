# ewsgw - Exchange calendar presence gateway
# SPDX-License-Identifier: ISC
#
# What "make install" ships works as installed: install into a staging
# root (DESTDIR), check that no @...@ survived into any installed file,
# check the installed unit with systemd-analyze, build the plugin
# template with the README's one-line command against the staged
# pkg-config file, and run the installed ewsgw with the installed
# configuration (pointed at the simulator) the way the installed unit
# starts it: its ExecStartPre= and ExecStart= command lines, its user,
# its directories, the password as a systemd credential; every system
# call it makes (strace) must be one the unit's SystemCallFilter= allows.
import glob
import json
import os
import pwd
import grp
import re
import shutil
import subprocess
import sys
import tempfile
import unittest

HERE = os.path.dirname(os.path.abspath(__file__))
TOP = os.environ.get("top_srcdir") or os.path.abspath(
    os.path.join(HERE, "..", ".."))
BUILD = os.environ.get("top_builddir") or TOP
sys.path.insert(0, HERE)
sys.path.insert(0, os.path.join(TOP, "tests", "integration"))
sys.path.insert(0, os.path.join(TOP, "tests", "sim"))
from unitrun import Unit, parse_unit  # noqa: E402
from ewsgwtest import wait_for, read_jsonl, skip  # noqa: E402
from simharness import Simulator  # noqa: E402

PASSWORD = "the-service-password"
MAKE = os.environ.get("MAKE", "make")


def readme_plugin_command():
    """The README's one-line command that builds the plugin template."""
    with open(os.path.join(TOP, "README.md"), encoding="utf-8") as f:
        for line in f:
            s = line.strip()
            if s.startswith("cc ") and "pkg-config --cflags ewsgw-sink" in s:
                return s
    raise AssertionError("README.md has no plugin build command")


def syscall_groups():
    """{"@group": [members]} from systemd-analyze syscall-filter."""
    sa = os.environ.get("SYSTEMD_ANALYZE") or "systemd-analyze"
    out = subprocess.run([sa, "syscall-filter"], capture_output=True,
                         text=True, check=True).stdout
    groups, cur = {}, None
    for line in out.splitlines():
        s = line.strip()
        if line.startswith("@"):	# a group; its members are indented
            cur = groups.setdefault(s.split()[0], [])
        elif s and not s.startswith("#") and cur is not None:
            cur.append(s)
    return groups


def unit_allowed_syscalls(svc, groups):
    """The system calls SystemCallFilter= lines of a unit allow, as
    systemd reads them: the first line an allow list, then each ~line
    takes away and each other line adds."""
    def expand(names, seen=()):
        out = set()
        for n in names:
            if n.startswith("@"):
                if n not in seen:
                    out |= expand(groups.get(n, []), seen + (n,))
            else:
                out.add(n)
        return out
    allowed = None
    for line in svc.get("SystemCallFilter", []):
        deny = line.startswith("~")
        names = expand(line.lstrip("~").split())
        if allowed is None:
            assert not deny, "the unit's first SystemCallFilter= denies"
            allowed = names
        elif deny:
            allowed -= names
        else:
            allowed |= names
    return allowed


def strace_syscalls(path):
    """System call names of an strace -c summary."""
    names = set()
    with open(path, encoding="utf-8") as f:
        for line in f:
            cols = line.split()
            if len(cols) >= 5 and re.match(r"^[0-9.]+$", cols[0]) \
                    and cols[-1] != "total":
                names.add(cols[-1])
    return names


def edit_conf(text, section, key, value):
    """Set key in [section] of an ewsgw.conf text: the active line if
    there is one, else the commented one, else a new line."""
    lines = text.split("\n")
    start = None
    for i, l in enumerate(lines):
        if l.strip() == "[%s]" % section:
            start = i
            break
    if start is None:
        lines += ["", "[%s]" % section, "%s = %s" % (key, value)]
        return "\n".join(lines)
    end = len(lines)
    for i in range(start + 1, len(lines)):
        if lines[i].startswith("["):
            end = i
            break
    for pat in (r"^%s\s*=" % key, r"^#%s\s*=" % key):
        for i in range(start + 1, end):
            if re.match(pat, lines[i]):
                lines[i] = "%s = %s" % (key, value)
                return "\n".join(lines)
    lines.insert(start + 1, "%s = %s" % (key, value))
    return "\n".join(lines)


class Installed(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.tmp = tempfile.mkdtemp(prefix="ewsgw-install-")
        os.chmod(cls.tmp, 0o755)	# the service user reaches its files
        cls.root = os.path.join(cls.tmp, "root")
        env = dict(os.environ)
        for k in ("MAKEFLAGS", "MFLAGS", "MAKELEVEL"):
            env.pop(k, None)
        r = subprocess.run([MAKE, "-C", BUILD, "install",
                            "DESTDIR=" + cls.root],
                           capture_output=True, text=True, env=env,
                           timeout=600)
        if r.returncode != 0:
            raise AssertionError("make install failed:\n%s%s"
                                 % (r.stdout[-5000:], r.stderr[-5000:]))
        units = glob.glob(cls.root + "/**/systemd/system/ewsgw.service",
                          recursive=True)
        assert len(units) == 1, units
        cls.unit = units[0]
        cls.svc = parse_unit(cls.unit)

    @classmethod
    def tearDownClass(cls):
        shutil.rmtree(cls.tmp, ignore_errors=True)

    def staged(self, path):
        return self.root + path

    def exec_start(self):
        return self.svc["ExecStart"][0].split()

    # -- the installed tree ---------------------------------------------
    def test_no_placeholder_survives(self):
        pat = re.compile(rb"@[A-Za-z_][A-Za-z_0-9]*@")
        checked = 0
        for dirpath, _, files in os.walk(self.root):
            for name in files:
                p = os.path.join(dirpath, name)
                if os.path.islink(p):
                    continue
                with open(p, "rb") as f:
                    data = f.read()
                if data.startswith(b"\x7fELF"):
                    continue
                checked += 1
                m = pat.search(data)
                self.assertIsNone(m, "%s holds %r" % (
                    p[len(self.root):], m and m.group(0)))
        self.assertGreater(checked, 8)

    def test_expected_files(self):
        argv = self.exec_start()
        self.assertTrue(os.access(self.staged(argv[0]), os.X_OK), argv)
        self.assertEqual(argv[1:3], ["-f", "-c"])
        self.assertTrue(os.path.isfile(self.staged(argv[3])), argv)
        sbindir = os.path.dirname(argv[0])
        prefix = os.path.dirname(sbindir)
        for p in ("bin/ewsgwctl", "include/ewsgw/sink.h",
                  "lib/sysusers.d/ewsgw.conf",
                  "share/man/man5/ewsgw-sinks.5",
                  "share/man/man5/ewsgw.conf.5",
                  "share/man/man8/ewsgw.8", "share/man/man1/ewsgwctl.1"):
            self.assertTrue(os.path.exists(self.staged(
                os.path.join(prefix, p))), p)
        pcs = glob.glob(self.root + "/**/pkgconfig/ewsgw-sink.pc",
                        recursive=True)
        self.assertEqual(len(pcs), 1, pcs)

    def test_unit_documents_every_manual(self):
        with open(self.unit, encoding="utf-8") as f:
            text = f.read()
        docs = re.findall(r"^Documentation=(.*)$", text, re.M)
        pages = {os.path.basename(p) for p in glob.glob(TOP + "/man/*.[0-9]")}
        for page in pages:
            name, sec = page.rsplit(".", 1)
            self.assertIn("man:%s(%s)" % (name, sec), " ".join(docs))

    def test_unit_analyze(self):
        """systemd-analyze verify and security on the installed unit."""
        if not os.environ.get("SYSTEMD_ANALYZE"):
            skip(self, "no systemd-analyze")
        r = subprocess.run(["sh", os.path.join(TOP, "tests",
                                               "systemd-unit.sh"),
                            self.unit, self.root],
                           capture_output=True, text=True, timeout=120)
        sys.stdout.write(r.stdout)
        self.assertEqual(r.returncode, 0, r.stdout + r.stderr)

    def test_example_paths_writable_under_unit(self):
        """Every path the shipped examples let ewsgw write lies in a
        directory the unit makes writable (ProtectSystem=strict)."""
        writable = []
        for key, base in (("StateDirectory", "/var/lib"),
                          ("LogsDirectory", "/var/log"),
                          ("RuntimeDirectory", "/run")):
            for name in " ".join(self.svc.get(key, [])).split():
                writable.append(os.path.join(base, name) + "/")
        paths = []
        for doc in ("man/ewsgw-sinks.5", "man/ewsgw.conf.5",
                    "etc/ewsgw.conf", "README.md"):
            with open(os.path.join(TOP, doc), encoding="utf-8") as f:
                for line in f:
                    m = re.match(r"^#?\s*(path|log|socket)\s*=\s*(/\S+)",
                                 line)
                    if m and re.search(r"\.(json|jsonl|sock)$",
                                       m.group(2)):
                        paths.append((doc, m.group(2)))
        self.assertTrue(paths)
        for doc, p in paths:
            p = p.replace("/var/run/", "/run/")
            self.assertTrue(any(p.startswith(w) for w in writable),
                            "%s: %s is not below %s" % (doc, p, writable))

    # -- the plugin template outside the tree ---------------------------
    def build_plugin(self):
        cmd = readme_plugin_command()
        work = os.path.join(self.tmp, "plugin")
        os.makedirs(os.path.join(work, "src", "sinks"), exist_ok=True)
        shutil.copy(os.path.join(TOP, "src", "sinks", "example_plugin.c"),
                    os.path.join(work, "src", "sinks"))
        pc = glob.glob(self.root + "/**/pkgconfig/ewsgw-sink.pc",
                       recursive=True)[0]
        env = dict(os.environ, PKG_CONFIG_PATH=os.path.dirname(pc),
                   PKG_CONFIG_SYSROOT_DIR=self.root)
        r = subprocess.run(["pkg-config", "--cflags", "ewsgw-sink"],
                           capture_output=True, text=True, env=env)
        self.assertEqual(r.returncode, 0, r.stderr)
        self.assertTrue(r.stdout.strip().startswith("-I" + self.root),
                        r.stdout)
        r = subprocess.run(cmd + " -Wall -Wextra -Werror", shell=True,
                           cwd=work, capture_output=True, text=True,
                           env=env, timeout=120)
        self.assertEqual(r.returncode, 0, "%s\n%s" % (cmd, r.stderr))
        so = re.search(r"-o\s+(\S+)", cmd).group(1)
        return os.path.join(work, so)

    def test_plugin_template_builds_outside_tree(self):
        self.assertTrue(os.path.exists(self.build_plugin()))

    # -- the service, as the unit starts it -----------------------------
    def test_service_as_installed(self):
        plugin = self.build_plugin()
        conf = self.staged(self.exec_start()[3])
        with open(conf, encoding="utf-8") as f:
            text = f.read()
        # The credential the shipped configuration names is the one the
        # unit loads; put the password where the unit loads it from.
        cred = re.search(r"^password_file\s*=\s*(\S+)", text, re.M).group(1)
        self.assertNotIn("/", cred)
        loads = dict(c.split(":", 1) for c in self.svc["LoadCredential"])
        self.assertIn(cred, loads)
        os.makedirs(os.path.dirname(self.staged(loads[cred])),
                    exist_ok=True)
        with open(self.staged(loads[cred]), "w") as f:
            f.write(PASSWORD + "\n")
        os.chmod(self.staged(loads[cred]), 0o600)

        org = {"accounts": [{"username": "svc-ewsgw", "password": PASSWORD,
                             "domain": "EXAMPLE", "impersonate": "*"}],
               "mailboxes": [
                   {"smtp": "alice@example.com", "oof": {"state": "Disabled"},
                    "items": [{"subject": "Now", "start": "now-10m",
                               "end": "now+50m", "freebusy": "Busy"}]},
                   {"smtp": "bob@example.com", "oof": {"state": "Disabled"},
                    "items": []}]}
        orgfile = os.path.join(self.tmp, "org.json")
        with open(orgfile, "w") as f:
            json.dump(org, f)

        # The unit's SystemCallFilter= is not applied here (no
        # systemd), so every system call the service makes is recorded
        # and must be one the filter allows.  Sanitizer builds make
        # system calls of their own: not there.
        with open(self.staged(self.exec_start()[0]), "rb") as f:
            sanitized = b"__asan_init" in f.read()
        trace = os.path.join(self.tmp, "strace.txt")
        strace = shutil.which("strace")
        if strace is None and not sanitized:
            skip(self, "no strace: cannot check the system call filter")
        wrapper = [] if sanitized else [strace, "-f", "-c", "-o", trace]
        unit = Unit(self.unit, self.root, wrapper=wrapper)
        open(trace, "w").close()	# strace runs as the service's user
        os.chown(trace, unit._ids()[0], -1) if os.geteuid() == 0 else None
        # Where the service may write: the unit's directories.
        sock = self.staged("/run/ewsgw/status.sock")
        state = "/var/lib/ewsgw/presence.json"
        log = "/var/log/ewsgw/changes.jsonl"
        out = self.staged("/var/lib/ewsgw/plugin.out")
        gname = grp.getgrgid(unit._ids()[1]).gr_name
        with Simulator(directory=orgfile, minute_seconds=60,
                       heartbeat_seconds=2) as sim, unit:
            text = edit_conf(text, "exchange", "url", sim.ews_url)
            text = edit_conf(text, "mailboxes", "mailbox",
                             "alice@example.com")
            text = text.replace("mailbox = alice@example.com",
                                "mailbox = alice@example.com\n"
                                "mailbox = bob@example.com", 1)
            text = edit_conf(text, "status", "socket", sock)
            text = edit_conf(text, "status", "group", gname)
            text += ("\n[sink state]\ntype = file\npath = %s\nlog = %s\n"
                     "\n[sink custom]\ntype = plugin\npath = %s\n"
                     "output = %s\n" % (self.staged(state),
                                        self.staged(log), plugin, out))
            with open(conf, "w") as f:
                f.write(text)
            unit.start()
            ctl = self.staged(os.path.join(os.path.dirname(os.path.dirname(
                self.exec_start()[0])), "bin", "ewsgwctl"))

            def status():
                r = subprocess.run([ctl, "--socket", sock, "status"],
                                   capture_output=True, text=True,
                                   timeout=30)
                return r if r.returncode == 0 else None
            r = wait_for(status, 60, "ewsgwctl status healthy", 0.3)
            self.assertRegex(r.stdout, r"(?m)^health: +healthy$")
            rows = wait_for(lambda: (lambda c: c if len(c) >= 2 else None)(
                read_jsonl(self.staged(log))), 60, "two changes")
            seen = {(c["mailbox"], c["presence"]) for c in rows}
            self.assertIn(("alice@example.com", "busy"), seen)
            self.assertIn(("bob@example.com", "available"), seen)
            def plugin_wrote():
                try:
                    with open(out, encoding="utf-8") as f:
                        return "alice@example.com" in f.read()
                except FileNotFoundError:
                    return False
            wait_for(plugin_wrote, 30, "the plugin's output")
            st = os.stat(self.staged(log))
            self.assertEqual(st.st_uid, unit._ids()[0])
            self.assertEqual(os.stat(sock).st_gid, unit._ids()[1])
            # A reload, a status request: the service's usual calls.
            unit.reload()
            wait_for(lambda: "configuration reloaded" in unit.output(), 30,
                     "the reload")
            self.assertIsNotNone(status())
            self.assertEqual(unit.stop(), 0, unit.output())
            self.assertNotIn(PASSWORD, unit.output())
        if wrapper:
            used = strace_syscalls(trace)
            self.assertIn("connect", used)
            allowed = unit_allowed_syscalls(self.svc, syscall_groups())
            self.assertIn("fchownat", allowed)	# [status] group
            self.assertFalse(used - allowed, "system calls the unit's "
                             "SystemCallFilter= refuses: %s"
                             % sorted(used - allowed))
            print("%d system calls used, all allowed by the unit"
                  % len(used))
        print("service ran as %s" % pwd.getpwuid(unit._ids()[0]).pw_name)
        if os.geteuid() == 0 and not unit.as_user:
            skip(self, "user %s does not exist (systemd-sysusers): the "
                 "service ran as root, not as the unit's user" % unit.user)


if __name__ == "__main__":
    unittest.main(verbosity=2)
