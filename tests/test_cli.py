"""The console command as a user meets it: output files, closing lines, exit codes, no tracebacks."""

import os
import subprocess
import sys

import numpy as np

from renderer.image_io import read_image


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
    for args, message in [
        (("render-test", "-o", str(tmp_path / "missing" / "x.png")), "does not exist"),
        (("render-test", "-o", str(tmp_path / "x.tiff")), "unknown image extension"),
        (("sysinfo", "--device", "no-such-gpu"), "No Vulkan adapter matches"),
    ]:
        result = neumat(*args)
        assert result.returncode == 2, (args, result.stderr)
        assert message in result.stderr and "Traceback" not in result.stderr
    assert list(tmp_path.iterdir()) == []


def test_missing_vulkan_driver_says_how_to_install_one(tmp_path):
    env = dict(os.environ, VK_DRIVER_FILES="/nonexistent/icd.json", VK_ICD_FILENAMES="/nonexistent/icd.json")
    result = neumat("render-test", "-o", str(tmp_path / "x.png"), env=env)
    assert result.returncode == 2
    assert "No Vulkan adapter found" in result.stderr and "bookworm-backports" in result.stderr
    assert "Traceback" not in result.stderr and not (tmp_path / "x.png").exists()
