"""Browser mode: serve ui/ and the same Api object over HTTP on one machine.

`python main.py --serve` is for a remote GPU box reached through an SSH tunnel.
Any other web page open in the same browser can send requests to 127.0.0.1, so
every /api call must carry the per-run secret (printed in the URL, never in a
cookie a foreign page could ride on) and, when the browser sends an Origin, it
must be this server's own. Every request must name this server in its Host header
(a DNS-rebinding page names its own host). Static files are public but can never
leave ui/.

Whatever a client sends, it gets a status and a small body, and nothing it sends
writes a traceback to the log. A client has READ_TIMEOUT seconds to send a whole
request (headers and body); at most MAX_CONNECTIONS are served at once, and when
that many are open the one that has waited longest for its request is dropped to
make room, so slow clients cannot hold the app.
"""
import errno
import hmac
import json
import logging
import mimetypes
import secrets
import socket
import sys
import threading
import time
import webbrowser
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from urllib.parse import unquote, urlsplit

from .envelope import error as _error_envelope
from .secrets import redact

UI_ROOT = (Path(__file__).resolve().parent.parent / "ui").resolve()
MAX_BODY = 32 * 1024 * 1024  # bytes; the biggest real request is an export (a PNG as base64)
LOOPBACK = {"127.0.0.1", "localhost", "::1"}
WILDCARD = {"0.0.0.0", "::", ""}
READ_TIMEOUT = 15.0     # seconds a client has to send one whole request (a slow one is cut off)
MAX_CONNECTIONS = 32    # served at once; beyond, the longest-waiting idle or slow one is dropped
MAX_STATIC = 16 * 1024 * 1024  # bytes; ui/'s biggest file (Chart.js) is ~200 KB
NAME_ECHO = 40          # characters of a client's method name quoted back

log = logging.getLogger("sinkvis.serve")

# A response header, not a <meta>, so the desktop window's own injected bridge is never affected.
CSP = ("default-src 'self'; script-src 'self'; style-src 'self' 'unsafe-inline'; "
       "img-src 'self' data: blob:; connect-src 'self'; frame-ancestors 'none'; base-uri 'none'")


class PortInUse(OSError):
    """The requested port is taken; carries a free one to suggest."""

    def __init__(self, host: str, port: int, free_port: int):
        self.free_port = free_port
        super().__init__(errno.EADDRINUSE,
                         f"Port {port} on {host} is already in use. Port {free_port} is free: "
                         f"run `python main.py --serve --port {free_port}`.")


def public_methods(api_class) -> frozenset:
    """The whitelist: callable attributes of the Api class whose names do not start with '_'."""
    return frozenset(name for name in dir(api_class)
                     if not name.startswith("_") and callable(getattr(api_class, name, None)))


def find_free_port(host: str, near: int = 0) -> int:
    """A port that can be bound now: the next few after `near` first, else any the OS gives."""
    candidates = [p for p in range(near + 1, near + 21) if 0 < p < 65536] if near else []
    for port in candidates + [0]:
        with socket.socket(_family(host), socket.SOCK_STREAM) as s:
            try:
                s.bind((host, port))
            except OSError:
                continue
            return s.getsockname()[1]
    raise OSError("no free port found")


def _family(host: str):
    return socket.AF_INET6 if ":" in host else socket.AF_INET


def _envelope(code: str, message: str) -> dict:
    return _error_envelope(code, message)  # redacted, like every Api error


def static_path(raw_path: str) -> Path | None:
    """Map a URL path to a file under ui/, or None. Rejects `..`, encoded separators, NULs, absolute tricks."""
    lowered = raw_path.lower()
    if "%2f" in lowered or "%5c" in lowered or "%00" in lowered:
        return None  # an encoded separator has no business in a static URL
    decoded = unquote(raw_path)
    if "\\" in decoded or "\x00" in decoded or "%" in decoded:
        return None  # backslashes, NULs and double encoding (%252e) are all refused
    parts = [p for p in decoded.split("/") if p]
    if any(p in (".", "..") or ":" in p for p in parts):
        return None
    try:
        target = UI_ROOT.joinpath(*parts) if parts else UI_ROOT / "index.html"
        target = target.resolve()
        if not target.is_relative_to(UI_ROOT):
            return None  # a symlink pointing out of ui/
        if target.is_dir():
            target = target / "index.html"
        return target if target.is_file() else None
    except (OSError, RuntimeError, ValueError):  # name too long, a symlink loop (RuntimeError), a NUL…
        return None


