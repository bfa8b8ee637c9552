"""Forward hooks on the shared model that fire only for the forward of the thread that set them.

The loaded model is shared by every job. While a prefill's scoring hooks (compress/prefill.py) or
the Cache Profile's Quest pass (profile/quest_fetch.py) are on, another job's forward (Live Stream,
Evaluate, Retrieval) may run through the same modules with its own arguments: no cache, one
token. Its layers would then be scored, or reported as this job's progress, or fail on a missing
cache. PyTorch runs a module's hooks in the thread that runs the forward, so a hook set by one
thread skips every other thread's forward.
"""
import threading


def add_own_forward_hooks(modules, hook) -> list:
    """register_forward_hook(hook, with_kwargs=True) on each module, for this thread's forwards only.
    Returns the handles (remove them when done)."""
    owner = threading.get_ident()

    def own(module, args, kwargs, output):
        if threading.get_ident() == owner:
            return hook(module, args, kwargs, output)
        return None

    return [m.register_forward_hook(own, with_kwargs=True) for m in modules]
