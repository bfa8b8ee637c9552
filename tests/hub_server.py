"""A small Hugging Face Hub look-alike on 127.0.0.1, for tests that run the real client.

It answers what huggingface_hub's HfApi.list_models / model_info, snapshot_download
and hf_hub_download ask for:

  GET  /api/models                              search (search, filter, pipeline_tag, author, sort, limit)
  GET  /api/models/{repo}[/revision/{rev}]      model info (siblings with sizes when ?blobs=1, gated,
                                                safetensors parameter total, cardData, config, tags…)
  GET  /api/models/{repo}/tree/{rev}[/path]     file listing (snapshot_download)
  HEAD/GET /{repo}/resolve/{rev}/{file}         file bytes, with X-Repo-Commit, ETag, Content-Length and
                                                Range support (206) so an interrupted download can resume

Errors carry the X-Error-Code header the client maps to its exceptions: RepoNotFound (404),
RevisionNotFound, EntryNotFound, GatedRepo (401 without a token, 403 with a wrong one).
No Xet headers are ever sent, so the client downloads over plain HTTP.

Knobs for tests: `throttle_s` (a pause per 64 KiB sent, for a download slow enough to
cancel), `drop_after` ({filename: n}: the next GET of that file closes the connection
after n bytes, once), and `requests` (what was asked, to check Range and auth).
"""
import hashlib
import json
import struct
import threading
import time
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from urllib.parse import parse_qs, unquote, urlsplit

SEND_CHUNK = 64 * 1024


@dataclass
class Repo:
    repo_id: str
    folder: Path | None = None        # None: a search-only entry (info works, no files)
    pipeline_tag: str | None = "text-generation"
    tags: list = field(default_factory=list)
    downloads: int = 0
    likes: int = 0
    gated: bool = False
    author: str | None = None
    card: str = ""                    # README.md text (served even for gated repos, as the Hub does)

    @property
    def sha(self) -> str:
        return hashlib.sha1(self.repo_id.encode()).hexdigest()

    def files(self) -> dict[str, bytes]:
        out = {}
        if self.folder is not None:
            for p in sorted(Path(self.folder).rglob("*")):
                if p.is_file():
                    out[p.relative_to(self.folder).as_posix()] = p.read_bytes()
        if self.card and "README.md" not in out:
            out["README.md"] = self.card.encode()
        return out


def safetensors_parameters(data: bytes) -> dict[str, int]:
    """{dtype: parameter count} from a safetensors header, as the Hub reports it."""
    (n,) = struct.unpack("<Q", data[:8])
    header = json.loads(data[8:8 + n])
    counts: dict[str, int] = {}
    for name, meta in header.items():
        if name != "__metadata__":
            size = 1
            for dim in meta["shape"]:
                size *= dim
            counts[meta["dtype"]] = counts.get(meta["dtype"], 0) + size
    return counts


