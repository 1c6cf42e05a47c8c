"""JSON control API (separate loopback port)."""
import json
import random
import urllib.parse

from . import calendar as cal
from .faults import FaultError
from .http import Response


def json_response(status, obj):
    return Response(status, json.dumps(obj, sort_keys=True).encode("utf-8"),
                    [("Content-Type", "application/json")])


def _body(req):
    if not req.body:
        return None
    try:
        return json.loads(req.body.decode("utf-8"))
    except (ValueError, UnicodeDecodeError) as exc:
        raise ValueError("request body is not JSON: %s" % exc) from exc


async def handle(sim, req):
    parts = [urllib.parse.unquote(p) for p in req.path.split("/") if p]
    meth = req.method
    try:
        data = _body(req)
        return await _route(sim, meth, parts, data)
    except (ValueError, FaultError, cal.ItemError) as exc:
        return json_response(400, {"error": str(exc)})


async def _route(sim, meth, parts, data):
    if parts == ["health"] and meth == "GET":
        return json_response(200, {"ok": True})
    if parts == ["stats"] and meth == "GET":
        return json_response(200, sim.stats.to_json(len(sim.notifier.subs),
                                                    sim.notifier.live_per_mailbox_max()))
    if parts == ["stats", "reset"] and meth == "POST":
        live_conc = {k: v.now for k, v in sim.stats.concurrency.items() if v.now}
        live_streams = sim.stats.streams.now
        live_anchor = {k: v.now for k, v in sim.stats.per_anchor.items() if v.now}
        sim.stats.reset()
        sim.stats.rebase(live_conc, live_streams, live_anchor)
        return json_response(200, {"ok": True})
    if parts == ["subscriptions"] and meth == "GET":
        return json_response(200, {"subscriptions": [s.to_json() for s in sim.notifier.subs.values()]})
    if parts == ["streams"] and meth == "GET":
        return json_response(200, {"streams": [sc.to_json() for sc in sim.streams.conns]})
    if parts == ["servers"] and meth == "GET":
        # mailbox servers and the explicit (or touched) mailboxes on each
        out = {}
        for n in range(1, sim.config.backends + 1):
            b = sim.backend_name(n)
            out[b] = {"grouping": sim.backend_grouping(b), "mailboxes": []}
        for mb in sorted(sim.directory.by_smtp.values(), key=lambda x: x.smtp):
            out.setdefault(sim.home(mb), {"grouping": None, "mailboxes": []})["mailboxes"].append(mb.smtp)
        return json_response(200, {"servers": out})
    if parts == ["restart"] and meth == "POST":
        n = len(sim.notifier.subs)
        sim.restart()
        return json_response(200, {"ok": True, "subscriptions_lost": n})
    if parts == ["config"]:
        if meth == "POST":
            sim.config.update(data or {})
            return json_response(200, sim.config.to_json())
        if meth == "GET":
            return json_response(200, sim.config.to_json())
    if parts and parts[0] == "faults":
        return _faults(sim, meth, parts, data)
    if parts and parts[0] == "mailboxes" and len(parts) >= 3:
        mb = sim.directory.by_smtp_address(parts[1])
        if mb is None:
            return json_response(404, {"error": "no such mailbox %s" % parts[1]})
        if parts[2] == "oof" and len(parts) == 3:
            if meth == "PUT":
                # as on Exchange: a changed automatic reply raises no notification
                sim.directory.set_oof(mb, data or {})
                sim.stats.oof_changes += 1
                return json_response(200, {"ok": True, "state": mb.oof["state"]})
            if meth == "GET":
                o = dict(mb.oof, start=cal.iso(mb.oof["start"]), end=cal.iso(mb.oof["end"]))
                return json_response(200, o)
        if parts[2] == "items":
            return _items(sim, mb, meth, parts[3:], data)
        if parts[2] == "server" and len(parts) == 3 and meth == "GET":
            return json_response(200, _server_json(sim, mb))
        if parts[2] == "server" and len(parts) == 3 and meth == "PATCH":
            # a new GroupingInformation on the same server: no move, the
            # subscriptions stay valid
            grouping = (data or {}).get("grouping") if isinstance(data, (dict, type(None))) else None
            if not isinstance(grouping, str) or not grouping:
                raise ValueError("grouping must be a non-empty string")
            mb.grouping = grouping
            return json_response(200, _server_json(sim, mb))
        if parts[2] == "exchange_online" and len(parts) == 3 and meth == "POST":
            return json_response(200, sim.migrate_online(mb, (data or {}).get("tenant", True)))
        if parts[2] == "on_premises" and len(parts) == 3 and meth == "POST":
            return json_response(200, sim.migrate_on_premises(mb))
        if parts[2] == "move" and len(parts) == 3 and meth == "POST":
            res = sim.start_move(mb, data if data is not None else {})
            return json_response(200, res)
    if parts == ["accounts"] and meth == "POST":
        a = sim.directory.add_account(data or {})
        return json_response(200, {"ok": True, "username": a.username})
    if len(parts) == 2 and parts[0] == "accounts" and meth == "PATCH":
        a = sim.directory.account(parts[1])
        if a is None:
            return json_response(404, {"error": "no such account %s" % parts[1]})
        sim.directory.update_account(a, data or {})
        return json_response(200, {"ok": True, "username": a.username})
    if parts == ["mailboxes"] and meth == "POST":
        mb = sim.directory.add_mailbox(data or {})
        return json_response(200, {"ok": True, "smtp": mb.smtp})
    return json_response(404, {"error": "unknown control path"})


