"""The documentation's examples and links stay true: README.md and docs/*.md.

Cheap checks only (no renders, no device):
- every ```sh line that runs `neumat ...` names a subcommand that exists and whose flags parse with
  neumat's own argparse builder (neumat.cli.build_parser); scripts it runs (`tools/x.sh`,
  `python tools/x.py`) exist;
- every material or scene file those commands name exists (a built-in scene name is fine), except
  the placeholders in PLACEHOLDER_FILES, which stand for the reader's own files;
- every `assets/...` path in the text exists (up to a placeholder such as <name>);
- every ```toml block in docs/materials.md and docs/scenes.md is a complete file that the
  project's loader accepts, unless the line before it is `<!-- fragment -->`;
- every relative link (and image) resolves to a file, and a `#anchor` to a heading there.
"""

from __future__ import annotations

import io
import os
import re
import shlex
from contextlib import redirect_stderr, redirect_stdout
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
PAGES = [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]

# Example file names that stand for the reader's own files in shell examples.
PLACEHOLDER_FILES = {"my_scene.toml", "my_material.toml", "reference.exr", "test.exr"}

FRAGMENT_MARK = "<!-- fragment -->"


def _rel(path: Path) -> str:
    return path.relative_to(ROOT).as_posix()


def _blocks(page: Path) -> list[tuple[str, str, int, bool]]:
    """Fenced code blocks: (language, text, first line number, marked as a fragment)."""
    out, lines = [], page.read_text().split("\n")
    i = 0
    while i < len(lines):
        m = re.match(r"^```(\w*)", lines[i])
        if m:
            prev = next((lines[k].strip() for k in range(i - 1, -1, -1) if lines[k].strip()), "")
            j = i + 1
            while j < len(lines) and not lines[j].startswith("```"):
                j += 1
            out.append((m.group(1), "\n".join(lines[i + 1:j]) + "\n", i + 2, prev == FRAGMENT_MARK))
            i = j + 1
        else:
            i += 1
    return out


def _text_outside_code(page: Path) -> str:
    return re.sub(r"^```.*?^```", "", page.read_text(), flags=re.S | re.M)


def _shell_commands(text: str) -> list[list[str]]:
    """One token list per command line (comments dropped, backslash continuations joined)."""
    cmds = []
    for line in text.replace("\\\n", " ").split("\n"):
        tokens = shlex.split(line, comments=True)
        if tokens:
            cmds.append(tokens)
    return cmds


def _sh_cases() -> list:
    cases = []
    for page in PAGES:
        for lang, text, lineno, _ in _blocks(page):
            if lang in ("sh", "bash", "shell"):
                for tokens in _shell_commands(text):
                    cases.append(pytest.param(tokens, id=f"{_rel(page)}:{lineno}:{' '.join(tokens[:3])}"))
    return cases


@pytest.fixture(scope="module")
def parser():
    from neumat.cli import build_parser
    return build_parser()


def _parse(parser, args: list[str]):
    err = io.StringIO()
    try:
        with redirect_stderr(err), redirect_stdout(io.StringIO()):
            return parser.parse_args(args)
    except SystemExit:
        pytest.fail(f"`neumat {' '.join(args)}` does not parse: {err.getvalue().strip()}")


def _check_file_arg(value: str, kind: str) -> None:
    if Path(value).name in PLACEHOLDER_FILES:
        return
    if kind == "scene" and not value.endswith(".toml"):
        from neumat.renderer.scene.scene_file import find_scene
        assert find_scene(value).is_file(), f"no built-in scene '{value}'"
        return
    assert (ROOT / value).is_file(), f"{kind} file {value} does not exist"


def test_there_are_shell_examples():
    assert len(_sh_cases()) >= 15


