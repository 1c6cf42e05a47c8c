#!/usr/bin/python3
"""ewssim: Exchange Web Services simulator for the ewsgw tests, demo and benchmarks.

Runs in the foreground until SIGINT/SIGTERM.  See README.md in this directory.
"""
import argparse
import asyncio
import logging
import os
import sys

sys.dont_write_bytecode = True  # the source tree may be read-only (distcheck)
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

from sim.app import VERSIONS, Sim  # noqa: E402
from sim.directory import DirectoryError  # noqa: E402


def parse_args(argv=None):
    p = argparse.ArgumentParser(prog="ewssim", description=__doc__.splitlines()[0])
    p.add_argument("--listen", default="127.0.0.1:8443", help="EWS address HOST:PORT (loopback only; port 0 = any)")
    p.add_argument("--control", default="127.0.0.1:8444", help="control API address HOST:PORT")
    p.add_argument("--ready-file", help="write {ews_url, control_url, pid} here once listening")
    p.add_argument("--directory", help="directory JSON file (accounts, mailboxes, items)")
    p.add_argument("--generate", type=int, default=0, metavar="N",
                   help="add N generated mailboxes user000001@example.com ...")
    p.add_argument("--generate-meetings", type=int, default=0, metavar="K",
                   help="generated meetings per generated mailbox (around start time)")
    p.add_argument("--generate-account", default="svc-ewsgw:Passw0rd!", metavar="USER:PASSWORD",
                   help="service account allowed to impersonate all generated mailboxes")
    p.add_argument("--version", default="Exchange2016", choices=sorted(VERSIONS),
                   help="Exchange version to imitate (ServerVersionInfo, defaults for limits)")
    p.add_argument("--auth", default="ntlm,basic", help="comma list of ntlm, negotiate, basic in offer order "
                   "(negotiate = NTLM tokens under the Negotiate scheme; no Kerberos)")
    p.add_argument("--ntlm-v2-only", action="store_true", help="refuse NTLMv1 responses")
    p.add_argument("--realm", default="ewssim", help="Basic realm")
    p.add_argument("--charging", choices=("service-account", "impersonated"),
                   help="throttling charging model (default from --version)")
    p.add_argument("--max-concurrency", type=int, help="EWSMaxConcurrency")
    p.add_argument("--max-subscriptions", type=int, help="EWSMaxSubscriptions")
    p.add_argument("--hanging-connection-limit", type=int, help="streaming connection limit")
    p.add_argument("--find-count-limit", type=int, default=1000, help="EWSFindCountLimit")
    p.add_argument("--backoff-ms", type=int, default=2000, help="BackOffMilliseconds given on ErrorServerBusy")
    p.add_argument("--minute-seconds", type=float, default=60.0,
                   help="length of one protocol 'minute' in seconds (scales timeouts)")
    p.add_argument("--heartbeat-seconds", type=float, default=45.0,
                   help="ConnectionStatus OK interval on idle streams")
    p.add_argument("--latency-ms", type=int, default=0,
                   help="EWS processing time: the answer is due this long after the request arrived")
    p.add_argument("--push-timeout", type=float, default=10.0, help="seconds to wait for a push answer")
    p.add_argument("--backends", type=int, default=4, help="number of simulated mailbox servers (affinity)")
    p.add_argument("--strict-affinity", action="store_true",
                   help="requests routed to a backend without the subscription get ErrorSubscriptionNotFound")
    p.add_argument("--affinity-rules", action="store_true",
                   help="count breaches of Microsoft's affinity rules for grouped subscriptions as violations")
    p.add_argument("--profile", default="", metavar="LIST",
                   help="comma list of server profiles: realserver (shapes of a non-Exchange EWS server), "
                        "refuse-grouping (a subscription only on a stream opened by its owner)")
    p.add_argument("--schema-dir", help="ews-schema directory (default ../shared/ews-schema from the project root)")
    p.add_argument("--no-schema", action="store_true", help="do not validate requests")
    p.add_argument("--tls-cert", help="serve EWS over https with this PEM certificate")
    p.add_argument("--tls-key", help="private key for --tls-cert")
    p.add_argument("--max-body", type=int, default=4 * 1024 * 1024, help="largest request body accepted")
    p.add_argument("--seed", type=int, help="seed for fault randomness")
    p.add_argument("-v", "--verbose", action="count", default=0)
    args = p.parse_args(argv)
    if bool(args.tls_cert) != bool(args.tls_key):
        p.error("--tls-cert and --tls-key go together")
    if args.minute_seconds <= 0 or args.heartbeat_seconds <= 0:
        p.error("--minute-seconds and --heartbeat-seconds must be positive")
    return args


def main(argv=None):
    args = parse_args(argv)
    logging.basicConfig(level=logging.WARNING - 10 * min(args.verbose, 2),
                        format="ewssim %(levelname)s %(name)s: %(message)s")
    try:
        sim = Sim(args)
    except DirectoryError as exc:
        print("ewssim: %s" % exc, file=sys.stderr)
        return 2
    try:
        asyncio.run(sim.run())
    except KeyboardInterrupt:
        pass
    return 0


if __name__ == "__main__":
    sys.exit(main())