def _server_json(sim, mb):
    mv = sim.settle_move(mb)
    out = {"smtp": mb.smtp, "server": sim.home(mb), "grouping": sim.grouping(mb), "moving": mv is not None,
           "exchange_online": mb.online is not None, "subscriptions_created": mb.subs_created}
    if mv is not None:
        out.update({"moving_to": mv["to"], "moving_grouping": mv["grouping"], "code": mv["code"]})
    return out


def _find_local(mb, ident):
    dec = cal.decode_item_id(ident)
    if dec is not None and dec[0] == mb.smtp:
        return dec[1]
    return ident


def _items(sim, mb, meth, rest, data):
    items = mb.items()
    if meth in ("POST", "PATCH") and not isinstance(data, dict):
        raise ValueError("item must be a JSON object")
    if not rest:
        if meth == "GET":
            return json_response(200, {"items": [it.to_json(mb.smtp) for it in
                                                 sorted(items.values(), key=lambda i: i.start)]})
        if meth == "POST":
            local = (data or {}).get("local_id") or mb.new_local()
            if local in items:
                return json_response(409, {"error": "item exists"})
            it = cal.make_item({k: v for k, v in (data or {}).items() if k != "local_id"}, local)
            items[local] = it
            iid = cal.item_id(mb.smtp, local)
            ck = cal.changekey(it.version)
            n = sim.notifier.raise_item_event(mb, "CreatedEvent", iid, ck)
            return json_response(201, {"id": iid, "changekey": ck, "local_id": local, "events": n})
    elif len(rest) == 1:
        local = _find_local(mb, rest[0])
        it = items.get(local)
        if it is None:
            return json_response(404, {"error": "no such item"})
        iid = cal.item_id(mb.smtp, local)
        if meth == "GET":
            return json_response(200, it.to_json(mb.smtp))
        if meth == "PATCH":
            new = cal.make_item(data or {}, local, base=it)
            items[local] = new
            ck = cal.changekey(new.version)
            n = sim.notifier.raise_item_event(mb, "ModifiedEvent", iid, ck)
            return json_response(200, {"id": iid, "changekey": ck, "events": n})
        if meth == "DELETE":
            del items[local]
            n = sim.notifier.raise_item_event(mb, "DeletedEvent", iid, cal.changekey(it.version + 1))
            return json_response(200, {"id": iid, "deleted": True, "events": n})
    return json_response(405, {"error": "method not allowed"})


