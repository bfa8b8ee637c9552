"""Browser mode: serve ui/ and the same Api object over HTTP on one machine.

`python main.py --serve` is for a remote GPU box reached through an SSH tunnel.
Any other web page open in the same browser can send requests to 127.0.0.1, so
every /api call must carry the per-run secret (printed in the URL, never in a
cookie a foreign page could ride on) and, when the browser sends an Origin, it
must be this server's own. Static files are public but can never leave ui/.
"""
import errno
import hmac
import json
import mimetypes
import secrets
import socket
import sys
import threading
import webbrowser
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from urllib.parse import unquote, urlsplit

UI_ROOT = (Path(__file__).resolve().parent.parent / "ui").resolve()
MAX_BODY = 32 * 1024 * 1024  # bytes; the biggest real request is an export (a PNG as base64)
LOOPBACK = {"127.0.0.1", "localhost", "::1"}

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
    return {"ok": False, "error": {"code": code, "message": message}}


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
    target = UI_ROOT.joinpath(*parts) if parts else UI_ROOT / "index.html"
    try:
        target = target.resolve()
    except OSError:
        return None
    if not target.is_relative_to(UI_ROOT):
        return None  # a symlink pointing out of ui/
    if target.is_dir():
        target = target / "index.html"
    return target if target.is_file() else None


def make_handler(api, secret: str, allowed_origins: set, methods: frozenset):
    class Handler(BaseHTTPRequestHandler):
        server_version = "SinkVis"
        sys_version = ""
        protocol_version = "HTTP/1.1"

        def log_message(self, fmt, *args):  # the default log would print the URL, secret included
            pass

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
                body = json.dumps(payload, allow_nan=False).encode()
            except (TypeError, ValueError):
                status, body = 500, json.dumps(_envelope("internal", "Response was not JSON.")).encode()
            extra = {"Connection": "close"} if self.close_connection else None
            self._send(status, body, "application/json; charset=utf-8", extra)

        def do_GET(self):
            target = static_path(urlsplit(self.path).path)
            if target is None:
                self._send(404, b"Not found", "text/plain; charset=utf-8")
                return
            ctype = mimetypes.guess_type(target.name)[0] or "application/octet-stream"
            if ctype.startswith("text/") or ctype in ("application/javascript", "application/json"):
                ctype += "; charset=utf-8"
            self._send(200, target.read_bytes(), ctype, {"Content-Security-Policy": CSP})

        do_HEAD = do_GET

        def do_POST(self):
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
                self._json(404, _envelope("unknown_method", f"No Api method named {name[:60]!r}."))
                return
            try:
                length = int(self.headers.get("Content-Length") or 0)
            except ValueError:
                length = -1
            if length < 0 or length > MAX_BODY:
                self._json(413, _envelope("too_large", f"Request body over {MAX_BODY // (1024 * 1024)} MB."))
                return
            raw = self.rfile.read(length) if length else b""
            try:
                params = json.loads(raw) if raw.strip() else None
            except (ValueError, UnicodeDecodeError):
                self._json(400, _envelope("bad_json", "Request body is not valid JSON."))
                return
            result = getattr(api, name)(params)
            self._json(200, result if isinstance(result, dict) else _envelope("internal", "Bad result."))

    return Handler


def _origins(host: str, port: int) -> set:
    """This server's own origin; on loopback the other loopback spellings at the same port too."""
    shown = f"[{host}]" if ":" in host else host
    origins = {f"http://{shown}:{port}"}
    if host in LOOPBACK:
        origins |= {f"http://127.0.0.1:{port}", f"http://localhost:{port}", f"http://[::1]:{port}"}
    return origins


def make_server(api, host: str = "127.0.0.1", port: int = 8765):
    """Bind (port 0 = any free port) and return (server, url-with-secret). Raises PortInUse."""
    secret = secrets.token_urlsafe(24)
    server_class = type("SinkVisServer", (ThreadingHTTPServer,),
                        {"daemon_threads": True, "allow_reuse_address": False, "address_family": _family(host)})
    try:
        server = server_class((host, port), BaseHTTPRequestHandler)
    except OSError as exc:
        if exc.errno in (errno.EADDRINUSE, getattr(errno, "WSAEADDRINUSE", -1)):
            raise PortInUse(host, port, find_free_port(host, port)) from None
        raise
    real_port = server.server_address[1]
    server.RequestHandlerClass = make_handler(api, secret, _origins(host, real_port), public_methods(type(api)))
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
