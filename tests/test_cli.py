"""The console command as a user meets it: output files, closing lines, exit codes, no tracebacks."""

import os
import signal
import subprocess
import sys
import time

import numpy as np
import pytest

from neumat.cli import main
from neumat.renderer.images.io import read_image


def neumat(*args, env=None):
    return subprocess.run([sys.executable, "-m", "neumat", *args], capture_output=True, text=True, env=env)


def test_render_test_writes_the_pattern(tmp_path):
    result = neumat("render-test", "-o", str(tmp_path / "p.exr"), "--width", "128", "--height", "64")
    assert result.returncode == 0, result.stderr
    assert "compile" in result.stdout and "render" in result.stdout
    image = read_image(tmp_path / "p.exr")
    assert image.shape == (64, 128, 3)
    np.testing.assert_array_equal(image[-2, -2], [4, 4, 4])  # the brightest swatch


def test_sysinfo_reports_device_and_features():
    result = neumat("sysinfo")
    assert result.returncode == 0, result.stderr
    for key in ("adapter:", "driver:", "ray_tracing=", "cooperative_vector=", "shader cache:", "display:", "torch:"):
        assert key in result.stdout


def test_bad_input_is_one_clear_message(tmp_path):
    (tmp_path / "dir.png").mkdir()
    for args, message in [
        (("render-test", "-o", str(tmp_path / "missing" / "x.png")), "does not exist"),
        (("render-test", "-o", str(tmp_path / "x.tiff")), "unknown image extension"),
        (("sysinfo", "--device", "no-such-gpu"), "No Vulkan adapter matches"),
        (("render-test", "-o", str(tmp_path / "dir.png")), "is a folder"),  # refused before rendering
    ]:
        result = neumat(*args)
        assert result.returncode == 2, (args, result.stderr)
        assert message in result.stderr and "Traceback" not in result.stderr
    assert list(tmp_path.iterdir()) == [tmp_path / "dir.png"] and not any((tmp_path / "dir.png").iterdir())


@pytest.mark.parametrize("value, message", [("10000", "must be in [-64, 64], got 10000"),
                                            ("nan", "must be finite, got nan"), ("lots", "expected a number")])
def test_exposure_out_of_range_is_refused_before_rendering(tmp_path, capsys, value, message):
    """--exposure 10000 overflowed after rendering; nan wrote a black PNG with exit code 0."""
    with pytest.raises(SystemExit) as exc:
        main(["render-test", "-o", str(tmp_path / "x.png"), "--exposure", value])
    assert exc.value.code == 2
    assert f"argument --exposure: {message}" in capsys.readouterr().err
    assert list(tmp_path.iterdir()) == []


def test_sizes_too_large_to_allocate_are_refused(tmp_path, capsys):
    """A million-pixel-wide test image or preview ended in an allocation traceback."""
    material = tmp_path / "m.toml"
    material.write_text('[material]\nname = "m"\n[[layers]]\ntype = "diffuse"\nalbedo = 0.5\n')
    for args, message in [(["render-test", "--width", "1000000"], "--width/--height must be in [8, 16384]"),
                          (["material", "preview", str(material), "--size", "1000000"], "--size must be in [16, 16384]")]:
        assert main([*args, "-o", str(tmp_path / "x.png")]) == 2
        assert message in capsys.readouterr().err
    assert sorted(p.name for p in tmp_path.iterdir()) == ["m.toml"]


def test_the_parser_imports_no_torch_slangpy_or_gl():
    """`neumat --help` took 3 s: building the parser imported the viewer session (slangpy, torch)."""
    code = ("import sys\nfrom neumat.cli import build_parser\nbuild_parser().format_help()\n"
            "print(sorted({m.split('.')[0] for m in sys.modules} & {'torch', 'slangpy', 'OpenGL', 'glfw', "
            "'imgui_bundle', 'trimesh', 'flip_evaluator'}))")
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert result.returncode == 0 and result.stdout.strip() == "[]", result.stdout + result.stderr


@pytest.fixture(scope="module")
def material_ball_compiled(tmp_path_factory):
    """The render below with its shaders compiled once. A cold Slang compile holds the interpreter
    (slangpy does not release it), so an interrupt during one takes effect when it returns: up to
    a minute on lavapipe, and the delays below would then all land in the compile."""
    out = tmp_path_factory.mktemp("warm") / "x.png"
    result = neumat("render", "material_ball", "--spp", "1", "--width", "16", "-o", str(out))
    assert result.returncode == 0, result.stderr


@pytest.mark.parametrize("delay", [0.4, 0.8, 1.5, 3.0])
def test_ctrl_c_at_any_moment_exits_130_with_one_line(tmp_path, delay, material_ball_compiled):
    """Ctrl-C in the first seconds (imports, device, cached compile, rendering) of a long render: it
    was swallowed inside torch's import (the command ran on), aborted (134) or ended in a traceback."""
    out = tmp_path / "x.png"
    # As typed at a terminal: SIGINT at its default even where this test runs as a background job
    # (a non-interactive shell's `&` starts it ignored, and a command that inherits that ignores Ctrl-C).
    proc = subprocess.Popen([sys.executable, "-m", "neumat", "render", "material_ball", "--spp", "1000000",
                             "--width", "16", "-o", str(out)], stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            text=True, preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL))
    time.sleep(delay)
    assert proc.poll() is None
    proc.send_signal(signal.SIGINT)
    try:
        _, err = proc.communicate(timeout=30)
    finally:
        proc.kill()
    assert proc.returncode == 130 and err == "neumat: interrupted\n", (proc.returncode, err)
    assert list(tmp_path.iterdir()) == []


def test_missing_vulkan_driver_says_how_to_install_one(tmp_path):
    env = dict(os.environ, VK_DRIVER_FILES="/nonexistent/icd.json", VK_ICD_FILENAMES="/nonexistent/icd.json")
    result = neumat("render-test", "-o", str(tmp_path / "x.png"), env=env)
    assert result.returncode == 2
    assert "No Vulkan adapter found" in result.stderr and "bookworm-backports" in result.stderr
    assert "Traceback" not in result.stderr and not (tmp_path / "x.png").exists()
