"""Calendar items, time parsing, recurrence expansion and free/busy merging."""
import base64
import datetime as dt
import re
import time

FREEBUSY = ("Free", "Tentative", "Busy", "OOF", "WorkingElsewhere", "NoData")
# MergedFreeBusy digits (EWS Managed API LegacyFreeBusyStatus order).
FB_DIGIT = {"Free": "0", "Tentative": "1", "Busy": "2", "OOF": "3", "WorkingElsewhere": "4",
            "NoData": "5"}
# Which status wins when an interval mixes several (OOF > Busy > WorkingElsewhere > Tentative).
FB_RANK = {"Free": 0, "Tentative": 1, "WorkingElsewhere": 2, "Busy": 3, "OOF": 4, "NoData": -1}
SENSITIVITY = ("Normal", "Personal", "Private", "Confidential")
WEEKDAYS = ("Monday", "Tuesday", "Wednesday", "Thursday", "Friday", "Saturday", "Sunday")


class ItemError(ValueError):
    pass


_REL = re.compile(r"^now((?:\s*[+-]\s*\d+(?:\.\d+)?\s*[smhd])*)$")
_TERM = re.compile(r"([+-])\s*(\d+(?:\.\d+)?)\s*([smhd])")


def parse_time(value, now=None):
    """UTC ISO 8601 ('2026-01-05T09:00:00Z', with offset, or naive = UTC), epoch
    seconds, or relative 'now', 'now+90m', 'now-2h', 'now+1d' -> epoch seconds."""
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        return float(value)
    if not isinstance(value, str):
        raise ItemError("time must be a string or a number")
    v = value.strip()
    mo = _REL.match(v)
    if mo:
        base = time.time() if now is None else now
        for sign, num, unit in _TERM.findall(mo.group(1)):
            n = float(num) * {"s": 1, "m": 60, "h": 3600, "d": 86400}[unit]
            base += n if sign == "+" else -n
        return float(base)
    try:
        d = dt.datetime.fromisoformat(v.replace("Z", "+00:00").replace("z", "+00:00"))
    except ValueError as exc:
        raise ItemError("bad time %r" % value) from exc
    if d.tzinfo is None:
        d = d.replace(tzinfo=dt.timezone.utc)
    return d.timestamp()


def iso(ts):
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(ts))


def iso9(ts):
    """UTC with nine fractional digits, as some non-Exchange servers write times."""
    ns = int(round((ts - int(ts)) * 1e9)) if ts >= 0 else 0
    return time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(int(ts))) + ".%09dZ" % min(ns, 999999999)


def iso_local(ts, offset_minutes):
    """Time without zone designator in a zone offset_minutes east of UTC."""
    return time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(ts + offset_minutes * 60))


def b64id(prefix, raw):
    return prefix + base64.b64encode(raw.encode("utf-8")).decode("ascii")


def unb64id(prefix, value):
    if not isinstance(value, str) or not value.startswith(prefix):
        return None
    try:
        return base64.b64decode(value[len(prefix):].encode("ascii"), validate=True).decode("utf-8")
    except Exception:  # noqa: BLE001 - any garbage id is simply unknown
        return None


ITEM_PREFIX = "AAMkAGSim"
OCC_PREFIX = "AAMkAGOcc"
FOLDER_PREFIX = "AQMkAGSim"


def item_id(smtp, local):
    return b64id(ITEM_PREFIX, smtp + "\x00" + local)


def occurrence_id(smtp, local, n):
    return b64id(OCC_PREFIX, "%s\x00%s\x00%d" % (smtp, local, n))


def folder_id(smtp, name):
    return b64id(FOLDER_PREFIX, smtp + "\x00" + name)


def decode_item_id(value):
    """-> (smtp, local, occurrence index or None) or None."""
    raw = unb64id(ITEM_PREFIX, value)
    if raw is not None:
        parts = raw.split("\x00")
        return (parts[0], parts[1], None) if len(parts) == 2 else None
    raw = unb64id(OCC_PREFIX, value)
    if raw is not None:
        parts = raw.split("\x00")
        if len(parts) == 3 and parts[2].isdigit():
            return parts[0], parts[1], int(parts[2])
    return None


