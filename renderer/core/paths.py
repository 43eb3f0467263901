"""Where neumat's own files live: the Slang sources, the bundled assets and the on-disk caches."""

import os
from pathlib import Path

# The folder that holds renderer/, shaders/ and assets/: the source tree in a checkout, the installed
# `neumat` package in a wheel install (pyproject.toml maps both the same way).
REPO_ROOT = Path(__file__).resolve().parents[2]
SHADER_DIR = REPO_ROOT / "shaders"
ASSET_DIR = REPO_ROOT / "assets"


def cache_dir() -> Path:
    """The root of neumat's caches: $NEUMAT_CACHE_DIR, else $XDG_CACHE_HOME/neumat, else ~/.cache/neumat."""
    if os.environ.get("NEUMAT_CACHE_DIR"):
        return Path(os.environ["NEUMAT_CACHE_DIR"])
    base = os.environ.get("XDG_CACHE_HOME") or (Path.home() / ".cache")
    return Path(base) / "neumat"
