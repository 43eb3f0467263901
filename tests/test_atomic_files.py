"""Atomic writes leave no temporary files, even after a kill: the next write of the same target
removes those whose process is gone (renderer/core/atomic_files.py)."""

import os
import subprocess
import sys
import time

import pytest

from neumat.renderer.core.atomic_files import STALE_SECONDS, atomic_output, remove_stale_temporaries


def _dead_pid() -> int:
    done = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True, text=True)
    return int(done.stdout)


def test_a_write_removes_the_leftovers_of_killed_writers_only(tmp_path):
    target = tmp_path / "out.png"
    dead = tmp_path / f".out.png.tmp-{_dead_pid()}-abc.png"  # its writer was SIGKILLed
    dead.write_bytes(b"half")
    dead_dir = tmp_path / f".out.png.tmp-{_dead_pid()}-report-xyz"
    dead_dir.mkdir()
    (dead_dir / "a.txt").write_text("x")
    live = tmp_path / f".out.png.tmp-{os.getppid()}-def.png"  # a running process is writing it
    live.write_bytes(b"busy")
    old = tmp_path / f".out.png.tmp-{os.getppid()}-old.png"  # live pid, but a day old: the id was reused
    old.write_bytes(b"old")
    os.utime(old, (time.time() - STALE_SECONDS - 60,) * 2)
    others = [tmp_path / ".other.png.tmp-1-x.png", tmp_path / ".out.png.tmp-notapid.png", tmp_path / "keep.txt"]
    for p in others:
        p.write_text("not ours")
    with atomic_output(target) as tmp:
        tmp.write_bytes(b"new")
    assert target.read_bytes() == b"new"
    assert not dead.exists() and not dead_dir.exists() and not old.exists()
    assert live.exists() and all(p.exists() for p in others)


def test_a_killed_write_leaves_only_what_the_next_write_removes(tmp_path):
    """A real SIGKILL in the middle of a write."""
    target = tmp_path / "x.exr"
    code = ("import sys, time\nfrom neumat.renderer.core.atomic_files import atomic_output\n"
            "with atomic_output(sys.argv[1]) as tmp:\n    tmp.write_bytes(b'partial')\n"
            "    print('writing', flush=True)\n    time.sleep(60)\n")
    proc = subprocess.Popen([sys.executable, "-c", code, str(target)], stdout=subprocess.PIPE, text=True)
    assert proc.stdout.readline().strip() == "writing"
    proc.kill()
    proc.wait()
    leftovers = [p.name for p in tmp_path.iterdir()]
    assert len(leftovers) == 1 and leftovers[0].startswith(".x.exr.tmp-") and not target.exists()
    assert [p.name for p in remove_stale_temporaries(target)] == leftovers
    assert list(tmp_path.iterdir()) == []


def test_a_failed_write_leaves_nothing(tmp_path):
    with pytest.raises(RuntimeError):
        with atomic_output(tmp_path / "y.png") as tmp:
            tmp.write_bytes(b"x")
            raise RuntimeError("disk full")
    assert list(tmp_path.iterdir()) == []
