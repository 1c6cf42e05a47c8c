"""Fault injection state (POST /faults, DELETE /faults).

A fault spec is a JSON object with "kind" and kind-specific fields; most kinds also
take the selectors "operation" (EWS operation name), "account", "count" (the next N
matching requests) and "duration_s" (for T seconds); without count/duration a fault
stays until cleared.
"""
import itertools
import random
import time

KINDS = ("drop_streams", "http_status", "server_busy", "malformed_xml", "truncated_chunks",
         "lose_subscriptions", "missed_events", "password_expires_at", "password_restored",
         "hang", "latency_ms", "chunk_split", "prefix_style", "extra_elements",
         "trickle_comment")


class FaultError(ValueError):
    pass


class Fault:
    _ids = itertools.count(1)

    def __init__(self, spec):
        if not isinstance(spec, dict):
            raise FaultError("fault spec must be an object")
        kind = spec.get("kind")
        if kind not in KINDS:
            raise FaultError("kind must be one of %s" % ", ".join(KINDS))
        self.id = next(self._ids)
        self.kind = kind
        self.spec = spec
        self.operation = spec.get("operation")
        self.account = spec.get("account")
        self.count = spec.get("count")
        if self.count is not None and (not isinstance(self.count, int) or self.count < 0):
            raise FaultError("count must be a non-negative integer")
        d = spec.get("duration_s")
        if d is not None and not isinstance(d, (int, float)):
            raise FaultError("duration_s must be a number")
        self.until = time.monotonic() + d if d is not None else None
        p = spec.get("probability", 1.0)
        if not isinstance(p, (int, float)) or not 0 <= p <= 1:
            raise FaultError("probability must be within 0..1")
        self.probability = float(p)
        self.hits = 0
        for key in ("status", "backoff_ms", "ms", "min", "max", "delay_ms", "at", "streams", "retry_after"):
            v = spec.get(key)
            if v is not None and (isinstance(v, bool) or not isinstance(v, (int, float)) or v < 0):
                raise FaultError("%s must be a non-negative number" % key)
        if kind == "http_status" and not 100 <= int(spec.get("status", 503)) <= 599:
            raise FaultError("status must be an HTTP status code")
        for key in ("operation", "account"):
            if spec.get(key) is not None and not isinstance(spec[key], str):
                raise FaultError("%s must be a string" % key)

    def expired(self):
        if self.until is not None and time.monotonic() > self.until:
            return True
        return self.count is not None and self.hits >= self.count

    def matches(self, op, account):
        if self.operation is not None and self.operation != op:
            return False
        if self.account is not None and account is not None and \
                self.account.lower() != account.lower():
            return False
        return not self.expired()

    def to_json(self):
        return {"id": self.id, "kind": self.kind, "spec": self.spec, "hits": self.hits,
                "active": not self.expired()}


class Faults:
    def __init__(self, seed=None, on_hit=None):
        """on_hit(kind, n): a fault took effect n times (GET /stats counts
        them, so a test can assert that what it injected happened)."""
        self.faults = []
        self.rng = random.Random(seed)
        self.on_hit = on_hit or (lambda kind, n: None)

    def add(self, spec):
        f = Fault(spec)
        self.faults.append(f)
        return f

    def clear(self, fid=None):
        if fid is None:
            self.faults = []
        else:
            self.faults = [f for f in self.faults if f.id != fid]

    def take(self, kind, op=None, account=None):
        """Consume one hit of the first matching active fault of `kind` (honours probability)."""
        for f in self.faults:
            if f.kind == kind and f.matches(op, account):
                if f.probability < 1.0 and self.rng.random() >= f.probability:
                    continue
                f.hits += 1
                self.on_hit(kind, 1)
                return f
        return None

    def peek(self, kind, op=None, account=None):
        for f in self.faults:
            if f.kind == kind and f.matches(op, account):
                return f
        return None

    def gc(self):
        self.faults = [f for f in self.faults if not f.expired() or f.kind in ("password_expires_at",)]

    def to_json(self):
        return [f.to_json() for f in self.faults]
