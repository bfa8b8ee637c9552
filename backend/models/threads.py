"""How many CPU threads torch gets: one for small models, the default for the rest.

A forward of a model this small takes milliseconds; splitting it over OpenMP threads
costs more than it saves, and on a busy machine spinning threads make it far worse
(demo model, 13-token forward on a loaded 2-core machine: 0.59 s with 2 threads,
0.04 s with 1; a stream step 5.4 ms with 1 thread).
"""
SMALL_MODEL_PARAMETERS = 30_000_000
_default_threads = None


def set_threads_for(parameters: int) -> int:
    import torch

    global _default_threads
    if _default_threads is None:
        _default_threads = torch.get_num_threads()
    threads = 1 if parameters < SMALL_MODEL_PARAMETERS else _default_threads
    torch.set_num_threads(threads)
    return threads
