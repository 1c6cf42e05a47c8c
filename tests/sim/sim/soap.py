"""SOAP/XML for the simulator: safe request parsing and response serialisation.

Requests are parsed with lxml with entity resolution, DTD loading and network
access disabled; any DOCTYPE is refused outright.  Responses are built as small
`El` trees and serialised by `serialize`, which can render the same tree with
different prefix conventions (real servers use s:, soap:, h:, default xmlns).
"""
import random

from lxml import etree

SOAP = "http://schemas.xmlsoap.org/soap/envelope/"
M = "http://schemas.microsoft.com/exchange/services/2006/messages"
T = "http://schemas.microsoft.com/exchange/services/2006/types"
E = "http://schemas.microsoft.com/exchange/services/2006/errors"
XML_NS = "http://www.w3.org/XML/1998/namespace"
EXTRA_NS = "urn:ewssim:unknown-extension"

STYLES = ("s", "soap", "default", "other", "exchange")


class BadRequest(Exception):
    """The request body is not acceptable XML/SOAP."""


_PARSER = etree.XMLParser(resolve_entities=False, no_network=True, load_dtd=False,
                          dtd_validation=False, huge_tree=False, remove_comments=True,
                          remove_pis=True, collect_ids=False)


def parse(data):
    """Parse bytes into an lxml root element; refuse DTDs and entities."""
    if b"<!DOCTYPE" in data[:4096].upper() or b"<!ENTITY" in data.upper():
        raise BadRequest("DOCTYPE/ENTITY declarations are not allowed")
    try:
        root = etree.fromstring(data, _PARSER)
    except (etree.XMLSyntaxError, ValueError) as exc:
        raise BadRequest("malformed XML: %s" % exc) from exc
    if root is None:
        raise BadRequest("empty document")
    if root.getroottree().docinfo.doctype:
        raise BadRequest("DOCTYPE not allowed")
    return root


def q(ns, local):
    return "{%s}%s" % (ns, local)


def child(elem, ns, local):
    if elem is None:
        return None
    return elem.find(q(ns, local))


def children(elem, ns, local):
    if elem is None:
        return []
    return elem.findall(q(ns, local))


def text(elem, ns=None, local=None, default=None):
    if ns is not None:
        elem = child(elem, ns, local)
    if elem is None or elem.text is None:
        return default
    return elem.text.strip()


def elements(elem):
    if elem is None:
        return []
    return [c for c in elem if isinstance(c.tag, str)]


def localname(elem):
    return etree.QName(elem).localname


def nsname(elem):
    return etree.QName(elem).namespace


# ---------------------------------------------------------------- building
class El:
    __slots__ = ("ns", "name", "attrs", "kids", "text")

    def __init__(self, ns, name, attrs=None, kids=None, text=None):
        self.ns = ns
        self.name = name
        self.attrs = attrs
        self.kids = kids if kids is not None else []
        self.text = text

    def add(self, ns, name, attrs=None, text=None):
        e = El(ns, name, attrs, None, text)
        self.kids.append(e)
        return e

    def append(self, e):
        self.kids.append(e)
        return e


def m(name, attrs=None, text=None, kids=None):
    return El(M, name, attrs, kids, None if text is None else str(text))


def t(name, attrs=None, text=None, kids=None):
    return El(T, name, attrs, kids, None if text is None else str(text))


def esc(s):
    return (s.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")
            .replace("\r", "&#13;"))


def esc_attr(s):
    return esc(s).replace('"', "&quot;").replace("\n", "&#10;").replace("\t", "&#9;")


_FIXED = {
    "s": {SOAP: "s", M: "m", T: "t", E: "e"},
    "exchange": {SOAP: "s", M: "m", T: "t", E: "e"},
    "soap": {SOAP: "soap", M: "m", T: "t", E: "e"},
}


def _serialize_prefixed(e, pmap, out, declare_at_root):
    p = pmap[e.ns]
    tag = "%s:%s" % (p, e.name)
    out.append("<" + tag)
    if declare_at_root:
        for ns, pre in declare_at_root:
            out.append(' xmlns:%s="%s"' % (pre, ns))
    if e.attrs:
        for k, v in e.attrs.items():
            if k.startswith("{"):
                ns, _, loc = k[1:].partition("}")
                k = ("xml:" if ns == XML_NS else pmap[ns] + ":") + loc
            out.append(' %s="%s"' % (k, esc_attr(str(v))))
    if not e.kids and e.text is None:
        out.append("/>")
        return
    out.append(">")
    if e.text is not None:
        out.append(esc(e.text))
    for k in e.kids:
        _serialize_prefixed(k, pmap, out, None)
    out.append("</%s>" % tag)


def _serialize_default(e, parent_ns, out):
    out.append("<" + e.name)
    if e.ns != parent_ns:
        out.append(' xmlns="%s"' % e.ns)
    if e.attrs:
        for k, v in e.attrs.items():
            if k.startswith("{"):
                ns, _, loc = k[1:].partition("}")
                k = "xml:" + loc if ns == XML_NS else 'x:%s" xmlns:x="%s' % (loc, ns)
            out.append(' %s="%s"' % (k, esc_attr(str(v))))
    if not e.kids and e.text is None:
        out.append("/>")
        return
    out.append(">")
    if e.text is not None:
        out.append(esc(e.text))
    for k in e.kids:
        _serialize_default(k, e.ns, out)
    out.append("</%s>" % e.name)