def decode_folder_id(value):
    raw = unb64id(FOLDER_PREFIX, value)
    if raw is None:
        return None
    parts = raw.split("\x00")
    return (parts[0], parts[1]) if len(parts) == 2 else None


class Item:
    __slots__ = ("local", "version", "subject", "start", "end", "freebusy", "all_day",
                 "cancelled", "sensitivity", "location", "recurrence", "created",
                 "organizer", "is_meeting", "my_response", "body")

    def to_json(self, smtp):
        d = {"id": item_id(smtp, self.local), "changekey": changekey(self.version),
             "local_id": self.local, "subject": self.subject, "start": iso(self.start),
             "end": iso(self.end), "freebusy": self.freebusy, "all_day": self.all_day,
             "cancelled": self.cancelled, "sensitivity": self.sensitivity,
             "location": self.location, "organizer": self.organizer,
             "is_meeting": self.is_meeting, "my_response": self.my_response}
        if self.recurrence:
            r = dict(self.recurrence)
            if "until" in r:
                r["until"] = iso(r["until"])
            d["recurrence"] = r
        return d


def changekey(version):
    return "DwAAABYAAAA" + base64.b64encode(("ck%08d" % version).encode()).decode()


def make_item(spec, local, now=None, base=None):
    """Build or update an Item from a JSON spec (dict); base = existing Item to patch."""
    if not isinstance(spec, dict):
        raise ItemError("item must be a JSON object")
    it = Item()
    if base is not None:
        for s in Item.__slots__:
            setattr(it, s, getattr(base, s))
        it.version = base.version + 1
    else:
        it.local = local
        it.version = 1
        it.subject = ""
        it.start = it.end = None
        it.freebusy = "Busy"
        it.all_day = False
        it.cancelled = False
        it.sensitivity = "Normal"
        it.location = ""
        it.recurrence = None
        it.created = time.time() if now is None else now
        it.organizer = None
        it.is_meeting = True
        it.my_response = "Organizer"
        it.body = ""
    known = {"id", "local_id", "changekey", "subject", "start", "end", "freebusy", "status",
             "legacy_free_busy_status", "all_day", "cancelled", "sensitivity", "location",
             "recurrence", "organizer", "is_meeting", "my_response", "body"}
    bad = set(spec) - known
    if bad:
        raise ItemError("unknown item fields: %s" % ", ".join(sorted(bad)))
    if "subject" in spec:
        it.subject = _str(spec["subject"], "subject", 255)
    if "body" in spec:
        it.body = _str(spec["body"], "body", 65536)
    if "location" in spec:
        it.location = _str(spec["location"], "location", 255)
    if "organizer" in spec:
        it.organizer = None if spec["organizer"] is None else _str(spec["organizer"], "organizer", 320)
    if "start" in spec:
        it.start = parse_time(spec["start"], now)
    if "end" in spec:
        it.end = parse_time(spec["end"], now)
    fb = spec.get("freebusy", spec.get("status", spec.get("legacy_free_busy_status")))
    if fb is not None:
        if fb not in FREEBUSY:
            raise ItemError("freebusy must be one of %s" % ", ".join(FREEBUSY))
        it.freebusy = fb
        if base is None and "my_response" not in spec and fb == "Tentative":
            it.my_response = "Tentative"
    for key in ("all_day", "cancelled", "is_meeting"):
        if key in spec:
            if not isinstance(spec[key], bool):
                raise ItemError("%s must be a boolean" % key)
            setattr(it, key, spec[key])
    if "sensitivity" in spec:
        if spec["sensitivity"] not in SENSITIVITY:
            raise ItemError("sensitivity must be one of %s" % ", ".join(SENSITIVITY))
        it.sensitivity = spec["sensitivity"]
    if "my_response" in spec:
        if spec["my_response"] not in ("Unknown", "Organizer", "Tentative", "Accept", "Decline",
                                       "NoResponseReceived"):
            raise ItemError("bad my_response")
        it.my_response = spec["my_response"]
    if "recurrence" in spec:
        it.recurrence = _recurrence(spec["recurrence"], now)
    if it.start is None or it.end is None:
        raise ItemError("start and end are required")
    if it.all_day:
        # All-day items span whole UTC days.
        day = 86400
        it.start = it.start - (it.start % day)
        if it.end <= it.start or it.end % day:
            it.end = it.end - (it.end % day) + (day if it.end % day or it.end <= it.start else 0)
            if it.end <= it.start:
                it.end = it.start + day
    if it.end < it.start:
        raise ItemError("end before start")
    return it


