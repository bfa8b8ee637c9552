"""The one Api object every front uses: the pywebview window (js_api), --serve, the CLI, tests.

Each domain's public methods live in their own mixin file; a public method is one
the UI may call (pywebview exposes exactly these), it validates its input, calls
a service and returns the ok/error envelope (backend.envelope.public).
Internal state lives under `_state` (underscore: pywebview does not expose it).
"""
from ..state import AppState
from .app import AppMethods
from .attention import AttentionMethods
from .evaluate import EvaluateMethods
from .eviction import EvictionMethods
from .hub import HubMethods
from .models import ModelMethods
from .policies import PolicyMethods
from .profile import ProfileMethods
from .retrieval import RetrievalMethods
from .stream import StreamMethods
from .sweep import SweepMethods


class Api(AppMethods, HubMethods, ModelMethods, AttentionMethods, StreamMethods, EvictionMethods, ProfileMethods,
          EvaluateMethods, RetrievalMethods, SweepMethods, PolicyMethods):
    def __init__(self, state: AppState | None = None):
        self._state = state or AppState()
        # Look the token up once now, so the redactor knows it before anything could echo it.
        from ..hub.token import resolve_token

        resolve_token(self._state)
