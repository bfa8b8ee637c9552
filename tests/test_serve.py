"""Browser mode guard: the API needs the per-run secret and this server's own Origin;
static files never leave ui/; a taken port names a free one. Real sockets, no mocks."""
import http.client
import json
import socket
import threading

import pytest

from backend.serve import MAX_BODY, PortInUse, make_server, public_methods, serve


class FakeApi:
    """Only the server is under test here; a tiny stand-in keeps torch out of it."""

    def ping(self, params=None):
        return {"ok": True, "pong": True, "params": params}

    def _private(self, params=None):  # never reachable
        return {"ok": True, "leak": True}

    not_callable = 42


@pytest.fixture()
def server():
    srv, url = make_server(FakeApi(), "127.0.0.1", 0)
    thread = threading.Thread(target=srv.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
    thread.start()
    secret = url.split("secret=", 1)[1]
    yield srv, srv.server_address[1], secret
    srv.shutdown()
    srv.server_close()


def request(port, method, path, body=None, headers=None):
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
    conn.request(method, path, body=body, headers=headers or {})
    resp = conn.getresponse()
    data = resp.read()
    conn.close()
    return resp.status, data, resp


def post(port, name, params, secret=None, origin=None, extra=None):
    headers = {"Content-Type": "application/json"}
    if secret is not None:
        headers["X-SinkVis-Secret"] = secret
    if origin is not None:
        headers["Origin"] = origin
    headers.update(extra or {})
    status, data, _ = request(port, "POST", f"/api/{name}", json.dumps(params), headers)
    return status, json.loads(data)


def test_url_carries_a_random_secret():
    a, url_a = make_server(FakeApi(), "127.0.0.1", 0)
    b, url_b = make_server(FakeApi(), "127.0.0.1", 0)
    a.server_close(), b.server_close()
    assert url_a.startswith("http://127.0.0.1:") and "?secret=" in url_a
    assert url_a.split("secret=")[1] != url_b.split("secret=")[1]
    assert len(url_a.split("secret=")[1]) >= 24


def test_call_with_secret_and_own_origin(server):
    _, port, secret = server
    status, body = post(port, "ping", {"x": 1}, secret, origin=f"http://127.0.0.1:{port}")
    assert status == 200 and body["ok"] and body["params"] == {"x": 1}
    status, body = post(port, "ping", {}, secret, origin=f"http://localhost:{port}")
    assert status == 200 and body["ok"]
    status, body = post(port, "ping", {}, secret)  # no Origin header (curl, the CLI): fine
    assert status == 200


@pytest.mark.parametrize("secret", [None, "", "wrong", "x" * 32])
def test_missing_or_wrong_secret_is_403(server, secret):
    _, port, _ = server
    status, body = post(port, "ping", {}, secret)
    assert status == 403 and body["ok"] is False and body["error"]["code"] == "forbidden"


@pytest.mark.parametrize("origin", ["http://evil.example", "http://127.0.0.1:1", "null", "https://127.0.0.1:{port}"])
def test_foreign_origin_is_403_even_with_the_secret(server, origin):
    _, port, secret = server
    status, body = post(port, "ping", {}, secret, origin=origin.format(port=port))
    assert status == 403 and body["error"]["code"] == "forbidden"


@pytest.mark.parametrize("name", ["_private", "not_callable", "__init__", "nope", "ping/../_private"])
def test_only_public_methods(server, name):
    _, port, secret = server
    status, body = post(port, name, {}, secret)
    assert status == 404 and body["ok"] is False
    assert "leak" not in json.dumps(body)


def test_whitelist_comes_from_the_class():
    assert public_methods(FakeApi) == {"ping"}


def test_bad_json_and_oversized_body(server):
    _, port, secret = server
    status, data, _ = request(port, "POST", "/api/ping", b"{not json", {"X-SinkVis-Secret": secret})
    assert status == 400 and json.loads(data)["error"]["code"] == "bad_json"
    status, data, _ = request(port, "POST", "/api/ping", None,
                              {"X-SinkVis-Secret": secret, "Content-Length": str(MAX_BODY + 1)})
    assert status == 413 and json.loads(data)["ok"] is False


def test_static_index_and_headers(server):
    _, port, _ = server
    status, data, resp = request(port, "GET", "/")
    assert status == 200 and b"<title>SinkVis</title>" in data
    assert "default-src 'self'" in resp.getheader("Content-Security-Policy")
    assert resp.getheader("X-Content-Type-Options") == "nosniff"
    status, _, resp = request(port, "GET", "/js/bridge.js")
    assert status == 200 and "javascript" in resp.getheader("Content-Type")


@pytest.mark.parametrize("path", [
    "/../backend/serve.py", "/..%2fbackend%2fserve.py", "/%2e%2e/backend/serve.py", "/%2E%2E/%2E%2E/etc/passwd",
    "/js/..%2f..%2fbackend/serve.py", "/js%2f..%2f..%2fmain.py", "/%252e%252e/backend/serve.py",
    "/..\\backend\\serve.py", "/%5c..%5cbackend/serve.py", "//etc/passwd", "/etc/passwd", "/C:/Windows/win.ini",
    "/js/%00bridge.js", "/./../main.py",
])
def test_static_paths_cannot_escape_ui(server, path):
    _, port, _ = server
    status, data, _ = request(port, "GET", path)
    assert status in (403, 404)
    assert b"def serve" not in data and b"root:" not in data


def test_secret_is_not_logged(server, capsys):
    _, port, secret = server
    request(port, "GET", f"/?secret={secret}")
    post(port, "ping", {}, secret)
    captured = capsys.readouterr()
    assert secret not in captured.out + captured.err


def test_port_in_use_names_a_free_port(capsys):
    taken = socket.socket()
    taken.bind(("127.0.0.1", 0))
    taken.listen(1)
    port = taken.getsockname()[1]
    try:
        with pytest.raises(PortInUse) as info:
            make_server(FakeApi(), "127.0.0.1", port)
        free = info.value.free_port
        assert free != port and f"--port {free}" in str(info.value)
        probe = socket.socket()
        probe.bind(("127.0.0.1", free))  # it really is free
        probe.close()

        with pytest.raises(SystemExit) as exit_info:
            serve(FakeApi(), "127.0.0.1", port)
        assert exit_info.value.code == 2
        err = capsys.readouterr().err
        assert f"Port {port}" in err and "already in use" in err and "--port" in err
    finally:
        taken.close()


def test_non_loopback_host_warns(capsys, monkeypatch):
    """--host 0.0.0.0 prints a warning before binding (we stop it at the port check)."""
    taken = socket.socket()
    taken.bind(("0.0.0.0", 0))
    taken.listen(1)
    try:
        with pytest.raises(SystemExit):
            serve(FakeApi(), "0.0.0.0", taken.getsockname()[1])
    finally:
        taken.close()
    assert "WARNING" in capsys.readouterr().err


def test_keep_alive_survives_a_refused_call(server):
    """A 404/403 answered before reading the body must not leave the body to be read as the next request."""
    _, port, secret = server
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
    for name in ("nope", "ping"):
        try:
            conn.request("POST", f"/api/{name}", body=json.dumps({"a": 1}), headers={"X-SinkVis-Secret": secret})
            resp = conn.getresponse()
        except (http.client.RemoteDisconnected, ConnectionError):
            conn.close()
            conn = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
            conn.request("POST", f"/api/{name}", body=json.dumps({"a": 1}), headers={"X-SinkVis-Secret": secret})
            resp = conn.getresponse()
        body = json.loads(resp.read())
        assert resp.status == (404 if name == "nope" else 200), body
    conn.close()
