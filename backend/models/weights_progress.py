"""Progress and Cancel *inside* transformers' weight loading, tensor by tensor.

`from_pretrained` is one long call: without a way in, Cancel could only act after it
returned (issue #13: a load that never ends could never be cancelled, and every later
load answered `busy`). transformers reports its per-tensor loop through its own tqdm
(`transformers.utils.logging.set_tqdm_hook` lets us wrap every bar it makes), and the
GGUF dequantizer through tqdm.auto. Each step of either loop calls the job's report(),
which raises Cancelled once the user pressed Cancel: the exception leaves transformers'
loop (its `finally` closes its files and pool), the half-built model is dropped with
the frames that held it, and the job ends "cancelled" within one tensor's time.

The hook is installed once for the process but acts only on the thread that entered
`reporting(...)`; every other bar (and every other thread) is left exactly as it was.
"""
import threading
from contextlib import contextmanager

_local = threading.local()
_installed = False
_install_lock = threading.Lock()


class _ReportingBar:
    """A tqdm bar (real or transformers' empty one) whose every step calls report()."""

    def __init__(self, bar, total, fraction_range, stage, report):
        self._bar, self._total = bar, total
        self._range, self._stage, self._report = fraction_range, stage, report
        self._done = 0

    def _step(self, n=1):
        self._done += n
        lo, hi = self._range
        fraction = lo + (hi - lo) * min(1.0, self._done / self._total) if self._total else None
        self._report(fraction, self._stage, tensors_done=self._done, tensors_total=self._total)

    def __iter__(self):
        self._report(None, None)  # cancelled before the first tensor: stop here
        for item in self._bar:  # the bar (tqdm or transformers' empty one) yields the iterable's items
            yield item
            self._step()

    def update(self, n=1):
        self._step(n)
        return self._bar.update(n)

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        close = getattr(self._bar, "close", None)
        if close:
            close()
        return False

    def __getattr__(self, name):  # set_description, close, refresh… go to the real bar
        return getattr(self._bar, name)


def _wrap(bar, args, kwargs):
    state = getattr(_local, "state", None)
    if state is None:
        return bar
    iterable = args[0] if args else kwargs.get("iterable")
    total = kwargs.get("total")
    if total is None and iterable is not None and hasattr(iterable, "__len__"):
        total = len(iterable)
    report, fraction_range, stage = state
    return _ReportingBar(bar, total, fraction_range, stage, report)


def _transformers_hook(previous):
    def hook(factory, args, kwargs):
        bar = previous(factory, args, kwargs) if previous is not None else factory(*args, **kwargs)
        return _wrap(bar, args, kwargs)

    return hook


def _install() -> None:
    """Once per process: wrap transformers' bars, and the GGUF dequantizer's tqdm.auto bar."""
    global _installed
    with _install_lock:
        if _installed:
            return
        from transformers.utils import logging as hf_logging

        previous = getattr(hf_logging, "_tqdm_hook", None)
        hf_logging.set_tqdm_hook(_transformers_hook(previous))
        try:
            from transformers import modeling_gguf_pytorch_utils as gguf_utils
        except ImportError:  # a transformers without GGUF support: nothing to wrap
            gguf_utils = None
        if gguf_utils is not None and callable(getattr(gguf_utils, "tqdm", None)):
            plain = gguf_utils.tqdm

            def gguf_tqdm(*args, **kwargs):
                return _wrap(plain(*args, **kwargs), args, kwargs)

            gguf_utils.tqdm = gguf_tqdm
        _installed = True


@contextmanager
def reporting(report, fraction_range=(0.7, 0.97), stage=None):
    """Within this block, every transformers progress bar on this thread calls report() per step
    (stage None keeps the caller's stage text; the fraction moves across fraction_range)."""
    _install()
    _local.state = (report, fraction_range, stage)
    try:
        yield
    finally:
        _local.state = None