class HubServer:
    def __init__(self, repos: list[Repo], token: str | None = None):
        self.repos = {r.repo_id: r for r in repos}
        self.token = token                  # the one token that opens gated repos
        self.throttle_s = 0.0
        self.drop_after: dict[str, int] = {}
        self.requests: list[dict] = []
        self._files = {r.repo_id: r.files() for r in repos}
        self._server = ThreadingHTTPServer(("127.0.0.1", 0), _make_handler(self))
        self._server.daemon_threads = True
        self._thread = threading.Thread(target=self._server.serve_forever, name="hub-server", daemon=True)

    @property
    def url(self) -> str:
        host, port = self._server.server_address[:2]
        return f"http://{host}:{port}"

    def start(self) -> "HubServer":
        self._thread.start()
        return self

    def stop(self) -> None:
        self._server.shutdown()
        self._server.server_close()

    def __enter__(self):
        return self.start()

    def __exit__(self, *exc):
        self.stop()

    # -- what the routes answer -------------------------------------------------------------

    def find_repo(self, rest: str) -> tuple[Repo | None, str]:
        """(repo, what follows its id) for a path tail like 'owner/name/tree/main'."""
        for repo_id in sorted(self.repos, key=len, reverse=True):
            if rest == repo_id or rest.startswith(repo_id + "/"):
                return self.repos[repo_id], rest[len(repo_id):].lstrip("/")
        return None, rest

    def summary(self, repo: Repo) -> dict:
        return {"_id": repo.sha[:24], "id": repo.repo_id, "modelId": repo.repo_id,
                "author": repo.author or repo.repo_id.split("/")[0], "downloads": repo.downloads,
                "likes": repo.likes, "tags": list(repo.tags), "pipeline_tag": repo.pipeline_tag,
                "gated": "manual" if repo.gated else False, "private": False, "library_name": "transformers",
                "createdAt": "2024-01-01T00:00:00.000Z"}

    def info(self, repo: Repo, blobs: bool) -> dict:
        files = self._files[repo.repo_id]
        out = {**self.summary(repo), "sha": repo.sha, "lastModified": "2024-01-02T00:00:00.000Z",
               "disabled": False, "cardData": {"license": "mit", "language": ["en"], "tags": list(repo.tags)},
               "siblings": [{"rfilename": name, **({"size": len(data)} if blobs else {})}
                            for name, data in files.items()]}
        counts: dict[str, int] = {}
        for name, data in files.items():
            if name.endswith(".safetensors"):
                for dtype, n in safetensors_parameters(data).items():
                    counts[dtype] = counts.get(dtype, 0) + n
        if counts:
            out["safetensors"] = {"parameters": counts, "total": sum(counts.values())}
        if "config.json" in files:
            config = json.loads(files["config.json"])
            out["config"] = {k: config[k] for k in ("architectures", "model_type") if k in config}
        return out

    def search(self, query: dict) -> list[dict]:
        def first(name):
            return (query.get(name) or [None])[0]

        found = list(self.repos.values())
        if first("search"):
            found = [r for r in found if first("search").lower() in r.repo_id.lower()]
        if first("pipeline_tag"):
            found = [r for r in found if r.pipeline_tag == first("pipeline_tag")]
        for tag in query.get("filter", []):
            found = [r for r in found if tag == r.pipeline_tag or tag in r.tags]
        if first("author"):
            found = [r for r in found if r.repo_id.split("/")[0] == first("author")]
        key = first("sort")
        if key in ("downloads", "likes"):
            found.sort(key=lambda r: getattr(r, key), reverse=first("direction") != "1")
        limit = int(first("limit") or 1000)
        return [self.summary(r) for r in found[:limit]]


