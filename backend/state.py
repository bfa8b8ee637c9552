"""What the app holds between calls: the loaded model, the jobs, the session token."""
import threading
from dataclasses import dataclass, field

from .jobs import JobRunner


@dataclass
class AppState:
    jobs: JobRunner = field(default_factory=JobRunner)
    model: object | None = None          # backend.models.loaded.LoadedModel once a load succeeded
    session_token: str | None = None     # pasted in the UI for this session only; never sent back
    stream: object | None = None         # backend.attention.stream session, owned by the stream methods
    attention: object | None = None      # the last Quick Attention view (backend.attention.view_rows.ViewRows), for zooms
    stream_note: str | None = None       # why the last stream ended without the user asking (a model swap)
    model_lock: threading.RLock = field(default_factory=threading.RLock)  # guards swapping `model`
    policies: object | None = None       # backend.eviction.custom_policies.PolicyRegistry, read on first use
