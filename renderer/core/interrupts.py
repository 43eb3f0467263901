"""Ctrl-C that always ends a command: exit code 130 and one line, at any moment.

Python turns SIGINT into KeyboardInterrupt only between bytecodes of the main thread, and a library
may swallow it: an interrupt inside torch's import chain was caught there and the command ran to
the end. After an interrupt, interpreter teardown with C++ work in flight can also abort (exit
134). So the console command (neumat/cli.py `run`) calls `install()` first, which adds a watchdog:

- every SIGINT reaches it at once through signal.set_wakeup_fd (written by the C-level handler,
  whatever the main thread is doing);
- Python-level SIGINT handlers call `acknowledge(seconds)`: the command then has that long to end
  (GRACE_SECONDS; a bake finishing its step and writing a checkpoint asks for more);
- when the command has not ended in time (the interrupt was never handled, or was swallowed), the
  watchdog prints the one line and ends the process with 130 itself.

An interrupted command ends through `exit_now`, without interpreter teardown; a finished one
calls `finish` and tears down with Ctrl-C ignored. Without `install()` (tests that
call main() in-process) `acknowledge` and `received` only keep state.
"""

import os
import select
import signal
import sys
import threading
import time

GRACE_SECONDS = 3.0
MESSAGE = "neumat: interrupted"

_seen = 0  # SIGINTs the watchdog has read
_handled = 0  # SIGINTs a Python-level handler acknowledged
_deadline = 0.0  # time.monotonic() by which the command must have ended after the last acknowledge
_wake_fd: int | None = None  # the watchdog's wake-up pipe, once installed


def received() -> bool:
    """Whether Ctrl-C was pressed during this command: an exception after it is its doing."""
    return _seen > 0 or _handled > 0


def acknowledge(seconds: float = GRACE_SECONDS) -> None:
    """Called by a Python-level SIGINT handler: the command ends within `seconds` or is ended."""
    global _handled, _deadline
    _deadline = time.monotonic() + seconds
    _handled += 1
    if _wake_fd is not None:
        try:
            os.write(_wake_fd, b"\0")  # the watchdog recomputes its wait
        except OSError:
            pass


def _importing(frame) -> bool:
    while frame is not None:
        if frame.f_code.co_filename.startswith("<frozen importlib"):
            return True
        frame = frame.f_back
    return False


def _raise_interrupt(signum, frame) -> None:
    if _importing(frame):
        # KeyboardInterrupt inside an import leaves half-initialised modules, and one imported from
        # C++ aborts the process (exit 134): the watchdog ends the command now instead.
        acknowledge(0.0)
        return
    acknowledge()
    raise KeyboardInterrupt


def exit_now(code: int) -> None:
    """Ends the process with `code` after flushing output, skipping interpreter teardown (C++
    libraries' destructors with work in flight abort)."""
    for stream in (sys.stdout, sys.stderr):
        try:
            stream.flush()
        except Exception:  # a closed pipe: nothing more to say
            pass
    os._exit(code)


def _watch(fd: int) -> None:
    global _seen
    arrival = 0.0
    while True:
        waiting = _seen > _handled
        wake = arrival + GRACE_SECONDS if waiting else (_deadline if _seen else None)
        timeout = None if wake is None else max(0.0, wake - time.monotonic())
        if select.select([fd], [], [], timeout)[0]:
            data = os.read(fd, 512)
            count = data.count(bytes([signal.SIGINT]))
            if count:
                _seen += count
                arrival = time.monotonic()
            continue
        now = time.monotonic()
        if (waiting and now >= arrival + GRACE_SECONDS) or (not waiting and _seen and now >= _deadline):
            try:
                os.write(2, (MESSAGE + "\n").encode())
            finally:
                os._exit(130)


def finish() -> None:
    """After the command's work: Ctrl-C is ignored while the interpreter tears down (closing the
    device writes the shader caches), so the process exits with the command's own code. Python
    would otherwise restore the default action there: killed by SIGINT, after a success."""
    if threading.current_thread() is threading.main_thread():
        signal.signal(signal.SIGINT, signal.SIG_IGN)


def install() -> None:
    """The SIGINT handler and the watchdog (module doc); nothing when SIGINT is ignored (a
    background job) or off the main thread."""
    if threading.current_thread() is not threading.main_thread() or \
            signal.getsignal(signal.SIGINT) is signal.SIG_IGN:
        return
    global _wake_fd
    read_fd, write_fd = os.pipe()
    os.set_blocking(write_fd, False)
    _wake_fd = write_fd
    signal.signal(signal.SIGINT, _raise_interrupt)
    signal.set_wakeup_fd(write_fd, warn_on_full_buffer=False)
    threading.Thread(target=_watch, args=(read_fd,), name="neumat-interrupt-watchdog", daemon=True).start()