def _make_handler(hub: HubServer):
    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"  # keep-alive, as the client's connection pool expects

        def log_message(self, *args):  # quiet: tests read hub.requests instead
            pass

        # -- plumbing ----------------------------------------------------------------------

        def _send(self, status: int, body: bytes = b"", headers: dict | None = None, content_type="application/json"):
            self.send_response(status)
            self.send_header("Content-Type", content_type)
            self.send_header("Content-Length", str(len(body)))
            for k, v in (headers or {}).items():
                self.send_header(k, v)
            self.end_headers()
            if self.command != "HEAD":
                self.wfile.write(body)

        def _json(self, data, status=200, headers=None):
            self._send(status, json.dumps(data).encode(), headers)

        def _error(self, status: int, code: str | None, message: str, headers: dict | None = None):
            extra = {"X-Error-Message": message, **(headers or {})}
            if code:
                extra["X-Error-Code"] = code
            self._json({"error": message}, status, extra)

        def _authorized(self, repo: Repo, commit: str | None = None) -> bool:
            if not repo.gated:
                return True
            auth = self.headers.get("Authorization", "")
            extra = {"X-Repo-Commit": commit} if commit else {}
            if not auth:
                self._error(401, "GatedRepo", f"Access to model {repo.repo_id} is restricted. You must have "
                            "access to it and be authenticated to access it. Please log in.", extra)
                return False
            if auth != f"Bearer {hub.token}":
                self._error(403, "GatedRepo", f"Access to model {repo.repo_id} is restricted and you are not "
                            "in the authorized list.", extra)
                return False
            return True

        def _revision_ok(self, repo: Repo, rev: str) -> bool:
            if unquote(rev) in ("main", repo.sha):
                return True
            self._error(404, "RevisionNotFound", f"Invalid rev id: {rev}")
            return False

        # -- routes ------------------------------------------------------------------------

        def do_HEAD(self):
            self._route()

        def do_GET(self):
            self._route()

        def _route(self):
            parts = urlsplit(self.path)
            path, query = unquote(parts.path), parse_qs(parts.query)
            hub.requests.append({"method": self.command, "path": path, "range": self.headers.get("Range"),
                                 "auth": bool(self.headers.get("Authorization")),
                                 "authorization": self.headers.get("Authorization")})
            if path == "/api/models":
                return self._json(hub.search(query))
            if path.startswith("/api/models/"):
                return self._api_model(path[len("/api/models/"):], query)
            if "/resolve/" in path:
                return self._resolve(path.lstrip("/"))
            self._error(404, None, "Not found")

        def _api_model(self, rest: str, query: dict):
            repo, tail = hub.find_repo(rest)
            if repo is None:
                return self._error(404, "RepoNotFound", "Repository not found")
            blobs = (query.get("blobs") or ["false"])[0].lower() in ("1", "true")
            if tail == "":
                return self._json(hub.info(repo, blobs))
            kind, _, rev_and_path = tail.partition("/")
            rev, _, sub = rev_and_path.partition("/")
            if not self._revision_ok(repo, rev):
                return None
            if kind == "revision":
                return self._json(hub.info(repo, blobs))
            if kind == "tree":
                if not self._authorized(repo):
                    return None
                files = hub._files[repo.repo_id]
                listing = [{"type": "file", "oid": hashlib.sha1(data).hexdigest(), "size": len(data), "path": name}
                           for name, data in files.items() if not sub or name.startswith(sub.rstrip("/") + "/")]
                return self._json(listing)
            return self._error(404, None, "Not found")

        def _resolve(self, rest: str):
            repo_part, _, file_part = rest.partition("/resolve/")
            repo = hub.repos.get(repo_part)
            if repo is None:
                return self._error(404, "RepoNotFound", "Repository not found")
            rev, _, filename = file_part.partition("/")
            if not self._revision_ok(repo, rev):
                return None
            if filename != "README.md" and not self._authorized(repo, repo.sha):
                return None
            data = hub._files[repo.repo_id].get(filename)
            if data is None:
                return self._error(404, "EntryNotFound", f"{filename} does not exist", {"X-Repo-Commit": repo.sha})
            headers = {"X-Repo-Commit": repo.sha, "ETag": f'"{hashlib.sha256(data).hexdigest()}"',
                       "Accept-Ranges": "bytes"}
            start = 0
            ranged = self.headers.get("Range", "")
            if ranged.startswith("bytes="):
                start = int(ranged[len("bytes="):].split("-")[0] or 0)
                headers["Content-Range"] = f"bytes {start}-{len(data) - 1}/{len(data)}"
            body = data[start:]
            self.send_response(206 if start else 200)
            self.send_header("Content-Type", "application/octet-stream")
            self.send_header("Content-Length", str(len(body)))
            for k, v in headers.items():
                self.send_header(k, v)
            self.end_headers()
            if self.command == "HEAD":
                return None
            self._stream(filename, body)
            return None

        def _stream(self, filename: str, body: bytes):
            cut = hub.drop_after.pop(filename, None)  # one-shot: the retry gets the rest
            sent = 0
            while sent < len(body):
                chunk = body[sent:sent + SEND_CHUNK]
                if cut is not None and sent + len(chunk) >= cut:
                    self.wfile.write(body[sent:cut])
                    self.wfile.flush()
                    self.close_connection = True  # the client sees a truncated body and resumes with Range
                    return
                self.wfile.write(chunk)
                sent += len(chunk)
                if hub.throttle_s:
                    time.sleep(hub.throttle_s)

    return Handler


# -- tiny models to serve -----------------------------------------------------------------------

_TEXT = ("The quick brown fox jumps over the lazy dog. Attention sinks soak up attention mass. "
         "A key-value cache keeps past keys and values so each new token needs one step. ") * 20


def _tokenizer_files(folder: Path) -> None:
    """A byte-level BPE tokenizer with a BOS token, built with the `tokenizers` library."""
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers

    tok = Tokenizer(models.BPE())
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(vocab_size=400, special_tokens=["<|endoftext|>"],
                                  initial_alphabet=pre_tokenizers.ByteLevel.alphabet())
    tok.train_from_iterator([_TEXT], trainer)
    tok.save(str(folder / "tokenizer.json"))
    (folder / "tokenizer_config.json").write_text(json.dumps({
        "tokenizer_class": "PreTrainedTokenizerFast", "bos_token": "<|endoftext|>", "eos_token": "<|endoftext|>",
        "unk_token": "<|endoftext|>", "model_max_length": 128}))


