"""NTLM (MS-NLMP) for the simulator: server side of the handshake plus the
primitives a test client needs.

MD4 is implemented here in pure Python because OpenSSL 3 moved it to the
legacy provider and hashlib may not offer it.
"""
import base64
import hashlib
import hmac
import os
import struct
import time

SIGNATURE = b"NTLMSSP\x00"

NEGOTIATE_UNICODE = 0x00000001
NEGOTIATE_OEM = 0x00000002
REQUEST_TARGET = 0x00000004
NEGOTIATE_SIGN = 0x00000010
NEGOTIATE_SEAL = 0x00000020
NEGOTIATE_NTLM = 0x00000200
NEGOTIATE_ALWAYS_SIGN = 0x00008000
TARGET_TYPE_DOMAIN = 0x00010000
NEGOTIATE_EXTENDED_SESSIONSECURITY = 0x00080000
NEGOTIATE_TARGET_INFO = 0x00800000
NEGOTIATE_VERSION = 0x02000000
NEGOTIATE_128 = 0x20000000
NEGOTIATE_KEY_EXCH = 0x40000000
NEGOTIATE_56 = 0x80000000


class NTLMError(Exception):
    pass


# ---------------------------------------------------------------- MD4 (RFC 1320)
def _rol(x, n):
    x &= 0xFFFFFFFF
    return ((x << n) | (x >> (32 - n))) & 0xFFFFFFFF


def md4(data):
    """Pure Python MD4 digest of bytes."""
    msg = bytearray(data)
    bitlen = (8 * len(data)) & 0xFFFFFFFFFFFFFFFF
    msg.append(0x80)
    while len(msg) % 64 != 56:
        msg.append(0)
    msg += struct.pack("<Q", bitlen)
    a, b, c, d = 0x67452301, 0xEFCDAB89, 0x98BADCFE, 0x10325476
    for off in range(0, len(msg), 64):
        x = struct.unpack("<16I", bytes(msg[off:off + 64]))
        aa, bb, cc, dd = a, b, c, d

        def f(x_, y, z):
            return (x_ & y) | (~x_ & z)

        def g(x_, y, z):
            return (x_ & y) | (x_ & z) | (y & z)

        def h(x_, y, z):
            return x_ ^ y ^ z

        for i in (0, 4, 8, 12):
            a = _rol(a + f(b, c, d) + x[i], 3)
            d = _rol(d + f(a, b, c) + x[i + 1], 7)
            c = _rol(c + f(d, a, b) + x[i + 2], 11)
            b = _rol(b + f(c, d, a) + x[i + 3], 19)
        for i in (0, 1, 2, 3):
            a = _rol(a + g(b, c, d) + x[i] + 0x5A827999, 3)
            d = _rol(d + g(a, b, c) + x[i + 4] + 0x5A827999, 5)
            c = _rol(c + g(d, a, b) + x[i + 8] + 0x5A827999, 9)
            b = _rol(b + g(c, d, a) + x[i + 12] + 0x5A827999, 13)
        for i in (0, 2, 1, 3):
            a = _rol(a + h(b, c, d) + x[i] + 0x6ED9EBA1, 3)
            d = _rol(d + h(a, b, c) + x[i + 8] + 0x6ED9EBA1, 9)
            c = _rol(c + h(d, a, b) + x[i + 4] + 0x6ED9EBA1, 11)
            b = _rol(b + h(c, d, a) + x[i + 12] + 0x6ED9EBA1, 15)
        a = (a + aa) & 0xFFFFFFFF
        b = (b + bb) & 0xFFFFFFFF
        c = (c + cc) & 0xFFFFFFFF
        d = (d + dd) & 0xFFFFFFFF
    return struct.pack("<4I", a, b, c, d)


def nt_hash(password):
    return md4(password.encode("utf-16-le"))


def ntowfv2(password, user, domain):
    return hmac.new(nt_hash(password), (user.upper() + domain).encode("utf-16-le"),
                    hashlib.md5).digest()


def _des_key(k7):
    """Expand 7 key bytes to an 8-byte DES key (parity bits unset)."""
    k = k7
    out = bytes([
        k[0] & 0xFE,
        ((k[0] << 7) | (k[1] >> 1)) & 0xFE,
        ((k[1] << 6) | (k[2] >> 2)) & 0xFE,
        ((k[2] << 5) | (k[3] >> 3)) & 0xFE,
        ((k[3] << 4) | (k[4] >> 4)) & 0xFE,
        ((k[4] << 3) | (k[5] >> 5)) & 0xFE,
        ((k[5] << 2) | (k[6] >> 6)) & 0xFE,
        (k[6] << 1) & 0xFE,
    ])
    return out


