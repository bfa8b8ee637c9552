"""User code: the rule and score files users write (README "Write your own policy", "Write your
own prefill method"). Their code runs only in worker processes that Cancel, a stuck step or a
file that never finishes loading can kill (backend/workers.py); the app's own process only
reads back what those processes send (names, labels, declarations, lines, results).

    errors.py   PolicyFileError: a mistake named by file and line
    loading.py  read a file; run its module-level code in a worker and describe it
    watch.py    the step watchdog inside a worker (rule_timeout, score_timeout)
    pool.py     the warm worker processes, one per loaded file

Eviction, Evaluate, Retrieval, Sweeps and the prefill methods call this package; it calls
none of them (what to do with a loaded module is a function they pass in, by reference).
"""