def _select_subs(sim, spec):
    subs = list(sim.notifier.subs.values())
    if spec.get("ids"):
        want = set(spec["ids"])
        subs = [s for s in subs if s.id in want]
    if spec.get("mailbox"):
        subs = [s for s in subs if s.mailbox.smtp == str(spec["mailbox"]).lower()]
    if spec.get("account"):
        subs = [s for s in subs if s.account.lower() == str(spec["account"]).lower()]
    frac = spec.get("fraction")
    if frac is not None:
        if not isinstance(frac, (int, float)) or not 0 <= frac <= 1:
            raise ValueError("fraction must be within 0..1")
        rng = random.Random(spec.get("seed"))
        subs = rng.sample(subs, int(round(len(subs) * frac)))
    if spec.get("count") is not None:
        subs = subs[:int(spec["count"])]
    return subs


def _faults(sim, meth, parts, data):
    if meth == "GET" and len(parts) == 1:
        return json_response(200, {"faults": sim.faults.to_json()})
    if meth == "DELETE":
        if len(parts) == 1:
            sim.faults.clear()
            for a in sim.directory.accounts.values():
                a.password_expires_at = None
            return json_response(200, {"ok": True})
        if len(parts) == 2 and parts[1].isdigit():
            sim.faults.clear(int(parts[1]))
            return json_response(200, {"ok": True})
    if meth == "POST" and len(parts) == 1:
        specs = data if isinstance(data, list) else [data]
        out = []
        for spec in specs:
            out.append(_apply_fault(sim, spec))
        return json_response(200, {"faults": out})
    return json_response(405, {"error": "method not allowed"})


def _apply_fault(sim, spec):
    f = sim.faults.add(spec)
    kind = f.kind
    res = {"id": f.id, "kind": kind}
    per_envelope = spec.get("probability") is not None or spec.get("count") is not None
    if kind == "drop_streams" and spec.get("mode", "each" if per_envelope else "once") == "once":
        sim.faults.clear(f.id)
        res["dropped"] = sim.drop_streams_now(spec.get("streams"))
        sim.stats.fault(kind, res["dropped"])
    elif kind == "lose_subscriptions":
        sim.faults.clear(f.id)
        subs = _select_subs(sim, spec) if not spec.get("all") else list(sim.notifier.subs.values())
        code = spec.get("code", "ErrorSubscriptionNotFound") if spec.get("notify", True) else None
        for s in subs:
            sim.notifier.remove(s, "lost by fault", notify_stream_code=code)
        res["lost"] = [s.id for s in subs]
        sim.stats.fault(kind, len(subs))
    elif kind == "missed_events":
        sim.faults.clear(f.id)
        subs = _select_subs(sim, spec) if not spec.get("all") else list(sim.notifier.subs.values())
        for s in subs:
            sim.notifier.mark_missed(s)
        res["marked"] = [s.id for s in subs]
        sim.stats.fault(kind, len(subs))
    elif kind in ("password_expires_at", "password_restored"):
        acc = sim.directory.account(str(spec.get("account", "")))
        if acc is None:
            sim.faults.clear(f.id)
            raise ValueError("unknown account %r" % spec.get("account"))
        if kind == "password_expires_at":
            at = spec.get("at", spec.get("epoch"))
            if not isinstance(at, (int, float)):
                sim.faults.clear(f.id)
                raise ValueError("password_expires_at needs 'at' (epoch seconds)")
            acc.password_expires_at = float(at)
        else:
            acc.password_expires_at = None
            sim.faults.faults = [x for x in sim.faults.faults
                                 if not (x.kind == "password_expires_at" and
                                         str(x.spec.get("account", "")).lower() == acc.username.lower())
                                 and x.id != f.id]
    elif kind == "prefix_style":
        if spec.get("style", "s") not in ("s", "soap", "default", "other", "exchange", "random"):
            sim.faults.clear(f.id)
            raise ValueError("style must be s, soap, default, other, exchange or random")
        # newest style wins
        sim.faults.faults = [x for x in sim.faults.faults if x.kind != "prefix_style" or x.id == f.id]
    return res
