"""Start the EWS simulator for a test and always stop it.

    import os, sys
    sys.path.insert(0, os.path.join(os.environ.get("top_srcdir", "."), "tests", "sim"))
    from simharness import Simulator

    with Simulator(directory="tests/sim/directory-sample.json", minute_seconds=1) as sim:
        sim.ews_url            # http://127.0.0.1:PORT/EWS/Exchange.asmx
        sim.control("POST", "/mailboxes/alice@example.com/items", {...})
        sim.stats()["violations_total"]

Keyword options map to command line options: minute_seconds=1 -> --minute-seconds 1,
ntlm_v2_only=True -> --ntlm-v2-only, auth="basic" -> --auth basic (False/None omitted).
"""
import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request

HERE = os.path.dirname(os.path.abspath(__file__))
EWSSIM = os.path.join(HERE, "ewssim.py")
PYTHON = "/usr/bin/python3" if os.path.exists("/usr/bin/python3") else sys.executable


class SimulatorError(RuntimeError):
    pass


class Simulator:
    def __init__(self, ready_timeout=30.0, stderr=None, extra_args=(), **options):
        self.options = options
        self.ready_timeout = ready_timeout
        self.extra_args = list(extra_args)
        self.stderr = stderr
        self.proc = None
        self.tmpdir = None
        self.ews_url = None
        self.autodiscover_url = None
        self.control_url = None
        self.pid = None
        self.info = None

    def argv(self, ready_file):
        args = [PYTHON, EWSSIM, "--listen", "127.0.0.1:0", "--control", "127.0.0.1:0",
                "--ready-file", ready_file]
        for k, v in self.options.items():
            if v is None or v is False:
                continue
            flag = "--" + k.replace("_", "-")
            if v is True:
                args.append(flag)
            elif isinstance(v, (list, tuple)):
                args += [flag, ",".join(str(x) for x in v)]
            else:
                args += [flag, str(v)]
        return args + self.extra_args

    def start(self):
        self.tmpdir = tempfile.mkdtemp(prefix="ewssim-")
        ready = os.path.join(self.tmpdir, "ready.json")
        self.log_path = os.path.join(self.tmpdir, "sim.log")
        err = self.stderr if self.stderr is not None else open(self.log_path, "wb")
        self.proc = subprocess.Popen(self.argv(ready), stdout=subprocess.DEVNULL, stderr=err,
                                     stdin=subprocess.DEVNULL)
        if self.stderr is None:
            err.close()
        deadline = time.monotonic() + self.ready_timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise SimulatorError("simulator exited with %s: %s" % (self.proc.returncode, self.log()))
            if os.path.exists(ready):
                with open(ready, encoding="utf-8") as fh:
                    self.info = json.load(fh)
                self.ews_url = self.info["ews_url"]
                self.autodiscover_url = self.info.get("autodiscover_url")
                self.control_url = self.info["control_url"]
                self.pid = self.info["pid"]
                return self
            time.sleep(0.05)
        self.stop()
        raise SimulatorError("simulator not ready after %.0f s" % self.ready_timeout)

    def log(self):
        try:
            with open(self.log_path, encoding="utf-8", errors="replace") as fh:
                return fh.read()[-4000:]
        except OSError:
            return ""

    def stop(self):
        p = self.proc
        if p is not None and p.poll() is None:
            p.send_signal(signal.SIGTERM)
            try:
                p.wait(5)
            except subprocess.TimeoutExpired:
                p.kill()
                p.wait(5)
        self.proc = None
        if self.tmpdir:
            shutil.rmtree(self.tmpdir, ignore_errors=True)
            self.tmpdir = None

    def __enter__(self):
        try:
            return self.start()
        except BaseException:
            self.stop()
            raise

    def __exit__(self, *exc):
        self.stop()
        return False

    def control(self, method, path, body=None, timeout=10.0):
        """JSON control request -> (status, decoded JSON)."""
        data = None if body is None else json.dumps(body).encode("utf-8")
        req = urllib.request.Request(self.control_url + path, data=data, method=method,
                                     headers={"Content-Type": "application/json"})
        try:
            with urllib.request.urlopen(req, timeout=timeout) as r:
                return r.status, json.loads(r.read() or b"null")
        except urllib.error.HTTPError as e:
            raw = e.read()
            try:
                return e.code, json.loads(raw)
            except ValueError:
                return e.code, {"error": raw.decode("utf-8", "replace")}

    def stats(self):
        status, data = self.control("GET", "/stats")
        if status != 200:
            raise SimulatorError("GET /stats -> %s" % status)
        return data

    def reset_stats(self):
        return self.control("POST", "/stats/reset")

    def add_item(self, smtp, item):
        status, data = self.control("POST", "/mailboxes/%s/items" % smtp, item)
        if status != 201:
            raise SimulatorError("add item failed: %s %s" % (status, data))
        return data

    def fault(self, spec):
        return self.control("POST", "/faults", spec)

    def clear_faults(self):
        return self.control("DELETE", "/faults")
