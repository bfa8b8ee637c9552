"""--serve against hostile clients (issue #13, items 4–7), over real sockets on 127.0.0.1:
every request gets a status and a small body (deep JSON, over-long paths, symlink loops, broken
request lines); nothing a client sends writes a traceback; slow clients are cut off and cannot
hold the server (60 of them: figures printed); the Host header must name this server; nothing
the server says echoes a token or an unbounded name."""
import http.client
import json
import socket
import threading
import time

import pytest

import backend.serve as serve_module
from backend.secrets import remember_secret
from backend.serve import make_server

TOKEN = "hf_" + "Zq7" * 12  # looks like a Hugging Face token


class FakeApi:
    """Only the server is under test; a tiny stand-in keeps torch out of it."""

    def __init__(self):
        self.release = threading.Event()

    def ping(self, params=None):
        return {"ok": True, "pong": True}

    def block(self, params=None):  # holds its connection until the test releases it
        self.release.wait(30)
        return {"ok": True}


def start(**kwargs):
    api = FakeApi()
    srv, url = make_server(api, "127.0.0.1", 0, **kwargs)
    thread = threading.Thread(target=srv.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
    thread.start()
    return srv, srv.server_address[1], url.split("secret=", 1)[1], api


@pytest.fixture()
def server():
    srv, port, secret, api = start()
    yield srv, port, secret, api
    api.release.set()
    srv.shutdown()
    srv.server_close()


def raw_exchange(port, data: bytes, timeout=10.0, half_close=False) -> bytes:
    """Send raw bytes (then, with half_close, nothing more: EOF), read until the server closes (or timeout)."""
    with socket.create_connection(("127.0.0.1", port), timeout=timeout) as s:
        s.sendall(data)
        if half_close:
            s.shutdown(socket.SHUT_WR)
        chunks = []
        try:
            while chunk := s.recv(65536):
                chunks.append(chunk)
        except (TimeoutError, ConnectionResetError):
            pass
    return b"".join(chunks)


def status_of(response: bytes) -> int:
    assert response.startswith(b"HTTP/1."), response[:200]
    return int(response.split(b" ", 2)[1])


def post(port, name, body, secret, headers=None):
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
    conn.request("POST", f"/api/{name}", body=body, headers={"X-SinkVis-Secret": secret, **(headers or {})})
    resp = conn.getresponse()
    data = resp.read()
    conn.close()
    return resp.status, data


# --- item 4: every request gets an answer; no traceback ---------------------------------------

@pytest.mark.parametrize("depth", [1_000, 100_000])
def test_deeply_nested_json_is_answered(server, depth):
    _, port, secret, _ = server
    status, data = post(port, "ping", "[" * depth + "]" * depth, secret)
    assert status == 400 and len(data) < 300
    assert json.loads(data)["error"]["code"] == "bad_json" and "nested" in json.loads(data)["error"]["message"]
    assert post(port, "ping", "{}", secret)[0] == 200  # and the server is still there


@pytest.mark.parametrize("path", ["/" + "a" * 300, "/" + ("b" * 250 + "/") * 20 + "x.js", "/js/" + "c" * 5000 + ".js"])
def test_over_long_static_paths_get_404(server, path, capfd):
    _, port, _, _ = server
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
    conn.request("GET", path)
    resp = conn.getresponse()
    assert resp.status == 404 and len(resp.read()) < 100
    conn.close()
    err = capfd.readouterr().err
    assert "Traceback" not in err and "File name too long" not in err


def test_symlink_loop_inside_ui_gets_404(tmp_path, monkeypatch, capfd):
    root = tmp_path / "ui"
    root.mkdir()
    (root / "index.html").write_text("<title>SinkVis</title>")
    (root / "loop-a").symlink_to(root / "loop-b")
    (root / "loop-b").symlink_to(root / "loop-a")
    (root / "self").symlink_to(root / "self")
    monkeypatch.setattr(serve_module, "UI_ROOT", root.resolve())
    srv, port, _, _ = start()
    try:
        for path in ("/loop-a", "/loop-b/x.js", "/self", "/"):
            conn = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
            conn.request("GET", path)
            resp = conn.getresponse()
            body = resp.read()
            conn.close()
            assert resp.status == (200 if path == "/" else 404), (path, resp.status)
            assert len(body) < 100
    finally:
        srv.shutdown()
        srv.server_close()
    assert "Traceback" not in capfd.readouterr().err


HOSTILE = [  # raw requests a local process could send; each must get a status, none a traceback
    b"GET /" + b"a" * 300 + b" HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\n\r\n",
    b"GET / HTTP/9.9." + TOKEN.encode() + b"\r\nHost: 127.0.0.1:{port}\r\n\r\n",
    b"NONSENSE\r\n\r\n",
    b"GET / HTTP/1.1\r\n" + b"X-A: b\r\n" * 200 + b"\r\n",
    b"GET / HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nX-Long: " + b"y" * 70_000 + b"\r\n\r\n",
    b"POST /api/ping HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nContent-Length: -5\r\nX-SinkVis-Secret: {secret}\r\n\r\n",
    b"POST /api/ping HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nContent-Length: 4\r\nX-SinkVis-Secret: {secret}\r\n\r\n\xff\xfe\x00\x01",
    b"POST /api/ping HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nContent-Length: 2\r\nX-SinkVis-Secret: {secret}\r\n\r\n[",
]


@pytest.mark.parametrize("index", range(len(HOSTILE)))
def test_hostile_requests_get_a_status_and_no_traceback(server, index, capfd):
    _, port, secret, _ = server
    request = HOSTILE[index].replace(b"{port}", str(port).encode()).replace(b"{secret}", secret.encode())
    response = raw_exchange(port, request, timeout=5, half_close=True)
    assert 400 <= status_of(response) < 500, response[:300]
    head, _, body = response.partition(b"\r\n\r\n")
    assert len(body) < 300 and TOKEN.encode() not in response
    err = capfd.readouterr().err
    assert "Traceback" not in err and TOKEN not in err


# --- item 5: timeouts and a cap on connections ------------------------------------------------

def test_a_body_shorter_than_its_content_length_gets_408():
    srv, port, secret, _ = start(read_timeout=1.0)
    try:
        started = time.perf_counter()
        response = raw_exchange(port, b"POST /api/ping HTTP/1.1\r\nHost: 127.0.0.1:%d\r\nX-SinkVis-Secret: %s\r\n"
                                b"Content-Length: 1000\r\n\r\n{\"a\":" % (port, secret.encode()), timeout=10)
        took = time.perf_counter() - started
        assert status_of(response) == 408 and took < 4
        assert json.loads(response.partition(b"\r\n\r\n")[2])["error"]["code"] == "timeout"
    finally:
        srv.shutdown()
        srv.server_close()


def test_sixty_slow_clients_cannot_hold_the_server():
    """Half send their headers a byte at a time (each byte within the socket timeout), half a POST body
    shorter than its Content-Length. Before the fix all 60 held a server thread for ever."""
    read_timeout, cap = 2.0, 32
    srv, port, secret, _ = start(read_timeout=read_timeout, max_connections=cap)
    stop, socks = threading.Event(), []

    def drip(sock):
        try:
            sock.sendall(b"GET / HTTP/1.1\r\nHost: 127.0.0.1:%d\r\n" % port)
            while not stop.wait(0.5):
                sock.sendall(b"X")
        except OSError:
            pass  # the server cut us off: that is the point

    def all_request_threads():
        return sum(1 for t in threading.enumerate() if "process_request" in t.name)

    other_servers = all_request_threads()  # request threads of servers other tests left finishing

    def held():
        return max(0, all_request_threads() - other_servers)

    try:
        for i in range(60):
            sock = socket.create_connection(("127.0.0.1", port), timeout=10)
            socks.append(sock)
            if i % 2:
                sock.sendall(b"POST /api/ping HTTP/1.1\r\nHost: 127.0.0.1:%d\r\nX-SinkVis-Secret: %s\r\n"
                             b"Content-Length: 1000\r\n\r\n{" % (port, secret.encode()))
            else:
                threading.Thread(target=drip, args=(sock,), daemon=True).start()
        time.sleep(0.3)
        during = held()
        assert during <= cap and srv.connections.count() <= cap
        started = time.perf_counter()
        status, data = post(port, "ping", "{}", secret)  # the app answers while the cap is hit
        answered_in = time.perf_counter() - started
        assert status == 200 and json.loads(data)["pong"] and answered_in < 1.5
        deadline = time.time() + read_timeout + 3
        while held() and time.time() < deadline:
            time.sleep(0.1)
        after = held()
        print(f"\n[serve figures] 60 slow clients: {during} connections held while they hang (cap {cap}), "
              f"{after} after {read_timeout + 3:.0f} s (read timeout {read_timeout} s); a ping answered in {answered_in * 1000:.0f} ms")
        assert after == 0 and srv.connections.count() == 0
    finally:
        stop.set()
        for sock in socks:
            sock.close()
        srv.shutdown()
        srv.server_close()


def test_when_every_slot_is_answering_a_new_connection_gets_503():
    srv, port, secret, api = start(max_connections=2)
    try:
        blockers = [threading.Thread(target=post, args=(port, "block", "{}", secret), daemon=True) for _ in range(2)]
        for t in blockers:
            t.start()
        deadline = time.time() + 5
        while len(srv.connections._busy) < 2 and time.time() < deadline:
            time.sleep(0.02)
        response = raw_exchange(port, b"POST /api/ping HTTP/1.1\r\nHost: 127.0.0.1:%d\r\nX-SinkVis-Secret: %s\r\n"
                                b"Content-Length: 2\r\n\r\n{}" % (port, secret.encode()), timeout=5)
        assert status_of(response) == 503 and b'"busy"' in response
        api.release.set()
        for t in blockers:
            t.join(10)
        assert post(port, "ping", "{}", secret)[0] == 200  # slots free again
    finally:
        api.release.set()
        srv.shutdown()
        srv.server_close()


# --- item 6: the Host header ------------------------------------------------------------------

@pytest.mark.parametrize("host, ok", [
    ("127.0.0.1:{port}", True), ("localhost:{port}", True), ("LOCALHOST:{port}", True),
    ("evil.example", False), ("evil.example:{port}", False), ("127.0.0.1:1", False), ("127.0.0.1", False),
    ("attacker.rebind.example:{port}", False), (None, False),
])
def test_host_header_must_name_this_server(server, host, ok):
    _, port, secret, _ = server
    for method, path, body in (("POST", "/api/ping", "{}"), ("GET", "/", None)):
        conn = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
        conn.putrequest(method, path, skip_host=True, skip_accept_encoding=True)
        if host is not None:
            conn.putheader("Host", host.format(port=port))
        conn.putheader("X-SinkVis-Secret", secret)
        conn.putheader("Content-Length", str(len(body or "")))
        conn.endheaders((body or "").encode())
        resp = conn.getresponse()
        data = resp.read()
        conn.close()
        if ok:
            assert resp.status == 200, (method, host, data[:200])
        else:
            assert resp.status == 403 and json.loads(data)["error"]["code"] == "forbidden", (method, host)


# --- item 7: echoes ---------------------------------------------------------------------------

def test_unknown_method_names_are_redacted_and_capped(server):
    _, port, secret, _ = server
    remember_secret("session-secret-4242-abcd")  # a token set for the session: any shape
    for name, leak in ((TOKEN, TOKEN), ("x" + TOKEN, TOKEN), ("session-secret-4242-abcd", "session-secret-4242-abcd")):
        status, data = post(port, name, "{}", secret)
        assert status == 404 and json.loads(data)["error"]["code"] == "unknown_method"
        assert leak not in data.decode(), data
    status, data = post(port, "n" * 5000, "{}", secret)
    message = json.loads(data)["error"]["message"]
    assert status == 404 and len(message) < 120 and "n" * 41 not in message