@pytest.mark.parametrize("tokens", _sh_cases())
def test_shell_example(tokens, parser):
    if tokens[:2] == ["xvfb-run", "-a"]:
        tokens = tokens[2:]
    if tokens[0] in ("python", "python3") and len(tokens) > 1:
        assert (ROOT / tokens[1]).is_file(), f"{tokens[1]} does not exist"
        return
    if tokens[0].startswith("tools/"):
        assert (ROOT / tokens[0]).is_file(), f"{tokens[0]} does not exist"
        return
    assert tokens[0] == "neumat", f"a shell example runs something this test does not know: {tokens}"
    args = _parse(parser, tokens[1:])
    if args.command == "render" or args.command == "view":
        _check_file_arg(args.scene, "scene")
    elif args.command == "material":
        for f in getattr(args, "files", None) or [args.file]:
            _check_file_arg(f, "material")
    elif args.command == "bake":
        for f in args.material:  # one or several material files
            _check_file_arg(f, "material")
    elif args.command == "compare":
        if len(args.inputs) == 1:
            _check_file_arg(args.inputs[0], "scene")
        else:
            for f in args.inputs:
                _check_file_arg(f, "image")


def _toml_cases() -> list:
    cases = []
    for name in ("materials.md", "scenes.md"):
        page = ROOT / "docs" / name
        for lang, text, lineno, fragment in _blocks(page):
            if lang == "toml" and not fragment:
                cases.append(pytest.param(name, text, id=f"docs/{name}:{lineno}"))
    return cases


def test_each_format_page_has_a_complete_example():
    assert {c.values[0] for c in _toml_cases()} == {"materials.md", "scenes.md"}


@pytest.mark.parametrize("page, text", _toml_cases())
def test_toml_example_loads(page, text, tmp_path):
    # Lay the example out as if it sat in assets/ beside the bundled files it references.
    for folder in ("materials", "scenes", "neural"):
        (tmp_path / folder).mkdir()
    for folder in ("textures",):
        os.symlink(ROOT / "assets" / "materials" / folder, tmp_path / "materials" / folder)
    for path in (ROOT / "assets" / "materials").glob("*.toml"):
        os.symlink(path, tmp_path / "materials" / path.name)
    for path in (ROOT / "assets" / "neural").iterdir():
        os.symlink(path, tmp_path / "neural" / path.name)
    if page == "materials.md":
        from neumat.renderer.materials.graph import load_material
        file = tmp_path / "materials" / "example.toml"
        file.write_text(text)
        material = load_material(file)
        assert material.layout.width > 0
    else:
        from neumat.renderer.scene.scene_file import load_scene
        file = tmp_path / "scenes" / "example.toml"
        file.write_text(text)
        scene = load_scene(file)
        assert scene.objects
        for obj in scene.objects:
            if obj.material is not None and obj.material.asset is not None:
                assert obj.material.asset.is_dir(), f"{obj.material.asset} does not exist"


def _asset_path_cases() -> list:
    cases = set()
    for page in PAGES:
        for m in re.finditer(r"(?<![\w/.])assets/[\w./-]*[\w]", page.read_text()):
            cases.add((_rel(page), m.group(0)))
    return [pytest.param(path, id=f"{page}:{path}") for page, path in sorted(cases)]


@pytest.mark.parametrize("path", _asset_path_cases())
def test_asset_path_exists(path):
    if Path(path).name in PLACEHOLDER_FILES:
        return
    assert (ROOT / path).exists(), f"{path} does not exist"


def _slug(heading: str) -> str:
    """GitHub's anchor for a heading: lower case, punctuation but - and _ dropped, spaces -> -."""
    text = re.sub(r"`|\*\*|\*", "", heading.strip()).lower()
    text = re.sub(r"[^\w\- ]", "", text)
    return text.replace(" ", "-")


def _anchors(page: Path) -> set[str]:
    anchors, seen = set(), {}
    for line in _text_outside_code(page).split("\n"):
        m = re.match(r"^#{1,6} (.*)", line)
        if m:
            slug = _slug(m.group(1))
            n = seen.get(slug, 0)
            anchors.add(slug if n == 0 else f"{slug}-{n}")
            seen[slug] = n + 1
    return anchors


def _link_cases() -> list:
    cases = []
    for page in PAGES:
        for m in re.finditer(r"!?\[[^\]]*\]\(([^)\s]+)\)", _text_outside_code(page)):
            target = m.group(1)
            if re.match(r"^[a-z]+:", target):
                continue  # http(s):, mailto:
            cases.append(pytest.param(page, target, id=f"{_rel(page)}->{target}"))
    return cases


