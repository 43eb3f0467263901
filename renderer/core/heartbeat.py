"""A line every few seconds while one long call runs. A cold path-tracer compile on lavapipe is a
single call of minutes that cannot report progress itself, and a silent minute reads as a hang.
Slang's front end holds Python's interpreter lock for most of a compile (a thread's heartbeat fell
silent for the first 60 s of a 62 s compile), so the heartbeat is a small child process writing to
stderr; it stops with the block, or by itself when its parent is gone."""

import subprocess
import sys
from collections.abc import Iterator
from contextlib import contextmanager

HEARTBEAT_SECONDS = 20.0

_TICKER = """
import os, sys, time
what, every, parent = sys.argv[1], float(sys.argv[2]), os.getppid()
start = time.monotonic()
while True:
    time.sleep(every)
    if os.getppid() != parent:
        break
    print(f"{what} ({time.monotonic() - start:.0f} s)", file=sys.stderr, flush=True)
"""


@contextmanager
def heartbeat(what: str, every: float = HEARTBEAT_SECONDS) -> Iterator[None]:
    """Writes `what (N s)` to stderr every `every` seconds while the block runs."""
    sys.stderr.flush()
    ticker = subprocess.Popen([sys.executable, "-c", _TICKER, what, str(every)], stdin=subprocess.DEVNULL,
                              stdout=subprocess.DEVNULL, stderr=sys.__stderr__)
    try:
        yield
    finally:
        ticker.kill()
        ticker.wait()
