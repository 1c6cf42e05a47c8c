"""SerializableTimeZone (GetUserAvailability) <-> UTC conversion, DST rules included."""
import calendar
import time

DAYS = ("Sunday", "Monday", "Tuesday", "Wednesday", "Thursday", "Friday", "Saturday")


class Zone:
    """Bias semantics as in EWS: UTC = local + bias (minutes)."""

    def __init__(self, bias=0, std=None, dst=None):
        self.bias = bias
        self.std = std  # dict(bias, time, day_order, month, day_of_week)
        self.dst = dst

    def has_dst(self):
        return bool(self.std and self.dst and self.std["month"] and self.dst["month"]
                    and self.std["month"] != self.dst["month"])

    def _transition(self, rule, year):
        """Local wall-clock epoch (as if UTC) of the rule's transition in year."""
        month = rule["month"]
        wd = DAYS.index(rule["day_of_week"]) if rule["day_of_week"] in DAYS else 0
        # python weekday: Monday=0; EWS list starts Sunday
        py_wd = (wd - 1) % 7
        first = calendar.weekday(year, month, 1)
        day = 1 + (py_wd - first) % 7 + 7 * (rule["day_order"] - 1)
        last = calendar.monthrange(year, month)[1]
        while day > last:
            day -= 7
        hh, mm, ss = (list(map(int, rule["time"].split(":"))) + [0, 0, 0])[:3]
        return calendar.timegm((year, month, day, hh, mm, ss))

    def offset_for_local(self, local_ts):
        """Minutes to add to local wall time to get UTC."""
        if not self.has_dst():
            return self.bias + (self.std["bias"] if self.std else 0)
        year = time.gmtime(local_ts).tm_year
        d_start = self._transition(self.dst, year)
        s_start = self._transition(self.std, year)
        if d_start < s_start:
            in_dst = d_start <= local_ts < s_start
        else:  # southern hemisphere
            in_dst = not (s_start <= local_ts < d_start)
        return self.bias + (self.dst["bias"] if in_dst else self.std["bias"])

    def to_utc(self, local_ts):
        return local_ts + self.offset_for_local(local_ts) * 60

    def to_local(self, utc_ts):
        guess = utc_ts - self.offset_for_local(utc_ts) * 60
        return utc_ts - self.offset_for_local(guess) * 60