def _str(v, name, limit):
    if not isinstance(v, str):
        raise ItemError("%s must be a string" % name)
    if len(v) > limit:
        raise ItemError("%s too long" % name)
    return v


def _recurrence(r, now):
    if r is None:
        return None
    if not isinstance(r, dict):
        raise ItemError("recurrence must be an object")
    freq = r.get("freq", r.get("type"))
    if freq not in ("daily", "weekly"):
        raise ItemError("recurrence.freq must be daily or weekly")
    out = {"freq": freq}
    interval = r.get("interval", 1)
    if not isinstance(interval, int) or not 1 <= interval <= 999:
        raise ItemError("recurrence.interval must be 1..999")
    out["interval"] = interval
    if "count" in r:
        if not isinstance(r["count"], int) or not 1 <= r["count"] <= 999:
            raise ItemError("recurrence.count must be 1..999")
        out["count"] = r["count"]
    if "until" in r:
        out["until"] = parse_time(r["until"], now)
    if "count" not in out and "until" not in out:
        out["count"] = 999  # "no end" is bounded in the simulator
    if "days" in r:
        days = r["days"]
        if freq != "weekly" or not isinstance(days, list) or not days or \
                any(d not in WEEKDAYS for d in days):
            raise ItemError("recurrence.days: weekly only, list of weekday names")
        out["days"] = list(days)
    return out


def occurrences(item):
    """Yield (index, start, end) for every occurrence (index None for single items)."""
    if not item.recurrence:
        yield None, item.start, item.end
        return
    r = item.recurrence
    dur = item.end - item.start
    count = r.get("count", 999)
    until = r.get("until")
    n = 0
    if r["freq"] == "daily":
        step = 86400 * r["interval"]
        s = item.start
        while n < count and (until is None or s <= until):
            n += 1
            yield n, s, s + dur
            s += step
        return
    # weekly
    days = r.get("days")
    if not days:
        step = 7 * 86400 * r["interval"]
        s = item.start
        while n < count and (until is None or s <= until):
            n += 1
            yield n, s, s + dur
            s += step
        return
    wanted = sorted(WEEKDAYS.index(d) for d in days)
    start_wd = time.gmtime(item.start).tm_wday
    week0 = item.start - start_wd * 86400  # same time of day, Monday of the first week
    w = 0
    while True:
        for wd in wanted:
            s = week0 + (w * r["interval"] * 7 + wd) * 86400
            if s < item.start:
                continue
            if n >= count or (until is not None and s > until):
                return
            n += 1
            yield n, s, s + dur
        w += 1


def view(items, start, end, limit=None):
    """CalendarView: occurrences overlapping [start, end), sorted by start.
    Zero-length items at start are included (Exchange shows them)."""
    out = []
    for it in items:
        for n, s, e in occurrences(it):
            if s >= end:
                break
            if e > start or (e == s and s >= start):
                out.append((s, e, n, it))
    out.sort(key=lambda x: (x[0], x[1], x[3].local))
    return out


def merged_freebusy(items, start, end, interval_min):
    step = interval_min * 60
    nslots = max(0, int((end - start + step - 1) // step))
    slots = [-1] * nslots
    status = [None] * nslots
    for s, e, _n, it in view(items, start, end):
        if it.cancelled or it.freebusy in ("Free", "NoData"):
            continue
        a = max(0, int((s - start) // step))
        b = min(nslots, int((e - start + step - 1) // step))
        rank = FB_RANK[it.freebusy]
        for i in range(a, b):
            if rank > slots[i]:
                slots[i] = rank
                status[i] = it.freebusy
    return "".join(FB_DIGIT[st] if st else "0" for st in status)


def day_bounds(ts):
    d = ts - ts % 86400
    return d, d + 86400


