"""Converged reference renders kept on disk, so that a second `neumat compare --material` of the same
material renders only the neural side.

An entry is one view's reference image with what it took (spp, seconds, the FLIP between its
halves, why rendering stopped) and its two half images, in `<cache>/<key>.npz` (written atomically). The key is a sha256
over everything the image depends on: the material's source hash (the material file and every file
it references), the view's geometry, the resolution, the render settings, the noise target, and
`renderer_fingerprint()`: REFERENCE_RENDERER_VERSION and the bytes of every source file the
reference image goes through (the reference BSDF's shaders, the path tracer, the studio
environment, the graph evaluation), so a change to any of them never mixes with older entries.
Stale entries are never read again; deleting the folder is always safe."""

import hashlib
import io
import json
from functools import lru_cache
from pathlib import Path

import numpy as np

from neumat.renderer.core.atomic_files import atomic_output
from neumat.renderer.core.paths import REPO_ROOT, cache_dir

# Bump when the reference image changes for a reason the fingerprinted files do not show.
REFERENCE_RENDERER_VERSION = 1
# Sources the reference image depends on, relative to the repository (shaders/neural is left out:
# the reference never runs it).
_FINGERPRINTED = ("shaders/materials", "shaders/render", "shaders/lighting", "shaders/common",
                  "renderer/materials", "renderer/pathtracer/tracer.py", "renderer/scene/environment.py", "renderer/scene/meshes.py",
                  "renderer/compare/views.py")


def default_cache_dir() -> Path:
    return cache_dir() / "fidelity-references"


@lru_cache(maxsize=None)
def renderer_fingerprint() -> str:
    """sha256 over REFERENCE_RENDERER_VERSION and the fingerprinted sources (path and bytes)."""
    h = hashlib.sha256(f"reference renderer {REFERENCE_RENDERER_VERSION}\0".encode())
    for entry in _FINGERPRINTED:
        root = REPO_ROOT / entry
        files = sorted(p for p in root.rglob("*") if p.is_file() and p.suffix in (".slang", ".py")) \
            if root.is_dir() else [root]
        for path in files:
            h.update(f"{path.relative_to(REPO_ROOT)}\0".encode())
            h.update(path.read_bytes())
    return h.hexdigest()


def reference_key(source_hash: str, view_key: dict, size: int, settings: dict) -> str:
    """The cache key of one view's reference: a sha256 in hex."""
    doc = {"source_hash": source_hash, "view": view_key, "size": size, "settings": settings,
           "renderer": renderer_fingerprint()}
    return hashlib.sha256(json.dumps(doc, sort_keys=True).encode()).hexdigest()


class ReferenceCache:
    def __init__(self, folder: str | Path | None = None):
        self.folder = Path(folder) if folder is not None else default_cache_dir()

    def path(self, key: str) -> Path:
        return self.folder / f"{key}.npz"

    def load(self, key: str) -> tuple[np.ndarray, dict, tuple[np.ndarray, np.ndarray] | None] | None:
        """(image, record, the two half images or None for an entry written without them), or None
        when there is no entry or it cannot be read (then it is rendered again and replaced)."""
        try:
            with np.load(self.path(key), allow_pickle=False) as data:
                halves = (data["half_a"].astype(np.float32), data["half_b"].astype(np.float32)) \
                    if "half_a" in data.files and "half_b" in data.files else None
                return data["image"].astype(np.float32), json.loads(str(data["record"])), halves
        except (OSError, ValueError, KeyError):
            return None

    def store(self, key: str, image: np.ndarray, record: dict,
              halves: tuple[np.ndarray, np.ndarray] | None = None) -> Path:
        """Writes an entry; with `halves`, the two half images too (for the comparison's noise floor)."""
        self.folder.mkdir(parents=True, exist_ok=True)
        buf = io.BytesIO()
        extra = {} if halves is None else {"half_a": np.asarray(halves[0], np.float32),
                                           "half_b": np.asarray(halves[1], np.float32)}
        np.savez(buf, image=np.asarray(image, np.float32), record=np.array(json.dumps(record)), **extra)
        path = self.path(key)
        with atomic_output(path) as tmp:
            tmp.write_bytes(buf.getvalue())
        return path