def _read_static(target: Path) -> bytes | None:
    """ui/ is ours, but read it bounded anyway: a regular file, at most MAX_STATIC bytes."""
    try:
        with open(target, "rb") as f:
            data = f.read(MAX_STATIC + 1)
    except OSError:
        return None
    return data if len(data) <= MAX_STATIC else None


class _Connections:
    """The open connections: when each began waiting for its request, and whether it is being answered.

    A reaper cuts a connection off once it has waited READ_TIMEOUT for a whole request (a socket
    timeout alone would not: a client sending a byte every few seconds resets it for ever), and a
    new connection past MAX_CONNECTIONS pushes out the one that has waited longest."""

    def __init__(self, read_timeout: float, max_connections: int):
        self.read_timeout, self.max = read_timeout, max_connections
        self._lock = threading.Lock()
        self._waiting: dict[socket.socket, float] = {}  # waiting for (the rest of) a request since
        self._busy: set[socket.socket] = set()          # a request is being answered
        self.dropped = 0

    def open(self, sock) -> bool:
        """Register a new connection; False when every slot is answering a request (send 503)."""
        with self._lock:
            if len(self._waiting) + len(self._busy) >= self.max:
                if not self._waiting:
                    return False
                oldest = min(self._waiting, key=self._waiting.get)
                self._cut(oldest)
            self._waiting[sock] = time.monotonic()
            return True

    def waiting(self, sock):
        with self._lock:
            self._busy.discard(sock)
            if sock not in self._waiting:
                self._waiting[sock] = time.monotonic()

    def answering(self, sock):
        with self._lock:
            self._waiting.pop(sock, None)
            self._busy.add(sock)

    def close(self, sock):
        with self._lock:
            self._waiting.pop(sock, None)
            self._busy.discard(sock)

    def count(self) -> int:
        with self._lock:
            return len(self._waiting) + len(self._busy)

    def reap(self):
        now = time.monotonic()
        with self._lock:
            for sock, since in list(self._waiting.items()):
                if now - since > self.read_timeout:
                    self._cut(sock)

    def _cut(self, sock):  # lock held
        self._waiting.pop(sock, None)
        self.dropped += 1
        try:
            sock.shutdown(socket.SHUT_RDWR)  # the handler's blocked read returns at once; its thread ends
        except OSError:
            pass


def _allowed_hosts(host: str, port: int) -> set:
    """Host header values that name this server: the bound address, and on loopback its other spellings."""
    shown = f"[{host}]" if ":" in host else host
    hosts = {f"{shown}:{port}"}
    if host in LOOPBACK or host in WILDCARD:
        hosts |= {f"127.0.0.1:{port}", f"localhost:{port}", f"[::1]:{port}"}
    if host in WILDCARD:  # bound to every interface: this machine's own names and addresses too
        try:
            name, aliases, addresses = socket.gethostbyname_ex(socket.gethostname())
            hosts |= {f"{h}:{port}" for h in [name, *aliases, *addresses, socket.gethostname()]}
        except OSError:
            pass
    return {h.lower() for h in hosts}


