"""Directory: service accounts and mailboxes, from a JSON file and/or generated.

Generated mailboxes (user000001@example.com ...) are not stored until touched:
lookups are computed from the address pattern and a Mailbox object (with its
calendar, generated deterministically) is materialised on first use.
"""
import json
import random
import re

from . import calendar as cal

GEN_DOMAIN = "example.com"
GEN_UPN_DOMAIN = "corp.example.local"
GEN_SID_BASE = "S-1-5-21-3623811015-3361044348-30300820-"
OOF_STATES = ("Disabled", "Enabled", "Scheduled")


class DirectoryError(ValueError):
    pass


class Account:
    __slots__ = ("username", "password", "domain", "upn", "scope_all", "scope", "password_expires_at",
                 "delegate_all", "delegate")

    def may_impersonate(self, mbx):
        return self.scope_all or mbx.smtp in self.scope

    def may_delegate(self, mbx):
        """Calendar rights on the mailbox (delegate access without impersonation)."""
        return self.delegate_all or mbx.smtp in self.delegate


class Mailbox:
    __slots__ = ("smtp", "upn", "sid", "name", "upn_required", "_oof", "_items", "gen_index",
                 "next_local", "directory", "server", "grouping", "move", "ad_redirect",
                 "online", "subs_created")

    @property
    def oof(self):
        if self._oof is None:  # generated mailboxes share the default until changed
            return self.directory.default_oof
        return self._oof

    @oof.setter
    def oof(self, value):
        self._oof = value

    def items(self):
        if self._items is None:
            self._items = {}
            if self.gen_index is not None:
                self.directory.generate_items(self)
        return self._items

    def new_local(self):
        self.next_local += 1
        return "i%06d" % self.next_local


