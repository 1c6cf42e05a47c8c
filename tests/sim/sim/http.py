"""A small asyncio HTTP/1.1 server: keep-alive, bounded request sizes, chunked
responses written incrementally, and a per-connection state dict (NTLM needs it)."""
import asyncio
import itertools
import logging
import socket
import time

log = logging.getLogger("ewssim.http")

MAX_HEADER_BYTES = 64 * 1024
MAX_HEADERS = 100
REASONS = {100: "Continue", 200: "OK", 400: "Bad Request", 401: "Unauthorized", 403: "Forbidden",
           404: "Not Found", 405: "Method Not Allowed", 411: "Length Required",
           413: "Payload Too Large", 500: "Internal Server Error", 501: "Not Implemented",
           502: "Bad Gateway", 503: "Service Unavailable", 504: "Gateway Timeout"}


class HTTPError(Exception):
    def __init__(self, status, message=""):
        super().__init__(message)
        self.status = status


class Request:
    # arrived: time.monotonic() when its head was read; on_sent: called
    # with the time its answer was written out, if the handler sets it.
    __slots__ = ("method", "target", "path", "query", "version", "headers", "header_list", "body",
                 "conn", "arrived", "on_sent")

    def header(self, name, default=None):
        return self.headers.get(name.lower(), default)

    def cookies(self):
        out = {}
        for line in [v for k, v in self.header_list if k == "cookie"]:
            for part in line.split(";"):
                k, sep, v = part.strip().partition("=")
                if sep:
                    out[k.strip()] = v.strip()
        return out


class Response:
    __slots__ = ("status", "headers", "body", "close")

    def __init__(self, status=200, body=b"", headers=None, close=False):
        self.status = status
        self.body = body
        self.headers = headers or []
        self.close = close


class Connection:
    _ids = itertools.count(1)

    def __init__(self, reader, writer, server):
        self.id = next(self._ids)
        self.reader = reader
        self.writer = writer
        self.server = server
        self.state = {}          # per-connection protocol state (NTLM)
        self.closed = False
        self.must_close = False
        self.peer = writer.get_extra_info("peername")

    # -------------------------------------------------------------- writing
    def _head(self, status, headers, extra):
        lines = ["HTTP/1.1 %d %s" % (status, REASONS.get(status, "Status"))]
        names = set()
        for k, v in headers:
            lines.append("%s: %s" % (k, v))
            names.add(k.lower())
        lines.extend(extra)
        if "date" not in names:
            lines.append("Date: " + self.server.http_date())
        lines.append("Server: Microsoft-IIS/10.0")
        lines.append("X-Powered-By: ASP.NET")
        return ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1")

    async def send(self, resp):
        special = getattr(resp, "special", None)
        if special is not None:
            await special(self, resp)
            return
        extra = ["Content-Length: %d" % len(resp.body)]
        if resp.close or self.must_close:
            extra.append("Connection: close")
            self.must_close = True
        self.writer.write(self._head(resp.status, resp.headers, extra) + resp.body)
        await self.writer.drain()

    async def send_raw(self, data):
        self.writer.write(data)
        await self.writer.drain()

    async def start_chunked(self, status, headers):
        self.writer.write(self._head(status, headers, ["Transfer-Encoding: chunked"]))
        await self.writer.drain()

    async def write_chunk(self, data):
        if data:
            self.writer.write(b"%x\r\n%s\r\n" % (len(data), data))
            await self.writer.drain()

    async def end_chunked(self):
        self.writer.write(b"0\r\n\r\n")
        await self.writer.drain()

    def abort(self):
        """Close the TCP connection at once (fault injection, restart)."""
        self.must_close = True
        self.closed = True
        try:
            self.writer.transport.abort()
        except Exception:  # noqa: BLE001
            pass

    def peer_closed(self):
        """Whether the peer has closed its end, asked of the kernel: the
        coroutine serving a stream may not have run since the close (it
        sleeps between heartbeats or trickled bytes, longer under load),
        so a request arriving now must not take the connection for open."""
        t = self.writer.transport
        if self.closed or t.is_closing() or self.reader.at_eof():
            return True
        sk = t.get_extra_info("socket")
        if sk is None or sk.fileno() < 0:
            return True
        # a duplicate descriptor: peek without consuming, never blocking
        dup = socket.fromfd(sk.fileno(), sk.family, sk.type)
        try:
            return dup.recv(1, socket.MSG_PEEK | socket.MSG_DONTWAIT) == b""
        except BlockingIOError:
            return False      # nothing to read: still open
        except OSError:
            return True       # reset
        finally:
            dup.close()

    async def wait_eof(self):
        """Resolve when the peer closes (used while a response is streaming)."""
        try:
            while True:
                data = await self.reader.read(4096)
                if not data:
                    return
        except (ConnectionError, asyncio.CancelledError, OSError):
            return


