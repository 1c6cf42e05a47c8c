"""Start the Graph stand-in for a test and always stop it.

    from harness import GraphSim
    with GraphSim(allow="adele@contoso.com", latency_ms=50) as g:
        g.token_url, g.graph_url, g.control("POST", "/faults", {"throttle": 2})
        g.stats()["violations_total"]

Keyword options map to command line options as in tests/sim/simharness.py.
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
PYTHON = "/usr/bin/python3" if os.path.exists("/usr/bin/python3") else sys.executable


class GraphSim:
    def __init__(self, ready_timeout=30.0, **options):
        self.options = options
        self.ready_timeout = ready_timeout
        self.proc = None
        self.tmpdir = None

    def argv(self, ready):
        args = [PYTHON, os.path.join(HERE, "graphsim.py"), "--ready-file", ready]
        for k, v in self.options.items():
            if v is None or v is False:
                continue
            flag = "--" + k.replace("_", "-")
            args += [flag] if v is True else [flag, str(v)]
        return args

    def start(self):
        self.tmpdir = tempfile.mkdtemp(prefix="graphsim-")
        ready = os.path.join(self.tmpdir, "ready.json")
        self.log_path = os.path.join(self.tmpdir, "graphsim.log")
        with open(self.log_path, "wb") as err:
            self.proc = subprocess.Popen(self.argv(ready), stdout=subprocess.DEVNULL,
                                         stderr=err, stdin=subprocess.DEVNULL)
        deadline = time.monotonic() + self.ready_timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError("graphsim exited: " + self.log())
            if os.path.exists(ready):
                with open(ready, encoding="utf-8") as fh:
                    self.info = json.load(fh)
                self.graph_url = self.info["graph_url"]
                self.token_url = self.info["token_url"]
                self.control_url = self.info["control_url"]
                self.client_id = self.info["client_id"]
                self.tenant = self.info["tenant"]
                return self
            time.sleep(0.05)
        self.stop()
        raise RuntimeError("graphsim not ready")

    def log(self):
        try:
            with open(self.log_path, encoding="utf-8", errors="replace") as fh:
                return fh.read()[-4000:]
        except OSError:
            return ""

    def stop(self):
        if self.proc is not None and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        if self.tmpdir:
            shutil.rmtree(self.tmpdir, ignore_errors=True)
            self.tmpdir = None

    def __enter__(self):
        return self.start()

    def __exit__(self, *exc):
        self.stop()

    def control(self, method, path, body=None):
        data = json.dumps(body).encode() if body is not None else None
        req = urllib.request.Request(self.control_url + path, data=data, method=method,
                                     headers={"Content-Type": "application/json"})
        try:
            with urllib.request.urlopen(req, timeout=30) as r:
                raw = r.read()
        except urllib.error.HTTPError as e:
            raise RuntimeError("control %s %s: %s %s" % (method, path, e.code, e.read()))
        return json.loads(raw) if raw else None

    def stats(self):
        return self.control("GET", "/stats")
