#!/usr/bin/python3
"""Measure the simulator at scale: N generated mailboxes, S concurrent streaming
connections (one subscription each, each impersonating its own mailbox), events
raised through the control API, heartbeats.  Prints RSS and CPU of the simulator.

    /usr/bin/python3 tests/sim/bench_scale.py --mailboxes 100000 --streams 600
"""
import argparse
import asyncio
import base64
import json
import os
import sys
import time
import urllib.request

HERE = os.path.dirname(os.path.abspath(__file__))
sys.dont_write_bytecode = True
sys.path.insert(0, HERE)

from simharness import Simulator  # noqa: E402

SOAP = "http://schemas.xmlsoap.org/soap/envelope/"
M = "http://schemas.microsoft.com/exchange/services/2006/messages"
T = "http://schemas.microsoft.com/exchange/services/2006/types"
AUTH = "Basic " + base64.b64encode(b"svc-ewsgw:Passw0rd!").decode()


def env(body, who):
    return ('<?xml version="1.0" encoding="utf-8"?><soap:Envelope xmlns:soap="%s" xmlns:m="%s" xmlns:t="%s">'
            '<soap:Header><t:RequestServerVersion Version="Exchange2013_SP1"/><t:ExchangeImpersonation>'
            '<t:ConnectingSID><t:SmtpAddress>%s</t:SmtpAddress></t:ConnectingSID></t:ExchangeImpersonation>'
            '</soap:Header><soap:Body>%s</soap:Body></soap:Envelope>' % (SOAP, M, T, who, body)).encode()


SUB = ('<m:Subscribe><m:StreamingSubscriptionRequest><t:FolderIds><t:DistinguishedFolderId Id="calendar"/>'
       '</t:FolderIds><t:EventTypes><t:EventType>CreatedEvent</t:EventType><t:EventType>ModifiedEvent</t:EventType>'
       '</t:EventTypes></m:StreamingSubscriptionRequest></m:Subscribe>')
GSE = ('<m:GetStreamingEvents><m:SubscriptionIds><t:SubscriptionId>%s</t:SubscriptionId></m:SubscriptionIds>'
       '<m:ConnectionTimeout>30</m:ConnectionTimeout></m:GetStreamingEvents>')


def proc_stats(pid):
    with open("/proc/%d/status" % pid) as fh:
        rss = [int(line.split()[1]) for line in fh if line.startswith("VmRSS:")][0]
    with open("/proc/%d/stat" % pid) as fh:
        f = fh.read().rsplit(")", 1)[1].split()
    ticks = os.sysconf("SC_CLK_TCK")
    return rss / 1024.0, (int(f[11]) + int(f[12])) / ticks


async def request(host, port, body):
    r, w = await asyncio.open_connection(host, port)
    w.write(("POST /EWS/Exchange.asmx HTTP/1.1\r\nHost: x\r\nAuthorization: %s\r\nContent-Type: text/xml\r\n"
             "Content-Length: %d\r\n\r\n" % (AUTH, len(body))).encode() + body)
    await w.drain()
    head = await r.readuntil(b"\r\n\r\n")
    n = int([ln.split(b":")[1] for ln in head.split(b"\r\n") if ln.lower().startswith(b"content-length")][0])
    data = await r.readexactly(n)
    w.close()
    return data


async def stream(host, port, sid, who, counter):
    r, w = await asyncio.open_connection(host, port)
    body = env(GSE % sid, who)
    w.write(("POST /EWS/Exchange.asmx HTTP/1.1\r\nHost: x\r\nAuthorization: %s\r\nContent-Type: text/xml\r\n"
             "X-AnchorMailbox: %s\r\nContent-Length: %d\r\n\r\n" % (AUTH, who, len(body))).encode() + body)
    await w.drain()
    try:
        while True:
            data = await r.read(65536)
            if not data:
                return
            counter["bytes"] += len(data)
            counter["notifications"] += data.count(b"Notification>") // 2
    except (ConnectionError, asyncio.CancelledError):
        return
    finally:
        w.close()


