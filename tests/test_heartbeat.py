"""The heartbeat speaks while a long call runs and stops with its block. (It is a child process, so
it also speaks while Slang's front end holds the interpreter lock, which a thread could not.)"""

import time

from neumat.renderer.core.heartbeat import heartbeat


def _hold_the_lock(seconds: float) -> None:
    """A busy main thread for `seconds`."""
    end = time.perf_counter() + seconds
    while time.perf_counter() < end:
        sum(range(1000))


def test_heartbeat_ticks_during_a_long_call_and_stops_after(capfd):
    with heartbeat("still working", every=0.25):
        _hold_the_lock(1.6)
    lines = [line for line in capfd.readouterr().err.splitlines() if line.startswith("still working (")]
    assert 3 <= len(lines) <= 7, lines
    time.sleep(0.6)
    assert "still working" not in capfd.readouterr().err  # the ticker is gone