class Directory:
    def __init__(self, now, resolve_backend=None):
        self.now = now
        self.resolve_backend = resolve_backend  # backend number/name -> FQDN
        self.accounts = {}          # lower username -> Account
        self.by_smtp = {}           # lower smtp -> Mailbox (explicit and materialised)
        self.by_upn = {}
        self.by_sid = {}
        self.generated = 0
        self.generated_meetings = 0
        self.gen_account = None
        self.default_oof = {"state": "Disabled", "external_audience": "All", "internal_reply": "",
                            "external_reply": "", "start": now, "end": now + 86400}

    # ------------------------------------------------------------ loading
    def load_file(self, path):
        try:
            with open(path, "r", encoding="utf-8") as fh:
                data = json.load(fh)
        except (OSError, ValueError) as exc:
            raise DirectoryError("cannot read directory %s: %s" % (path, exc)) from exc
        self.load(data)

    def load(self, data):
        if not isinstance(data, dict):
            raise DirectoryError("directory must be a JSON object")
        for mb in data.get("mailboxes", []):
            self.add_mailbox(mb)
        for acc in data.get("accounts", []):
            self.add_account(acc)

    def add_account(self, spec):
        try:
            a = Account()
            a.username = str(spec["username"])
            a.password = str(spec["password"])
        except (KeyError, TypeError) as exc:
            raise DirectoryError("account needs username and password") from exc
        a.domain = str(spec.get("domain", "CORP"))
        a.upn = str(spec.get("upn", "%s@%s" % (a.username, GEN_UPN_DOMAIN))).lower()
        self._set_scope(a, spec.get("impersonate", []))
        a.password_expires_at = None
        dlg = spec.get("delegate", [])
        a.delegate_all = dlg == "*" or dlg == ["*"]
        a.delegate = set()
        if not a.delegate_all:
            if not isinstance(dlg, list):
                raise DirectoryError("delegate must be a list of SMTP addresses or '*'")
            for x in dlg:
                a.delegate.add(str(x).lower())
        self.accounts[a.username.lower()] = a
        return a

    @staticmethod
    def _set_scope(a, imp):
        scope_all = imp == "*" or imp == ["*"] or (isinstance(imp, dict) and bool(imp.get("all")))
        scope = set()
        if not scope_all:
            if not isinstance(imp, list):
                raise DirectoryError("impersonate must be a list of SMTP addresses or '*'")
            for s in imp:
                scope.add(str(s).lower())
        a.scope_all = scope_all
        a.scope = scope

    def update_account(self, a, spec):
        """Change a live account: its password and/or its impersonation scope."""
        if not isinstance(spec, dict):
            raise DirectoryError("account change must be a JSON object")
        if "impersonate" in spec:
            self._set_scope(a, spec["impersonate"])
        if "password" in spec:
            a.password = str(spec["password"])

    def add_mailbox(self, spec):
        if not isinstance(spec, dict) or "smtp" not in spec:
            raise DirectoryError("mailbox needs smtp")
        mb = Mailbox()
        mb.directory = self
        mb.smtp = str(spec["smtp"]).lower()
        local = mb.smtp.split("@")[0]
        mb.upn = str(spec.get("upn", "%s@%s" % (local, GEN_UPN_DOMAIN))).lower()
        mb.sid = str(spec.get("sid", "S-1-5-21-1111111111-2222222222-3333333333-%d"
                              % (5000 + len(self.by_smtp))))
        mb.name = str(spec.get("name", local))
        mb.upn_required = bool(spec.get("upn_required", False))
        mb._oof = self._oof(spec.get("oof", {}))
        mb.server = None        # backend FQDN; None: by hash of the address (see Sim.home)
        mb.grouping = None      # GroupingInformation; None: the backend's
        mb.move = None
        mb.ad_redirect = None
        mb.online = None
        mb.subs_created = 0     # EWS subscriptions made for it
        if spec.get("exchange_online"):
            self.set_online(mb, spec["exchange_online"])
        if spec.get("server") is not None:
            if self.resolve_backend is None:
                raise DirectoryError("mailbox %s: server needs the simulator" % mb.smtp)
            try:
                mb.server = self.resolve_backend(spec["server"])
            except ValueError as exc:
                raise DirectoryError("mailbox %s: %s" % (mb.smtp, exc)) from exc
        if spec.get("grouping") is not None:
            mb.grouping = str(spec["grouping"])
        red = spec.get("autodiscover_redirect")
        if red is not None:
            if not isinstance(red, dict) or len(red) != 1 or not set(red) <= {"address", "url"}:
                raise DirectoryError("mailbox %s: autodiscover_redirect is {\"address\": ..} "
                                     "or {\"url\": ..}" % mb.smtp)
            mb.ad_redirect = (next(iter(red)), str(next(iter(red.values()))))
        mb.gen_index = None
        mb.next_local = 0
        mb._items = {}
        for it in spec.get("items", []):
            try:
                local_id = str(it["id"]) if isinstance(it, dict) and "id" in it else mb.new_local()
                item = cal.make_item({k: v for k, v in it.items() if k != "id"}, local_id, self.now)
            except cal.ItemError as exc:
                raise DirectoryError("mailbox %s: %s" % (mb.smtp, exc)) from exc
            mb._items[local_id] = item
        self._index(mb)
        return mb

    def _index(self, mb):
        self.by_smtp[mb.smtp] = mb
        self.by_upn[mb.upn] = mb
        self.by_sid[mb.sid.upper()] = mb

    def _oof(self, spec):
        if not isinstance(spec, dict):
            raise DirectoryError("oof must be an object")
        state = spec.get("state", "Disabled")
        if state not in OOF_STATES:
            raise DirectoryError("oof.state must be Disabled, Enabled or Scheduled")
        o = {"state": state,
             "external_audience": spec.get("external_audience", "All"),
             "internal_reply": str(spec.get("internal_reply", "")),
             "external_reply": str(spec.get("external_reply", ""))}
        try:
            o["start"] = cal.parse_time(spec.get("start", "now"), self.now)
            o["end"] = cal.parse_time(spec.get("end", "now+1d"), self.now)
        except cal.ItemError as exc:
            raise DirectoryError(str(exc)) from exc
        if o["external_audience"] not in ("None", "Known", "All"):
            raise DirectoryError("oof.external_audience must be None, Known or All")
        return o

    def set_oof(self, mb, spec):
        mb.oof = self._oof(spec)

    # ------------------------------------------------------------ generated mailboxes
    def generate(self, n, meetings=0, account="svc-ewsgw", password="Passw0rd!", domain="CORP"):
        self.generated = n
        self.generated_meetings = meetings
        self.gen_account = self.add_account({"username": account, "password": password,
                                             "domain": domain, "impersonate": "*"})

    _GEN_RE = re.compile(r"^user(\d{6})@(.+)$")

    def _gen_index(self, addr, domain):
        mo = self._GEN_RE.match(addr)
        if not mo or mo.group(2) != domain:
            return None
        i = int(mo.group(1))
        return i if 1 <= i <= self.generated else None

    def _materialise(self, i):
        smtp = "user%06d@%s" % (i, GEN_DOMAIN)
        mb = self.by_smtp.get(smtp)
        if mb is not None:
            return mb
        mb = Mailbox()
        mb.directory = self
        mb.smtp = smtp
        mb.upn = "user%06d@%s" % (i, GEN_UPN_DOMAIN)
        mb.sid = GEN_SID_BASE + str(100000 + i)
        mb.name = "User %06d" % i
        mb.upn_required = False
        mb._oof = None
        mb._items = None
        mb.server = mb.grouping = mb.move = mb.ad_redirect = mb.online = None
        mb.subs_created = 0
        mb.gen_index = i
        mb.next_local = 0
        self.by_smtp[smtp] = mb  # UPN and SID lookups of generated mailboxes are computed
        return mb

    def generate_items(self, mb):
        rng = random.Random(mb.gen_index * 7919)
        base = self.now - self.now % 1800
        for k in range(self.generated_meetings):
            start = base + rng.randint(-16, 32) * 1800
            length = rng.choice((1, 1, 2, 2, 3)) * 1800
            roll = rng.random()
            spec = {"subject": "Generated meeting %d" % (k + 1), "start": start,
                    "end": start + length, "location": "Room %d" % rng.randint(1, 40),
                    "freebusy": "Busy"}
            if roll < 0.15:
                spec["freebusy"] = "Tentative"
            elif roll < 0.2:
                spec["freebusy"] = "OOF"
            elif roll < 0.25:
                spec["freebusy"] = "WorkingElsewhere"
            elif roll < 0.3:
                spec["sensitivity"] = "Private"
            elif roll < 0.33:
                spec["cancelled"] = True
            elif roll < 0.38:
                spec["recurrence"] = {"freq": "daily", "count": 5}
            local = mb.new_local()
            mb._items[local] = cal.make_item(spec, local, self.now)

    # ------------------------------------------------------------ lookups
    def account(self, username):
        return self.accounts.get(username.lower())

    @staticmethod
    def set_online(mb, tenant):
        """Migrated to Exchange Online, as a hybrid on-premises server sees it:
        a mail user whose target address (remote routing address) is
        local@TENANT.mail.onmicrosoft.com.  tenant: a name, or True for "sim"."""
        name = "sim" if tenant is True else str(tenant)
        if not name or not all(c.isalnum() or c == "-" for c in name):
            raise DirectoryError("mailbox %s: exchange_online is true or a tenant name" % mb.smtp)
        mb.online = "%s@%s.mail.onmicrosoft.com" % (mb.smtp.split("@")[0], name)

    def by_smtp_address(self, addr):
        addr = addr.strip().lower()
        mb = self.by_smtp.get(addr)
        if mb is None and self.generated:
            i = self._gen_index(addr, GEN_DOMAIN)
            if i is not None:
                mb = self._materialise(i)
        return mb

    def by_principal(self, upn):
        upn = upn.strip().lower()
        mb = self.by_upn.get(upn)
        if mb is None and self.generated:
            i = self._gen_index(upn, GEN_UPN_DOMAIN)
            if i is not None:
                mb = self._materialise(i)
        return mb

    def by_sid_value(self, sid):
        sid = sid.strip().upper()
        mb = self.by_sid.get(sid)
        if mb is None and self.generated and sid.startswith(GEN_SID_BASE.upper()):
            tail = sid[len(GEN_SID_BASE):]
            if tail.isdigit():
                i = int(tail) - 100000
                if 1 <= i <= self.generated:
                    mb = self._materialise(i)
        return mb

    def mailbox_count(self):
        explicit = sum(1 for mb in self.by_smtp.values() if mb.gen_index is None)
        return explicit + self.generated