def _des_ecb(key8, block):
    # Single DES = TripleDES with K1=K2=K3; 'cryptography' accepts 8-byte keys.
    from cryptography.hazmat.primitives.ciphers import Cipher, algorithms, modes
    try:
        from cryptography.hazmat.decrepit.ciphers.algorithms import TripleDES
    except ImportError:  # older cryptography
        TripleDES = algorithms.TripleDES
    enc = Cipher(TripleDES(key8), modes.ECB()).encryptor()
    return enc.update(block) + enc.finalize()


def desl(key16, data8):
    k = key16 + b"\x00" * 5
    return b"".join(_des_ecb(_des_key(k[i:i + 7]), data8) for i in (0, 7, 14))


def ntlmv1_available():
    try:
        desl(b"\x00" * 16, b"\x00" * 8)
        return True
    except Exception:  # noqa: BLE001 - cryptography absent or DES disabled
        return False


# ---------------------------------------------------------------- messages
def _field(msg, off):
    if off + 8 > len(msg):
        raise NTLMError("truncated security buffer")
    length, _maxlen, offset = struct.unpack_from("<HHI", msg, off)
    if length == 0:
        return b""
    if offset + length > len(msg):
        raise NTLMError("security buffer outside message")
    return msg[offset:offset + length]


def parse_negotiate(msg):
    if len(msg) < 16 or msg[:8] != SIGNATURE or struct.unpack_from("<I", msg, 8)[0] != 1:
        raise NTLMError("not an NTLM NEGOTIATE message")
    return struct.unpack_from("<I", msg, 12)[0]


def av_pairs(pairs):
    out = b""
    for av_id, value in pairs:
        out += struct.pack("<HH", av_id, len(value)) + value
    return out + struct.pack("<HH", 0, 0)


def _filetime(t=None):
    t = time.time() if t is None else t
    return struct.pack("<Q", int((t + 11644473600) * 10000000))


def build_challenge(client_flags, server_challenge, nb_domain="SIM", nb_computer="EWSSIM",
                    dns_domain="sim.example.local", dns_computer="ewssim.sim.example.local"):
    unicode_ = bool(client_flags & NEGOTIATE_UNICODE) or not (client_flags & NEGOTIATE_OEM)
    enc = (lambda s: s.encode("utf-16-le")) if unicode_ else (lambda s: s.encode("ascii"))
    flags = (REQUEST_TARGET | NEGOTIATE_NTLM | NEGOTIATE_ALWAYS_SIGN | TARGET_TYPE_DOMAIN
             | NEGOTIATE_TARGET_INFO | NEGOTIATE_VERSION)
    flags |= NEGOTIATE_UNICODE if unicode_ else NEGOTIATE_OEM
    for f in (NEGOTIATE_EXTENDED_SESSIONSECURITY, NEGOTIATE_128, NEGOTIATE_56, NEGOTIATE_KEY_EXCH,
              NEGOTIATE_SIGN, NEGOTIATE_SEAL):
        if client_flags & f:
            flags |= f
    target = enc(nb_domain)
    info = av_pairs([
        (2, nb_domain.encode("utf-16-le")), (1, nb_computer.encode("utf-16-le")),
        (4, dns_domain.encode("utf-16-le")), (3, dns_computer.encode("utf-16-le")),
        (7, _filetime()),
    ])
    header_len = 56
    version = bytes([10, 0]) + struct.pack("<H", 17763) + b"\x00\x00\x00\x0f"
    msg = SIGNATURE + struct.pack("<I", 2)
    msg += struct.pack("<HHI", len(target), len(target), header_len)
    msg += struct.pack("<I", flags) + server_challenge + b"\x00" * 8
    msg += struct.pack("<HHI", len(info), len(info), header_len + len(target))
    msg += version
    assert len(msg) == header_len
    return msg + target + info


class Authenticate:
    __slots__ = ("flags", "lm", "nt", "domain", "user", "workstation")


