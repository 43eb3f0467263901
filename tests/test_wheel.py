"""A regular (non-editable) install works without the source tree: the wheel carries the Slang
sources and the bundled assets as package data, and `neumat` finds them through the installed
package from any folder."""

import os
import shutil
import subprocess
import sys
import sysconfig
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parent.parent


def _run(cmd, cwd, env=None, timeout=900):
    r = subprocess.run([str(c) for c in cmd], cwd=cwd, env=env, capture_output=True, text=True, timeout=timeout)
    assert r.returncode == 0, f"{' '.join(map(str, cmd))} failed ({r.returncode}):\n{r.stdout[-3000:]}\n{r.stderr[-3000:]}"
    return r.stdout


@pytest.fixture(scope="module")
def installed(tmp_path_factory):
    """A fresh venv with the wheel installed; its dependencies come from this environment's
    site-packages (a .pth line), so nothing is downloaded and the source tree is not on its path."""
    tmp = tmp_path_factory.mktemp("wheel")
    source = tmp / "source"  # a copy of the tracked files: the build writes nothing into the checkout
    files = subprocess.run(["git", "ls-files", "-z"], cwd=REPO, capture_output=True, check=True).stdout.split(b"\0")
    for name in filter(None, files):
        src = REPO / name.decode()
        if src.is_file():
            (source / name.decode()).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(src, source / name.decode())
    dist = tmp / "dist"
    _run([sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation", "-q", "-w", dist, source], tmp)
    wheel = next(dist.glob("neumat-*.whl"))
    venv = tmp / "venv"
    _run([sys.executable, "-m", "venv", "--without-pip", venv], tmp)
    python = venv / "bin" / "python"
    site = Path(_run([python, "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"], tmp).strip())
    (site / "deps.pth").write_text(sysconfig.get_paths()["purelib"] + "\n")
    _run([sys.executable, "-m", "pip", "--python", python, "install", "--no-deps", "-q", wheel], tmp)
    work = tmp / "elsewhere"
    work.mkdir()
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH",)}
    return venv, work, env


def test_the_wheel_finds_its_shaders_and_assets_outside_the_source_tree(installed):
    venv, work, env = installed
    where = _run([venv / "bin" / "python", "-c",
                  "import neumat, neumat.renderer.core.paths as p; print(neumat.__file__); print(p.SHADER_DIR); "
                  "print(p.ASSET_DIR); print((p.SHADER_DIR / 'render' / 'pathtracer.slang').is_file()); "
                  "print((p.ASSET_DIR / 'scenes' / 'stage.toml').is_file())"], work, env).split("\n")
    for line in where[:3]:
        assert line.startswith(str(venv)), where
    assert where[3:5] == ["True", "True"], where


def test_the_installed_command_renders(installed):
    """`neumat render-test` and a tiny render of a built-in scene (its scene file, material graph
    and textures all from the installed package) through the installed console script."""
    venv, work, env = installed
    neumat = venv / "bin" / "neumat"
    _run([neumat, "render-test", "-o", "test.png", "--width", "64", "--height", "32"], work, env)
    _run([neumat, "render", "material_ball", "--mode", "reference", "--spp", "1", "--width", "24", "--height", "24",
          "-o", "ball.png"], work, env)
    assert (work / "test.png").stat().st_size > 0 and (work / "ball.png").stat().st_size > 0


def test_every_package_is_installed_and_imported_by_its_installed_name():
    """pyproject.toml lists the packages by hand (neumat.renderer is the folder renderer/): a new
    subpackage missing from the list would be left out of the wheel. And code imports the project
    only as neumat.*: a bare `import renderer` works in a checkout but not once installed."""
    import re
    import tomllib

    config = tomllib.loads((REPO / "pyproject.toml").read_text())["tool"]["setuptools"]
    folders = {"neumat": "neumat", **{k: v for k, v in config["package-dir"].items()}}
    found = set()
    for name, folder in folders.items():
        if (REPO / folder / "__init__.py").is_file():
            for init in (REPO / folder).rglob("__init__.py"):
                rel = init.parent.relative_to(REPO / folder)
                found.add(".".join([name, *rel.parts]))
    assert found <= set(config["packages"]), sorted(found - set(config["packages"]))
    bare = re.compile(r"^\s*(from|import)\s+(renderer|training)\b", re.M)
    offenders = [str(p.relative_to(REPO)) for folder in ("renderer", "training", "neumat", "tools", "tests")
                 for p in (REPO / folder).rglob("*.py") if bare.search(p.read_text())]
    assert not offenders, offenders