def make_tiny_gpt2(folder: Path, vocab_size: int = 12_000, n_embd: int = 64, n_layer: int = 2,
                   n_head: int = 2, n_positions: int = 128, seed: int = 0) -> Path:
    """A loadable GPT-2 (random weights) of a few MB — big enough for several 1 MiB progress steps.

    Written with numpy + safetensors so making it does not import torch.
    """
    import numpy as np
    from safetensors.numpy import save_file

    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(seed)

    def w(*shape):
        return (rng.standard_normal(shape) * 0.02).astype(np.float32)

    tensors = {"transformer.wte.weight": w(vocab_size, n_embd), "transformer.wpe.weight": w(n_positions, n_embd),
               "transformer.ln_f.weight": np.ones(n_embd, np.float32), "transformer.ln_f.bias": np.zeros(n_embd, np.float32)}
    for i in range(n_layer):
        p = f"transformer.h.{i}."
        tensors.update({
            p + "ln_1.weight": np.ones(n_embd, np.float32), p + "ln_1.bias": np.zeros(n_embd, np.float32),
            p + "attn.c_attn.weight": w(n_embd, 3 * n_embd), p + "attn.c_attn.bias": np.zeros(3 * n_embd, np.float32),
            p + "attn.c_proj.weight": w(n_embd, n_embd), p + "attn.c_proj.bias": np.zeros(n_embd, np.float32),
            p + "ln_2.weight": np.ones(n_embd, np.float32), p + "ln_2.bias": np.zeros(n_embd, np.float32),
            p + "mlp.c_fc.weight": w(n_embd, 4 * n_embd), p + "mlp.c_fc.bias": np.zeros(4 * n_embd, np.float32),
            p + "mlp.c_proj.weight": w(4 * n_embd, n_embd), p + "mlp.c_proj.bias": np.zeros(n_embd, np.float32),
        })
    save_file(tensors, str(folder / "model.safetensors"), metadata={"format": "pt"})
    (folder / "config.json").write_text(json.dumps({
        "architectures": ["GPT2LMHeadModel"], "model_type": "gpt2", "vocab_size": vocab_size, "n_embd": n_embd,
        "n_layer": n_layer, "n_head": n_head, "n_positions": n_positions, "n_ctx": n_positions,
        "bos_token_id": 0, "eos_token_id": 0, "tie_word_embeddings": True}, indent=2))
    (folder / "generation_config.json").write_text(json.dumps({"bos_token_id": 0, "eos_token_id": 0}))
    _tokenizer_files(folder)
    # Files SinkVis must skip: another runtime's copy of the weights, and a stale .bin twin.
    (folder / "flax_model.msgpack").write_bytes(b"\0" * 1024)
    (folder / "pytorch_model.bin").write_bytes(b"\0" * 2048)
    return folder


def make_tiny_bert(folder: Path) -> Path:
    """A non-causal model (BERT config and a small weights file): SinkVis must refuse it."""
    import numpy as np
    from safetensors.numpy import save_file

    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    save_file({"bert.embeddings.word_embeddings.weight": np.zeros((100, 16), np.float32)},
              str(folder / "model.safetensors"))
    (folder / "config.json").write_text(json.dumps({"architectures": ["BertForMaskedLM"], "model_type": "bert",
                                                    "vocab_size": 100, "hidden_size": 16}))
    return folder


XSS_SCRIPT = "<script>alert(1)</script>"
XSS_IMG = "<img src=x onerror=alert(1)>"


def default_repos(root: Path, demo_folder: Path | None = None) -> list[Repo]:
    """The standard test Hub: the demo model, a tiny GPT-2, a gated copy, a BERT and hostile names."""
    tiny = make_tiny_gpt2(Path(root) / "tiny-gpt2")
    bert = make_tiny_bert(Path(root) / "tiny-bert")
    card = ("---\nlicense: mit\n---\n# Tiny GPT-2\n\nA **tiny** random [GPT-2](https://example.com) for tests.\n"
            "<img src=x onerror=alert(1)>\n")
    demo = demo_folder if demo_folder is not None and (Path(demo_folder) / "config.json").is_file() else tiny
    return [
        Repo("sinkvis/demo-tiny", demo, tags=["gpt2", "text-generation", "sinkvis"], downloads=500, likes=5, card=card),
        Repo("sinkvis/tiny-gpt2", tiny, tags=["gpt2", "text-generation"], downloads=1000, likes=10, card=card),
        Repo("sinkvis/gated-tiny", tiny, tags=["gpt2", "text-generation"], downloads=300, likes=3, gated=True,
             card=card),
        Repo("sinkvis/bert-tiny", bert, pipeline_tag="fill-mask", tags=["bert", "fill-mask"], downloads=800),
        Repo(f"xss/{XSS_IMG}", None, tags=["text-generation", XSS_SCRIPT], downloads=50, author=XSS_IMG),
        Repo("xss/script-in-tags", None, tags=["text-generation", XSS_SCRIPT, XSS_IMG], downloads=40),
    ]