def parse_authenticate(msg):
    if len(msg) < 52 or msg[:8] != SIGNATURE or struct.unpack_from("<I", msg, 8)[0] != 3:
        raise NTLMError("not an NTLM AUTHENTICATE message")
    a = Authenticate()
    a.lm = _field(msg, 12)
    a.nt = _field(msg, 20)
    dom = _field(msg, 28)
    usr = _field(msg, 36)
    wks = _field(msg, 44)
    a.flags = struct.unpack_from("<I", msg, 60)[0] if len(msg) >= 64 else 0
    codec = "utf-16-le" if a.flags & NEGOTIATE_UNICODE else "latin-1"
    try:
        a.domain, a.user, a.workstation = (x.decode(codec) for x in (dom, usr, wks))
    except UnicodeDecodeError as exc:
        raise NTLMError("bad string encoding") from exc
    return a


def verify(auth, server_challenge, password, allow_v1=True):
    """True if the AUTHENTICATE message proves knowledge of password."""
    nt = auth.nt
    if len(nt) > 24:
        proof, blob = nt[:16], nt[16:]
        if len(blob) < 28:
            return False
        # NTOWFv2 uses the user and domain exactly as the client sent them.
        key = ntowfv2(password, auth.user, auth.domain)
        expect = hmac.new(key, server_challenge + blob, hashlib.md5).digest()
        return hmac.compare_digest(expect, proof)
    if len(nt) == 24 and allow_v1:
        h = nt_hash(password)
        if auth.flags & NEGOTIATE_EXTENDED_SESSIONSECURITY and len(auth.lm) >= 8:
            chal = hashlib.md5(server_challenge + auth.lm[:8]).digest()[:8]
        else:
            chal = server_challenge
        try:
            return hmac.compare_digest(desl(h, chal), nt)
        except Exception:  # noqa: BLE001 - no DES available: cannot accept v1
            return False
    return False


# ---------------------------------------------------------------- client side (tests)
def client_negotiate(flags=None):
    if flags is None:
        flags = (NEGOTIATE_UNICODE | REQUEST_TARGET | NEGOTIATE_NTLM | NEGOTIATE_ALWAYS_SIGN
                 | NEGOTIATE_EXTENDED_SESSIONSECURITY | NEGOTIATE_128 | NEGOTIATE_56)
    return SIGNATURE + struct.pack("<II", 1, flags) + b"\x00" * 16


def parse_challenge(msg):
    if len(msg) < 48 or msg[:8] != SIGNATURE or struct.unpack_from("<I", msg, 8)[0] != 2:
        raise NTLMError("not a CHALLENGE message")
    flags = struct.unpack_from("<I", msg, 20)[0]
    return flags, msg[24:32], _field(msg, 40)


def client_authenticate_v2(challenge_msg, user, domain, password, workstation="TESTHOST"):
    flags, server_challenge, target_info = parse_challenge(challenge_msg)
    client_challenge = os.urandom(8)
    blob = b"\x01\x01\x00\x00\x00\x00\x00\x00" + _filetime() + client_challenge + b"\x00" * 4 \
        + target_info + b"\x00" * 4
    key = ntowfv2(password, user, domain)
    proof = hmac.new(key, server_challenge + blob, hashlib.md5).digest()
    nt = proof + blob
    lm = hmac.new(key, server_challenge + client_challenge, hashlib.md5).digest() + client_challenge
    return _build_authenticate(flags, lm, nt, domain, user, workstation)


def client_authenticate_v1(challenge_msg, user, domain, password, workstation="TESTHOST"):
    flags, server_challenge, _ = parse_challenge(challenge_msg)
    client_challenge = os.urandom(8)
    chal = hashlib.md5(server_challenge + client_challenge).digest()[:8]
    nt = desl(nt_hash(password), chal)
    lm = client_challenge + b"\x00" * 16
    return _build_authenticate(flags | NEGOTIATE_EXTENDED_SESSIONSECURITY, lm, nt, domain,
                               user, workstation)


def _build_authenticate(flags, lm, nt, domain, user, workstation):
    fields = [lm, nt, domain.encode("utf-16-le"), user.encode("utf-16-le"),
              workstation.encode("utf-16-le"), b""]
    off = 64
    hdr = SIGNATURE + struct.pack("<I", 3)
    payload = b""
    for f in fields:
        hdr += struct.pack("<HHI", len(f), len(f), off + len(payload))
        payload += f
    hdr += struct.pack("<I", flags | NEGOTIATE_UNICODE)
    return hdr + payload


def b64(msg):
    return base64.b64encode(msg).decode("ascii")
