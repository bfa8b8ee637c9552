"""The entry of a worker process (backend/workers.py): `python -m backend.worker_child FD`.

A module of its own so that the child never imports the caller's main module (as
multiprocessing's spawn does) and so that backend.workers is imported under its own name.
"""
import sys

from backend.workers import child_main

if __name__ == "__main__":
    child_main(int(sys.argv[1]))
