# ewsgw - Exchange calendar presence gateway
# SPDX-License-Identifier: ISC
#
# ewsgwctl against the real daemon (streaming from the EWS simulator):
# every read command renders the daemon's actual answers as tables that
# agree with its JSON, and the exit statuses hold.
import json
import os
import subprocess
import sys
import unittest

TOP = os.environ.get("top_srcdir", os.path.join(os.path.dirname(
    os.path.abspath(__file__)), "..", ".."))
sys.path.insert(0, os.path.join(TOP, "tests", "integration"))
from ewsgwsim import GatewayRun, generated  # noqa: E402

EWSGWCTL = os.environ.get("EWSGWCTL", "")
EWSGW = os.environ.get("EWSGW", "")


class AgainstDaemon(unittest.TestCase):
    def test_commands(self):
        mbs = generated(3)
        with GatewayRun(mbs, sim={"generate": 3}) as g:
            g.wait_state("streaming", timeout=60)

            def ctl(*args):
                return subprocess.run(
                    [EWSGWCTL, "-s", g.d.socket_path] + list(args),
                    capture_output=True, text=True, timeout=30)

            r = ctl("status")
            self.assertEqual(r.returncode, 0, r.stderr)
            self.assertRegex(r.stdout, r"(?m)^health: +healthy$")
            self.assertRegex(r.stdout, r"(?m)^mailboxes: +3 \(.*streaming 3")

            r = ctl("--json", "status")
            self.assertEqual(r.returncode, 0, r.stderr)
            st = json.loads(r.stdout)
            self.assertTrue(st["ok"])
            self.assertEqual(r.stdout.count("\n"), 1)

            # One row per mailbox, in the daemon's order, same states.
            r = ctl("mailboxes")
            self.assertEqual(r.returncode, 0, r.stderr)
            rows = r.stdout.splitlines()
            self.assertTrue(rows[0].startswith("ADDRESS "))
            listed = json.loads(ctl("--json", "mailboxes").stdout)
            self.assertEqual(len(rows) - 1, len(listed["mailboxes"]))
            for row, m in zip(rows[1:], listed["mailboxes"]):
                self.assertEqual(row.split()[:2],
                                 [m["address"], m["state"]])

            r = ctl("mailbox", mbs[1])
            self.assertEqual(r.returncode, 0, r.stderr)
            self.assertRegex(r.stdout, r"(?m)^address: +%s$" % mbs[1])
            self.assertIn("\ntimeline:\nSTART ", r.stdout)

            r = ctl("connections")
            conns = json.loads(ctl("--json", "connections").stdout)
            self.assertEqual(len(r.stdout.splitlines()) - 1,
                             len(conns["connections"]))

            r = ctl("sinks")
            self.assertEqual(r.returncode, 0, r.stderr)
            self.assertRegex(r.stdout, r"(?m)^file +file +yes ")

            r = ctl("metrics")
            self.assertEqual(r.returncode, 0, r.stderr)
            self.assertTrue(r.stdout.endswith("\n# EOF\n"))
            self.assertIn("\newsgw_up 1\n", r.stdout)

            r = ctl("help")
            self.assertIn("resync ADDRESS", r.stdout)

            # Errors from the daemon: exit 1 with its message.
            r = ctl("mailbox", "nobody@example.com")
            self.assertEqual(r.returncode, 1)
            self.assertIn("nobody@example.com", r.stderr)

            # We run as the daemon's user: mutating commands pass.
            r = ctl("resync", mbs[0])
            self.assertEqual((r.returncode, r.stdout), (0, "ok\n"), r.stderr)
            r = ctl("reload")
            self.assertEqual((r.returncode, r.stdout), (0, "ok\n"), r.stderr)


if __name__ == "__main__":
    if not (os.access(EWSGWCTL, os.X_OK) and os.access(EWSGW, os.X_OK)):
        print("ewsgw or ewsgwctl not built")
        sys.exit(77)
    unittest.main(verbosity=2)