def make_handler(api, secret: str, allowed_origins: set, methods: frozenset, allowed_hosts: set,
                 connections: _Connections):
    class Handler(BaseHTTPRequestHandler):
        server_version = "SinkVis"
        sys_version = ""
        protocol_version = "HTTP/1.1"
        timeout = connections.read_timeout  # each read; the reaper bounds the whole request

        def log_message(self, fmt, *args):  # the default log would print the URL, secret included
            pass

        def handle(self):
            try:
                super().handle()
            except (OSError, ValueError):
                pass  # a reset, a cut-off slow client, a closed socket: nothing to answer
            finally:
                connections.close(self.connection)

        def handle_one_request(self):
            connections.waiting(self.connection)
            try:
                super().handle_one_request()  # answers its own TimeoutError (slow headers) by closing
            except (OSError, ValueError):
                self.close_connection = True
            except Exception as exc:  # noqa: BLE001 - one line, no traceback: a client must not be able to fill the log
                log.warning("serve: %s while answering a request", type(exc).__name__)
                self._answer_error(500, "internal", "The server could not answer this request.")

        def send_error(self, code, message=None, explain=None):
            # http.server's own error page quotes the request line back (a token typed there would
            # come back verbatim): answer with a fixed message instead.
            if self.request_version not in ("HTTP/1.0", "HTTP/1.1"):
                self.request_version = "HTTP/1.0"  # an unparsable version line still gets a status line and headers
            self._answer_error(code, "bad_request", "Malformed HTTP request.")

        def _answer_error(self, status: int, code: str, message: str):
            self.close_connection = True
            try:
                self._json(status, _envelope(code, message))
            except (OSError, ValueError):
                pass

        def _host_ok(self) -> bool:
            host = (self.headers.get("Host") or "").strip().lower()
            if host in allowed_hosts:
                return True
            self.close_connection = True
            body = json.dumps(_envelope("forbidden", "The Host header does not name this server; open the URL printed "
                                        "at start-up (127.0.0.1 or localhost with its port).")).encode()
            self._send(403, body, "application/json; charset=utf-8", {"Connection": "close"})
            return False

        def _send(self, status: int, body: bytes, content_type: str, extra: dict | None = None):
            self.send_response(status)
            self.send_header("Content-Type", content_type)
            self.send_header("Content-Length", str(len(body)))
            self.send_header("Cache-Control", "no-store")
            self.send_header("X-Content-Type-Options", "nosniff")
            self.send_header("X-Frame-Options", "DENY")
            self.send_header("Referrer-Policy", "no-referrer")  # the secret stays out of Referer headers
            for key, value in (extra or {}).items():
                self.send_header(key, value)
            self.end_headers()
            if self.command != "HEAD":
                try:
                    self.wfile.write(body)
                except (BrokenPipeError, ConnectionResetError):
                    self.close_connection = True  # the page went away mid-answer (reload, closed tab)

        def _json(self, status: int, payload: dict):
            if status != 200:
                # Refused before (or without) reading the body: what is left of it must not be
                # parsed as the next request on this keep-alive connection.
                self.close_connection = True
            try:
                body = redact(json.dumps(payload, allow_nan=False)).encode()  # whatever a method echoed: no token leaves
            except (TypeError, ValueError, RecursionError):
                status, body = 500, json.dumps(_envelope("internal", "Response was not JSON.")).encode()
            extra = {"Connection": "close"} if self.close_connection else None
            self._send(status, body, "application/json; charset=utf-8", extra)

        def do_GET(self):
            connections.answering(self.connection)
            if not self._host_ok():
                return
            target = static_path(urlsplit(self.path).path)
            data = _read_static(target) if target is not None else None
            if data is None:
                self._send(404, b"Not found", "text/plain; charset=utf-8")
                return
            ctype = mimetypes.guess_type(target.name)[0] or "application/octet-stream"
            if ctype.startswith("text/") or ctype in ("application/javascript", "application/json"):
                ctype += "; charset=utf-8"
            self._send(200, data, ctype, {"Content-Security-Policy": CSP})

        do_HEAD = do_GET

        def do_POST(self):
            if not self._host_ok():
                return
            path = urlsplit(self.path).path
            if not path.startswith("/api/"):
                self._json(404, _envelope("not_found", "Only /api/<method> accepts POST."))
                return
            origin = self.headers.get("Origin")
            if origin is not None and origin not in allowed_origins:
                self._json(403, _envelope("forbidden", "Cross-origin request refused."))
                return
            given = self.headers.get("X-SinkVis-Secret", "")
            if not hmac.compare_digest(given.encode(), secret.encode()):
                self._json(403, _envelope("forbidden", "Missing or wrong X-SinkVis-Secret; open the URL printed at start-up."))
                return
            name = path[len("/api/"):]
            if name not in methods:
                shown = name[:NAME_ECHO] + ("…" if len(name) > NAME_ECHO else "")
                self._json(404, _envelope("unknown_method", f"No Api method named {shown!r}."))
                return
            try:
                length = int(self.headers.get("Content-Length") or 0)
            except ValueError:
                length = -1
            if length < 0 or length > MAX_BODY:
                self._json(413, _envelope("too_large", f"Request body over {MAX_BODY // (1024 * 1024)} MB."))
                return
            try:
                raw = self.rfile.read(length) if length else b""
            except TimeoutError:  # Content-Length larger than what was sent, and the client waits
                self._json(408, _envelope("timeout", "The request body did not arrive in time."))
                return
            if len(raw) < length:  # the client closed before sending all it announced
                self._json(400, _envelope("bad_json", "Request body is shorter than its Content-Length."))
                return
            connections.answering(self.connection)  # a whole request: no longer subject to the read deadline
            try:
                params = json.loads(raw) if raw.strip() else None
            except (ValueError, UnicodeDecodeError):
                self._json(400, _envelope("bad_json", "Request body is not valid JSON."))
                return
            except RecursionError:
                self._json(400, _envelope("bad_json", "Request body is nested too deeply."))
                return
            try:
                result = getattr(api, name)(params)
            except RecursionError:  # params nested deep enough to exhaust a method's recursion
                result = _envelope("bad_input", "The settings are nested too deeply.")
            self._json(200, result if isinstance(result, dict) else _envelope("internal", "Bad result."))

    return Handler