class Server:
    def __init__(self, handler, max_body=4 * 1024 * 1024, idle_timeout=300.0, name="http"):
        self.handler = handler
        self.max_body = max_body
        self.idle_timeout = idle_timeout
        self.name = name
        self.connections = set()
        self._server = None
        self._date = (0, "")

    def http_date(self):
        now = int(time.time())
        if self._date[0] != now:
            self._date = (now, time.strftime("%a, %d %b %Y %H:%M:%S GMT", time.gmtime(now)))
        return self._date[1]

    async def start(self, host, port, ssl=None):
        self._server = await asyncio.start_server(self._serve, host, port, ssl=ssl,
                                                  limit=MAX_HEADER_BYTES, backlog=1024)
        return self._server.sockets[0].getsockname()[:2]

    async def close(self):
        if self._server:
            self._server.close()
        for c in list(self.connections):
            c.abort()
        if self._server:
            try:
                await asyncio.wait_for(self._server.wait_closed(), 2)
            except (asyncio.TimeoutError, Exception):  # noqa: BLE001
                pass

    async def _serve(self, reader, writer):
        conn = Connection(reader, writer, self)
        self.connections.add(conn)
        try:
            while not conn.must_close:
                try:
                    req = await asyncio.wait_for(self._read_request(conn), self.idle_timeout)
                except HTTPError as exc:
                    conn.must_close = True
                    await conn.send(Response(exc.status, (str(exc) or REASONS.get(exc.status, "")).encode(),
                                             [("Content-Type", "text/plain")], close=True))
                    break
                if req is None:
                    break
                resp = await self.handler(req)
                if resp is not None and not conn.closed:
                    await conn.send(resp)
                    if req.on_sent is not None:
                        req.on_sent(time.monotonic())
        except (asyncio.TimeoutError, ConnectionError, asyncio.IncompleteReadError, OSError):
            pass
        except asyncio.CancelledError:
            raise
        except Exception:  # noqa: BLE001 - never let one connection kill the server
            log.exception("%s: connection %d failed", self.name, conn.id)
        finally:
            self.connections.discard(conn)
            conn.closed = True
            try:
                writer.close()
            except Exception:  # noqa: BLE001
                pass

    async def _read_request(self, conn):
        reader = conn.reader
        try:
            head = await reader.readuntil(b"\r\n\r\n")
        except asyncio.IncompleteReadError as exc:
            if exc.partial.strip():
                raise HTTPError(400, "incomplete request head") from exc
            return None
        except (asyncio.LimitOverrunError, ValueError) as exc:
            raise HTTPError(400, "request head too large") from exc
        arrived = time.monotonic()
        try:
            text = head.decode("latin-1")
        except UnicodeDecodeError as exc:  # pragma: no cover - latin-1 never fails
            raise HTTPError(400) from exc
        lines = text.split("\r\n")
        parts = lines[0].split(" ")
        if len(parts) != 3 or not parts[2].startswith("HTTP/1."):
            raise HTTPError(400, "bad request line")
        req = Request()
        req.conn = conn
        req.arrived = arrived
        req.on_sent = None
        req.method, req.target, req.version = parts
        path, _, query = req.target.partition("?")
        req.path, req.query = path, query
        req.headers = {}
        req.header_list = []
        for line in lines[1:]:
            if not line:
                continue
            k, sep, v = line.partition(":")
            if not sep or not k or k != k.strip():
                raise HTTPError(400, "bad header line")
            k = k.lower()
            v = v.strip()
            req.header_list.append((k, v))
            if len(req.header_list) > MAX_HEADERS:
                raise HTTPError(400, "too many headers")
            req.headers[k] = (req.headers[k] + ", " + v) if k in req.headers and k != "authorization" else v
        if req.version == "HTTP/1.0" and req.headers.get("connection", "").lower() != "keep-alive":
            conn.must_close = True
        if "close" in req.headers.get("connection", "").lower():
            conn.must_close = True
        te = req.headers.get("transfer-encoding", "").lower()
        if req.headers.get("expect", "").lower() == "100-continue":
            conn.writer.write(b"HTTP/1.1 100 Continue\r\n\r\n")
        if te:
            if te != "chunked":
                raise HTTPError(501, "unsupported transfer-encoding")
            req.body = await self._read_chunked(reader)
        else:
            cl = req.headers.get("content-length", "0")
            if not cl.isdigit():
                raise HTTPError(400, "bad content-length")
            n = int(cl)
            if n > self.max_body:
                raise HTTPError(413)
            req.body = await reader.readexactly(n) if n else b""
        return req

    async def _read_chunked(self, reader):
        body = bytearray()
        while True:
            line = await reader.readuntil(b"\r\n")
            size_s = line.split(b";")[0].strip()
            try:
                size = int(size_s, 16)
            except ValueError as exc:
                raise HTTPError(400, "bad chunk size") from exc
            if size == 0:
                while (await reader.readuntil(b"\r\n")) != b"\r\n":
                    pass
                return bytes(body)
            if len(body) + size > self.max_body:
                raise HTTPError(413)
            body += await reader.readexactly(size)
            if await reader.readexactly(2) != b"\r\n":
                raise HTTPError(400, "bad chunk terminator")
