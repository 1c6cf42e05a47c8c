"""The JSON shapes of Microsoft's Graph reference pages, written down by hand
from those pages (SCHEMA.md cites each) and checked with a small validator.

Nothing here is taken from graphsim.py: a shape is what the documentation
shows, so a response that passes looks like what Graph sends.

Shape language: a dict is an object whose keys are required, or optional when
they start with "?"; a type (str, int, bool) is that JSON type; a tuple of
strings is an enumeration; [shape] is an array of shape; None is JSON null;
Any accepts anything; Or(a, b) either.
"""
import re


class Any:
    pass


class Or:
    def __init__(self, *alts):
        self.alts = alts


class Pattern:
    def __init__(self, rx):
        self.rx = re.compile(rx)


# OAuth 2.0 client credentials, success and error (Microsoft identity platform
# "client credentials flow" page).
TOKEN = {"token_type": ("Bearer",), "expires_in": int, "?ext_expires_in": int,
         "access_token": str}
TOKEN_ERROR = {"error": str, "error_description": str, "?error_codes": [int],
               "?timestamp": str, "?trace_id": str, "?correlation_id": str}

# dateTimeTimeZone resource type.
DATETIME_TZ = {"dateTime": Pattern(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(\.\d{1,7})?$"),
               "timeZone": str}

# event resource type (the properties calendarView is asked to $select).
EVENT = {"?@odata.etag": str, "?@odata.type": str, "id": str, "?subject": Or(str, None),
         "showAs": ("free", "tentative", "busy", "oof", "workingElsewhere", "unknown"),
         "isAllDay": bool,
         "sensitivity": ("normal", "personal", "private", "confidential"),
         "isCancelled": bool,
         "?type": ("singleInstance", "occurrence", "exception", "seriesMaster"),
         "start": DATETIME_TZ, "end": DATETIME_TZ}

# List calendarView: a collection page.
CALENDAR_VIEW = {"?@odata.context": str, "value": [EVENT], "?@odata.nextLink": str}

# event: delta (calendarView): pages end in a nextLink or a deltaLink;
# removed items carry only the id and "@removed".
REMOVED = {"?@odata.type": str, "id": str, "@removed": {"reason": ("changed", "deleted")}}
DELTA = {"?@odata.context": str, "value": [Or(EVENT, REMOVED)],
         "?@odata.nextLink": str, "?@odata.deltaLink": str}

# automaticRepliesSetting resource type.
AUTO_REPLIES = {"?@odata.context": str,
                "status": ("disabled", "alwaysEnabled", "scheduled"),
                "externalAudience": ("none", "contactsOnly", "all"),
                "scheduledStartDateTime": DATETIME_TZ, "scheduledEndDateTime": DATETIME_TZ,
                "internalReplyMessage": str, "externalReplyMessage": str}

# subscription resource type.
SUBSCRIPTION = {"?@odata.context": str, "id": str, "resource": str, "applicationId": str,
                "changeType": str, "clientState": Or(str, None), "notificationUrl": str,
                "?lifecycleNotificationUrl": Or(str, None),
                "expirationDateTime": Pattern(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(\.\d+)?Z$"),
                "creatorId": str, "?latestSupportedTlsVersion": str,
                "?notificationContentType": str, "?includeResourceData": bool,
                "?encryptionCertificate": Or(str, None),
                "?encryptionCertificateId": Or(str, None),
                "?notificationQueryOptions": Or(str, None),
                "?notificationUrlAppId": Or(str, None)}

# changeNotification / changeNotificationCollection resource types, and the
# lifecycle notification shape of "Reduce missing subscriptions and change
# notifications".
CHANGE_NOTIFICATION = {"subscriptionId": str, "subscriptionExpirationDateTime": str,
                       "changeType": ("created", "updated", "deleted"), "resource": str,
                       "resourceData": {"?@odata.type": str, "?@odata.id": str,
                                        "?@odata.etag": str, "id": str},
                       "clientState": Or(str, None), "tenantId": str}
LIFECYCLE_NOTIFICATION = {"subscriptionId": str, "subscriptionExpirationDateTime": str,
                          "tenantId": str, "clientState": Or(str, None),
                          "lifecycleEvent": ("reauthorizationRequired", "subscriptionRemoved",
                                             "missed")}
NOTIFICATIONS = {"value": [Or(CHANGE_NOTIFICATION, LIFECYCLE_NOTIFICATION)],
                 "?validationTokens": [str]}

# JSON batching: the response envelope.
BATCH = {"responses": [{"id": str, "status": int, "?headers": {}, "?body": Any}],
         "?@odata.nextLink": str}

# Error responses in Microsoft Graph.
ERROR = {"error": {"code": str, "message": str, "?innerError": {}, "?details": [Any]}}


def check(value, shape, where="$"):
    """Return a list of mismatches (empty: value has the shape)."""
    out = []
    if shape is Any:
        return out
    if isinstance(shape, Or):
        for alt in shape.alts:
            if not check(value, alt, where):
                return out
        return ["%s: matches no alternative" % where]
    if shape is None:
        return [] if value is None else ["%s: not null" % where]
    if isinstance(shape, Pattern):
        if not isinstance(value, str) or not shape.rx.match(value):
            out.append("%s: %r does not match %s" % (where, value, shape.rx.pattern))
        return out
    if isinstance(shape, tuple):
        if value not in shape:
            out.append("%s: %r not one of %s" % (where, value, "/".join(shape)))
        return out
    if isinstance(shape, list):
        if not isinstance(value, list):
            return ["%s: not an array" % where]
        for i, v in enumerate(value):
            out += check(v, shape[0], "%s[%d]" % (where, i))
        return out
    if isinstance(shape, dict):
        if not isinstance(value, dict):
            return ["%s: not an object" % where]
        for k, sub in shape.items():
            opt = k.startswith("?")
            name = k[1:] if opt else k
            if name not in value:
                if not opt:
                    out.append("%s: %s missing" % (where, name))
                continue
            out += check(value[name], sub, where + "." + name)
        return out
    if shape is int:
        ok = isinstance(value, int) and not isinstance(value, bool)
    else:
        ok = isinstance(value, shape)
    if not ok:
        out.append("%s: %r is not %s" % (where, value, shape.__name__))
    return out
