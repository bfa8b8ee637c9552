"""Download a causal LM from the Hub into the HF cache, with progress, Cancel and resume.

Steps: config.json first (cheap: a wrong id, a gated repo or a non-causal model fails
before any weights move), then a dry run to learn what is left to fetch and its size,
then snapshot_download of exactly those files. Progress comes from the client's own
byte counters through a tqdm-shaped class; `report` raises Cancelled when the user
pressed Cancel, which unwinds the download threads at their next chunk.

Resume: files finished earlier stay in the cache and are not fetched again; a connection
that drops mid-file is resumed by the client with an HTTP Range request. (huggingface_hub
2.x discards a partial file when the download call itself is cancelled or fails.)
Offline: whatever is complete in the cache is used without touching the network.
"""
import threading
import time
from pathlib import Path

from huggingface_hub import constants, get_cached_repo_tree, hf_hub_download, snapshot_download
from huggingface_hub.errors import CachedRepoTreeNotFoundError

from ..errors import UserError
from .causal import describe_architecture, is_causal_config, read_config
from .endpoint import cache_dir, endpoint, hub_reachable
from .errors import hub_user_error
from .files import SKIPPED, WANTED, wanted_files

CHUNK_BYTES = 1 << 20  # the client's default is 10 MiB: too coarse for a live bar and a prompt Cancel
WORKERS = 4
SPEED_WINDOW_S = 2.0


class _Silent:
    """Stands in for tqdm where we want no output at all (the dry run)."""

    def __init__(self, *args, **kwargs):
        self.n = kwargs.get("initial") or 0
        self.total = kwargs.get("total")
        self.format_dict: dict = {}

    def update(self, n=1):
        self.n += n or 0

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        return False

    def close(self):
        pass

    def refresh(self, *args, **kwargs):
        pass

    def set_description(self, *args, **kwargs):
        pass

    set_description_str = set_postfix_str = set_postfix = set_description


class ByteProgress:
    """Turns the client's byte bars into report(fraction, "Downloading", bytes_done, bytes_total, speed_bps)."""

    def __init__(self, report, bytes_total: int):
        self.report = report
        self.total = max(int(bytes_total), 1)  # bytes still to fetch: files already cached do not count
        self.bars: list[_Silent] = []
        self.lock = threading.Lock()
        self.samples: list[tuple[float, int]] = [(time.monotonic(), 0)]

    def tqdm_class(self):
        progress = self

        class _Bar(_Silent):
            def __init__(self, *args, **kwargs):
                super().__init__(*args, **kwargs)
                if kwargs.get("unit") == "B":  # the byte bars, not the "files done" counter
                    with progress.lock:
                        progress.bars.append(self)

            def update(self, n=1):
                super().update(n)
                if self in progress.bars:
                    progress.tick()

        return _Bar

    def done_bytes(self) -> int:
        # The client keeps a "received" and a "written" byte bar; over HTTP both move together.
        return min(max((b.n for b in self.bars), default=0), self.total)

    def speed(self, now: float, done: int) -> float:
        self.samples.append((now, done))
        while len(self.samples) > 2 and now - self.samples[0][0] > SPEED_WINDOW_S:
            self.samples.pop(0)
        t0, d0 = self.samples[0]
        return (done - d0) / (now - t0) if now > t0 else 0.0

    def tick(self):
        with self.lock:
            done = self.done_bytes()
            if done == self.samples[-1][1]:
                return  # the second byte bar catching up: nothing new to say
            speed = self.speed(time.monotonic(), done)
        self.report(0.02 + 0.96 * done / self.total, "Downloading", bytes_done=done, bytes_total=self.total,
                    speed_bps=round(speed))


def _config(repo_id: str, token: str | None, online: bool) -> tuple[dict, Path]:
    """(config.json as a dict, the snapshot folder it is in)."""
    path = hf_hub_download(repo_id, "config.json", cache_dir=cache_dir(), endpoint=endpoint(), token=token or False,
                           local_files_only=not online)
    config = read_config(Path(path).parent)
    if config is None:
        raise UserError("bad_config", f"{repo_id} has a config.json that is not valid JSON.", "source")
    return config, Path(path).parent


def _plan(repo_id: str, token: str | None) -> tuple[list[str], int]:
    """(files to fetch, bytes still to download) from a dry run: no bytes move, cached files count as done."""
    listing = snapshot_download(repo_id, cache_dir=cache_dir(), endpoint=endpoint(), token=token or False,
                                allow_patterns=WANTED, ignore_patterns=SKIPPED, dry_run=True, tqdm_class=_Silent,
                                max_workers=WORKERS)
    sizes = {f.filename: (f.file_size or 0) if f.will_download else 0 for f in listing}
    files = wanted_files(sizes)
    return files, sum(sizes[f] for f in files)


def _cached_snapshot(repo_id: str) -> str:
    """The cached snapshot, if it holds every file we would have fetched (no network)."""
    try:
        files = wanted_files(f.path for f in get_cached_repo_tree(repo_id, cache_dir=cache_dir()))
    except CachedRepoTreeNotFoundError:  # cached by another tool (e.g. transformers): the folder is all we know
        files = WANTED
    return snapshot_download(repo_id, cache_dir=cache_dir(), allow_patterns=files, ignore_patterns=SKIPPED,
                             local_files_only=True)


def download_model(repo_id: str, token: str | None, report, check_config=None) -> str:
    """Fetch what a causal LM needs from `repo_id`; return the local snapshot folder.

    `report(fraction, stage, **extra)` is a Job's report: it raises Cancelled to stop us.
    `check_config(folder)`, given the folder holding config.json alone, may refuse the model
    (too big for the device, a config that makes no sense) before any weights move.
    Raises UserError with a message for the user on every expected failure.
    """
    repo_id = (repo_id or "").strip()
    report(0.0, "Downloading", bytes_done=0, bytes_total=None, speed_bps=0)
    online = hub_reachable()
    try:
        config, config_folder = _config(repo_id, token, online)
        if not is_causal_config(config):
            raise UserError("not_causal", f"{repo_id} is a {describe_architecture(config)} model, not a causal "
                            "language model; SinkVis needs a decoder-only model (e.g. GPT-2, Llama).", "source")
        if check_config is not None:
            check_config(config_folder)
        if not online:
            return _cached_snapshot(repo_id)
        files, to_fetch = _plan(repo_id, token)
        progress = ByteProgress(report, to_fetch)
        report(0.02, "Downloading", bytes_done=0, bytes_total=to_fetch, speed_bps=0)
        constants.DOWNLOAD_CHUNK_SIZE = min(constants.DOWNLOAD_CHUNK_SIZE, CHUNK_BYTES)  # read per call by the client
        folder = snapshot_download(repo_id, cache_dir=cache_dir(), endpoint=endpoint(), token=token or False,
                                   allow_patterns=files, tqdm_class=progress.tqdm_class(), max_workers=WORKERS)
    except Exception as exc:  # noqa: BLE001 - Hub failures become UserErrors; Cancelled and the rest pass as they are
        raise hub_user_error(exc, repo_id, token is not None) from None
    report(0.98, "Downloading", bytes_done=to_fetch, bytes_total=to_fetch, speed_bps=0)
    return folder