def _origins(host: str, port: int) -> set:
    """This server's own origin; on loopback the other loopback spellings at the same port too."""
    shown = f"[{host}]" if ":" in host else host
    origins = {f"http://{shown}:{port}"}
    if host in LOOPBACK:
        origins |= {f"http://127.0.0.1:{port}", f"http://localhost:{port}", f"http://[::1]:{port}"}
    return origins


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    allow_reuse_address = False
    connections: _Connections

    def process_request(self, request, client_address):
        if not self.connections.open(request):
            _refuse_busy(request)
            self.shutdown_request(request)
            return
        super().process_request(request, client_address)

    def service_actions(self):  # serve_forever calls this every poll interval
        self.connections.reap()

    def handle_error(self, request, client_address):  # the default prints a traceback a client could trigger
        log.warning("serve: %s while answering a request", type(sys.exc_info()[1]).__name__)


def _refuse_busy(sock) -> None:
    body = json.dumps(_envelope("busy", "The server is answering as many requests as it can; retry in a moment.")).encode()
    try:
        sock.settimeout(1.0)
        sock.sendall(b"HTTP/1.1 503 Service Unavailable\r\nContent-Type: application/json; charset=utf-8\r\n"
                     b"Content-Length: %d\r\nConnection: close\r\nRetry-After: 1\r\n\r\n%s" % (len(body), body))
    except OSError:
        pass


def make_server(api, host: str = "127.0.0.1", port: int = 8765, read_timeout: float = READ_TIMEOUT,
                max_connections: int = MAX_CONNECTIONS):
    """Bind (port 0 = any free port) and return (server, url-with-secret). Raises PortInUse."""
    secret = secrets.token_urlsafe(24)
    server_class = type("SinkVisServer", (_Server,), {"address_family": _family(host)})
    try:
        server = server_class((host, port), BaseHTTPRequestHandler)
    except OSError as exc:
        if exc.errno in (errno.EADDRINUSE, getattr(errno, "WSAEADDRINUSE", -1)):
            raise PortInUse(host, port, find_free_port(host, port)) from None
        raise
    real_port = server.server_address[1]
    server.connections = _Connections(read_timeout, max_connections)
    server.RequestHandlerClass = make_handler(api, secret, _origins(host, real_port), public_methods(type(api)),
                                              _allowed_hosts(host, real_port), server.connections)
    shown = f"[{host}]" if ":" in host else host
    return server, f"http://{shown}:{real_port}/?secret={secret}"


def serve(api, host: str = "127.0.0.1", port: int = 8765, open_browser: bool = False) -> None:
    """Serve until Ctrl+C. Prints the URL (with its secret). Exits with status 2 when the port is taken."""
    if host not in LOOPBACK:
        print(f"WARNING: listening on {host}, not loopback: anyone who can reach this machine and learns "
              "the URL can use the app. Prefer the default 127.0.0.1 and an SSH tunnel.", file=sys.stderr)
    try:
        server, url = make_server(api, host, port)
    except PortInUse as exc:
        print(f"sinkvis: {exc.strerror}", file=sys.stderr)
        raise SystemExit(2) from None
    real_port = server.server_address[1]
    print(f"SinkVis is serving on {url}", flush=True)
    print(f"Over SSH: ssh -L {real_port}:127.0.0.1:{real_port} <gpu-box>, then open the URL above "
          "(keep the same local port: the Origin check expects it). Ctrl+C stops.", flush=True)
    if open_browser:
        threading.Timer(0.5, webbrowser.open, args=(url,)).start()
    try:
        server.serve_forever(poll_interval=0.5)
    except KeyboardInterrupt:
        pass
    finally:
        server.server_close()
        jobs = getattr(getattr(api, "_state", None), "jobs", None)
        if jobs is not None:
            jobs.cancel_all(wait=2.0)
