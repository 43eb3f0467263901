"""Writing files so that readers never see half of one: write beside the target, then rename.

An interrupted or failed write leaves the previous file (or nothing) under the target name and no
temporary file behind; the result gets the permissions of an ordinary new file (mkstemp's are
private).

A process killed outright (SIGKILL, a power cut) cannot remove its temporary files, so they are
named after their target and the writer's process id, `.<target name>.tmp-<pid>-<random>`, and
every later write of the same target first removes those whose writer is gone (or which are older
than STALE_SECONDS, in case the id was reused): leftovers last until the next run, not forever.
"""

import os
import shutil
import tempfile
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

STALE_SECONDS = 24 * 3600
_MARK = ".tmp-"


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


def _prefix(target: Path) -> str:
    return f".{target.name}{_MARK}"


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # another user's process
        return True
    return True


def remove_stale_temporaries(target: str | Path) -> list[Path]:
    """Removes the temporary files and folders of earlier writes of `target` whose process is gone
    (or older than STALE_SECONDS); returns what it removed."""
    target = Path(target)
    prefix = _prefix(target)
    removed = []
    try:
        entries = list(target.parent.iterdir())
    except OSError:
        return removed
    now = time.time()
    for entry in entries:
        if not entry.name.startswith(prefix):
            continue
        pid_text = entry.name[len(prefix):].split("-", 1)[0]
        if not (pid_text.isdigit() and 0 < int(pid_text) < 1 << 31):
            continue
        pid = int(pid_text)
        try:
            old = now - entry.lstat().st_mtime > STALE_SECONDS
        except OSError:
            continue
        if pid == os.getpid() or (_pid_alive(pid) and not old):
            continue
        if entry.is_dir() and not entry.is_symlink():
            shutil.rmtree(entry, ignore_errors=True)
        else:
            entry.unlink(missing_ok=True)
        removed.append(entry)
    return removed


def temporary_file(target: str | Path, suffix: str | None = None) -> Path:
    """A new empty temporary file beside `target`, named for the clean-up above (stale ones of the
    same target are removed first). `suffix` defaults to the target's (writers pick formats by it)."""
    target = Path(target)
    remove_stale_temporaries(target)
    fd, tmp = tempfile.mkstemp(prefix=f"{_prefix(target)}{os.getpid()}-",
                               suffix=target.suffix if suffix is None else suffix, dir=target.parent)
    os.close(fd)
    return Path(tmp)


def aside_path(target: str | Path) -> Path:
    """A free name beside `target` to rename an old version to while the new one moves in: named
    like the temporaries, so a kill between the two renames leaves nothing that lasts."""
    target = Path(target)
    return target.parent / f"{_prefix(target)}{os.getpid()}-old-{uuid.uuid4().hex[:8]}"


def temporary_dir(target: str | Path) -> Path:
    """A new empty temporary folder beside `target` (the folder counterpart of temporary_file)."""
    target = Path(target)
    remove_stale_temporaries(target)
    return Path(tempfile.mkdtemp(prefix=f"{_prefix(target)}{os.getpid()}-", dir=target.parent))


@contextmanager
def atomic_output(path: str | Path) -> Iterator[Path]:
    """Yields a temporary path in `path`'s folder (same suffix); renames it to `path` on success."""
    path = Path(path)
    tmp = temporary_file(path)
    try:
        yield tmp
        os.chmod(tmp, 0o666 & ~_umask())
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