def _all_ns(e, acc):
    acc.add(e.ns)
    if e.attrs:
        for k in e.attrs:
            if k.startswith("{"):
                ns = k[1:].partition("}")[0]
                if ns != XML_NS:
                    acc.add(ns)
    for k in e.kids:
        _all_ns(k, acc)
    return acc


def serialize(root, style="s", rng=None):
    """Serialise an El tree to bytes (no XML declaration; the caller adds one)."""
    rng = rng or random
    if style == "random":
        style = rng.choice(STYLES)
    out = []
    if style == "default":
        _serialize_default(root, None, out)
        return "".join(out).encode("utf-8")
    used = _all_ns(root, set())
    if style in _FIXED:
        pmap = dict(_FIXED[style])
    else:  # "other": arbitrary prefixes, e.g. what another SOAP stack might emit
        pmap = {}
    n = 0
    for ns in sorted(used):
        if ns not in pmap:
            n += 1
            pmap[ns] = "ns%d%s" % (n, rng.choice("abcxyz")) if style == "other" else "x%d" % n
    decl = sorted((ns, pmap[ns]) for ns in used)
    _serialize_prefixed(root, pmap, out, decl)
    data = "".join(out)
    if style == "exchange":
        # Exchange 2013+ writes <h:ServerVersionInfo xmlns:h="..types" xmlns="..types" .../>
        data = data.replace("<t:ServerVersionInfo ", '<h:ServerVersionInfo xmlns:h="%s" xmlns="%s" ' % (T, T), 1)
    return data.encode("utf-8")


def envelope(body_el, version_attrs, style="s", header_extra=None):
    """Wrap a body element with s:Header/ServerVersionInfo into an El envelope."""
    env = El(SOAP, "Envelope")
    if version_attrs is not None:
        hdr = env.add(SOAP, "Header")
        hdr.append(El(T, "ServerVersionInfo", dict(version_attrs)))
        if header_extra is not None:
            hdr.append(header_extra)
    body = env.add(SOAP, "Body")
    body.append(body_el)
    return env


def sprinkle_unknown(root, rng, probability=1.0):
    """Insert unknown elements (foreign and EWS namespaces) at random places."""
    nodes = []

    def walk(e, depth):
        if depth >= 2 and e.text is None:
            nodes.append(e)
        for k in e.kids:
            walk(k, depth + 1)
    walk(root, 0)
    for e in nodes:
        if rng.random() < probability:
            pos = rng.randint(0, len(e.kids))
            if rng.random() < 0.5:
                x = El(EXTRA_NS, "SimExtension", {"Kind": "unknown"}, None, None)
                x.add(EXTRA_NS, "Nested", None, "ignore me")
            else:
                x = El(e.ns, "FutureElement%d" % rng.randint(1, 9), None, None, "unknown")
            e.kids.insert(pos, x)
    return root


def fault(code, message, version_attrs=None, message_xml=None, style="s"):
    """SOAP 1.1 Fault as Exchange sends it (HTTP 500)."""
    env = El(SOAP, "Envelope")
    if version_attrs is not None:
        env.add(SOAP, "Header").append(El(T, "ServerVersionInfo", dict(version_attrs)))
    body = env.add(SOAP, "Body")
    f = body.add(SOAP, "Fault")
    # faultcode/faultstring/detail are unqualified in SOAP 1.1
    fc = El("", "faultcode", None, None, None)
    f.kids.append(fc)
    fc.text = code
    f.kids.append(El("", "faultstring", {"{%s}lang" % XML_NS: "en-US"}, None, message))
    det = El("", "detail")
    f.kids.append(det)
    det.add(E, "ResponseCode", None, code)
    det.add(E, "Message", None, message)
    if message_xml:
        mx = det.add(T, "MessageXml")
        for item in message_xml:
            mx.append(item)
    return env


def serialize_fault(env, style="s", rng=None):
    """Faults contain unqualified elements; serialise them with local declarations."""
    rng = rng or random
    if style == "random":
        style = rng.choice(STYLES)
    pre = {"soap": "soap", "other": "SOAP-ENV"}.get(style, "s")
    out = []
    out.append('<%s:Envelope xmlns:%s="%s">' % (pre, pre, SOAP))
    kids = env.kids
    for part in kids:
        if part.name == "Header":
            out.append("<%s:Header>" % pre)
            for k in part.kids:
                out.append(_inline(k, style, rng))
            out.append("</%s:Header>" % pre)
        else:
            out.append("<%s:Body><%s:Fault>" % (pre, pre))
            f = part.kids[0]
            fc, fs, det = f.kids
            out.append('<faultcode xmlns:a="%s">a:%s</faultcode>' % (T, esc(fc.text)))
            out.append('<faultstring xml:lang="en-US">%s</faultstring>' % esc(fs.text or ""))
            out.append("<detail>")
            for k in det.kids:
                out.append(_inline(k, style, rng))
            out.append("</detail></%s:Fault></%s:Body>" % (pre, pre))
    out.append("</%s:Envelope>" % pre)
    return "".join(out).encode("utf-8")


def _inline(e, style, rng):
    s = "default" if style == "default" else ("other" if style == "other" else "s")
    if s == "s":
        pmap = {E: "e", T: "t", M: "m", EXTRA_NS: "x"}
        used = sorted(_all_ns(e, set()))
        out = []
        _serialize_prefixed(e, pmap, out, [(ns, pmap[ns]) for ns in used])
        return "".join(out)
    return serialize(e, s, rng).decode("utf-8")


def to_string(root):
    return etree.tostring(root)