def test_pages_link_to_each_other():
    assert len(_link_cases()) >= 30


@pytest.mark.parametrize("page, target", _link_cases())
def test_relative_link_resolves(page, target):
    path, _, anchor = target.partition("#")
    file = (page.parent / path).resolve() if path else page
    assert file.exists(), f"{_rel(page)} links to {target}, which does not exist"
    if anchor:
        assert file.suffix == ".md", f"an anchor into a non-markdown file: {target}"
        assert anchor in _anchors(file), f"{_rel(page)} links to {target}: no such heading in {file.name}"


def _python_cases() -> list:
    cases = []
    for page in PAGES:
        for lang, text, lineno, _ in _blocks(page):
            if lang == "python":
                cases.append(pytest.param(page, text, id=f"{_rel(page)}:{lineno}"))
    return cases


@pytest.mark.parametrize("page, text", _python_cases())
def test_python_example_imports_exist(page, text):
    """Every name a Python example imports from the project exists where the example says."""
    import ast
    import importlib
    for node in ast.walk(ast.parse(text)):
        if isinstance(node, ast.ImportFrom) and node.module.split(".")[0] in ("renderer", "training", "neumat"):
            module = importlib.import_module(node.module)
            for alias in node.names:
                assert hasattr(module, alias.name), f"{_rel(page)}: {node.module} has no {alias.name}"


def test_numpy_only_asset_reader_runs():
    """docs/assets.md's reader, on a pre-baked asset: numpy alone decodes the frames and the evaluator."""
    import numpy as np
    [(text)] = [t for lang, t, _, _ in _blocks(ROOT / "docs" / "assets.md") if lang == "python"]
    asset = ROOT / "assets" / "neural" / "woven_fabric.neumat"
    assert 'Path("brass.neumat")' in text
    scope: dict = {}
    exec(text.replace('Path("brass.neumat")', f"Path({str(asset)!r})"), scope)
    latent = scope["latent"]
    assert latent.shape == (1, scope["m"]["latents"]["channels"])
    raw = scope["mlp"]("frames", latent)
    assert raw.shape == (1, 12) and np.all(np.isfinite(raw))
    features = np.zeros((1, 12), np.float32)
    features[0, [2, 5, 8, 11]] = 1.0  # wi = wo = the normal, in both (unperturbed) frames
    f = np.exp(scope["mlp"]("evaluator", np.concatenate([features, latent], axis=1)) - 3)
    assert f.shape == (1, 3) and np.all(f > 0)


def _subparsers(parser):
    import argparse
    return next(a for a in parser._actions if isinstance(a, argparse._SubParsersAction)).choices


def test_inline_commands_exist(parser):
    """`neumat X ...` in the prose and tables (usage forms included) names a subcommand that exists,
    with flags it has; a complete one parses, and its files exist."""
    sub = _subparsers(parser)
    for page in PAGES:
        for m in re.finditer(r"`neumat ([^`]+)`", _text_outside_code(page)):
            words = m.group(1).split()
            where = f"{_rel(page)}: `neumat {m.group(1)}`"
            assert words[0] in sub, f"{where}: no such subcommand"
            command = sub[words[0]]
            if words[0] == "material" and len(words) > 1:
                assert words[1] in _subparsers(command), f"{where}: no such action"
                command = _subparsers(command)[words[1]]
            flags = {f for f in re.split(r"[\s\[\]|\\]+", m.group(1)) if f.startswith("-")}
            known = {s for a in command._actions for s in a.option_strings}
            assert flags <= known, f"{where}: unknown flags {sorted(flags - known)}"
            placeholder = re.search(r"[\[\]|<>]|\.\.\.|\b[A-Z][A-Z.]+\b", m.group(1))
            # Parse complete commands: flags, no placeholders, and the positional arguments first
            # (`neumat render --mode neural` in a sentence is a flag's mention, not a command).
            args = words[2:] if words[0] == "material" else words[1:]
            if flags and not placeholder and args and not args[0].startswith("-"):
                test_shell_example(["neumat", *words], parser)