async def main_async(sim, args):
    host, port = sim.ews_url.split("//")[1].split("/")[0].split(":")
    port = int(port)
    pid = sim.pid
    rss0, cpu0 = proc_stats(pid)
    print("idle with %d mailboxes: RSS %.1f MiB" % (args.mailboxes, rss0))
    t0 = time.monotonic()
    sids = []
    sem = asyncio.Semaphore(20)

    async def sub(i):
        who = "user%06d@example.com" % (i + 1)
        async with sem:
            data = await request(host, port, env(SUB, who))
        sid = data.split(b"<m:SubscriptionId>")[1].split(b"<")[0].decode()
        return sid, who
    sids = await asyncio.gather(*(sub(i) for i in range(args.streams)))
    t1 = time.monotonic()
    print("%d subscriptions in %.1f s" % (len(sids), t1 - t0))
    counter = {"bytes": 0, "notifications": 0}
    tasks = [asyncio.ensure_future(stream(host, port, sid, who, counter)) for sid, who in sids]
    await asyncio.sleep(2)
    st = json.loads(urllib.request.urlopen(sim.control_url + "/stats").read())
    print("open streams: %d" % st["streaming_connections"]["now"])
    rss1, cpu1 = proc_stats(pid)
    # steady state: heartbeats plus events through the control API
    loop = asyncio.get_running_loop()
    t_start = time.monotonic()
    n_events = 0
    while time.monotonic() - t_start < args.seconds:
        i = n_events % args.streams
        req = urllib.request.Request(sim.control_url + "/mailboxes/user%06d@example.com/items" % (i + 1),
                                     data=json.dumps({"subject": "bench", "start": "now", "end": "now+1h"}).encode(),
                                     method="POST")
        await loop.run_in_executor(None, lambda: urllib.request.urlopen(req).read())
        n_events += 1
        await asyncio.sleep(1.0 / args.event_rate)
    elapsed = time.monotonic() - t_start
    rss2, cpu2 = proc_stats(pid)
    print("steady %.0f s with %d streams, heartbeat %.0f s, %d item events (%.0f/s): "
          "CPU %.1f%% of one core, RSS %.1f MiB, notifications received %d"
          % (elapsed, args.streams, args.heartbeat, n_events, n_events / elapsed,
             100.0 * (cpu2 - cpu1) / elapsed, rss2, counter["notifications"]))
    if args.touch_all:
        t2 = time.monotonic()
        c0 = proc_stats(pid)[1]
        md = ('<t:MailboxData><t:Email><t:Address>%s</t:Address></t:Email><t:AttendeeType>Required'
              '</t:AttendeeType></t:MailboxData>')
        for base in range(0, args.mailboxes, 100):
            mds = "".join(md % ("user%06d@example.com" % (i + 1)) for i in range(base, min(base + 100, args.mailboxes)))
            body = ('<m:GetUserAvailabilityRequest><t:TimeZone><t:Bias>0</t:Bias><t:StandardTime><t:Bias>0</t:Bias>'
                    '<t:Time>00:00:00</t:Time><t:DayOrder>1</t:DayOrder><t:Month>0</t:Month><t:DayOfWeek>Sunday'
                    '</t:DayOfWeek></t:StandardTime><t:DaylightTime><t:Bias>0</t:Bias><t:Time>00:00:00</t:Time>'
                    '<t:DayOrder>1</t:DayOrder><t:Month>0</t:Month><t:DayOfWeek>Sunday</t:DayOfWeek></t:DaylightTime>'
                    '</t:TimeZone><m:MailboxDataArray>%s</m:MailboxDataArray><t:FreeBusyViewOptions><t:TimeWindow>'
                    '<t:StartTime>%s</t:StartTime><t:EndTime>%s</t:EndTime></t:TimeWindow>'
                    '<t:MergedFreeBusyIntervalInMinutes>30</t:MergedFreeBusyIntervalInMinutes>'
                    '<t:RequestedView>FreeBusyMerged</t:RequestedView></t:FreeBusyViewOptions>'
                    '</m:GetUserAvailabilityRequest>' % (
                        mds, time.strftime("%Y-%m-%dT00:00:00", time.gmtime()),
                        time.strftime("%Y-%m-%dT23:59:00", time.gmtime())))
            await request(host, port, env(body, "user000001@example.com"))
        dt = time.monotonic() - t2
        rss3, c3 = proc_stats(pid)
        print("availability for all %d mailboxes (100 per request, %d meetings each): %.1f s, "
              "%.1f ms/request, RSS now %.1f MiB (all calendars materialised)"
              % (args.mailboxes, args.meetings, dt, 1000 * dt / (args.mailboxes / 100), rss3))
        print("CPU seconds for that: %.1f" % (c3 - c0))
    st = json.loads(urllib.request.urlopen(sim.control_url + "/stats").read())
    print("violations: %s; streaming peak %d" % (st["violations"], st["streaming_connections"]["peak"]))
    for t in tasks:
        t.cancel()


def main():
    p = argparse.ArgumentParser()
    p.add_argument("--mailboxes", type=int, default=100000)
    p.add_argument("--streams", type=int, default=600)
    p.add_argument("--meetings", type=int, default=4)
    p.add_argument("--seconds", type=float, default=30)
    p.add_argument("--heartbeat", type=float, default=45)
    p.add_argument("--event-rate", type=float, default=20)
    p.add_argument("--touch-all", action="store_true")
    args = p.parse_args()
    with Simulator(generate=args.mailboxes, generate_meetings=args.meetings, heartbeat_seconds=args.heartbeat,
                   auth="basic", ready_timeout=60) as sim:
        asyncio.run(main_async(sim, args))


if __name__ == "__main__":
    main()
