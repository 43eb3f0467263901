"""renderer/images/metrics.py: FLIP, PSNR and relative MSE, and their guards against inputs that
would end the process inside the flip library."""

import math
import subprocess
import sys

import numpy as np
import pytest

from neumat.renderer.images.metrics import (flip_error, ldr_flip_error, psnr, psnr_from_mse, relative_squared_error,
                                    squared_display_error)


@pytest.mark.parametrize("bad, message", [
    (lambda a: a[:8], "shape"), (lambda a: np.where(a > a.mean(), np.nan, a), "non-finite"),
    (lambda a: a - 1.0, "negative"), (lambda a: a[..., :2], "HxWx3")])
def test_flip_rejects_bad_inputs_without_exiting(bad, message):
    a = np.random.default_rng(0).random((16, 16, 3)).astype(np.float32)
    with pytest.raises(ValueError, match=message):
        flip_error(a, bad(a))


def test_flip_survives_black_references():
    """Raw flip_evaluator ends the process on a near-black reference; flip_error must not (so run
    it in a child process)."""
    code = """
import numpy as np
from neumat.renderer.images.metrics import flip_error
dim = np.full((16, 16, 3), 1e-30, np.float32)
black = np.zeros((16, 16, 3), np.float32)
print(flip_error(dim, dim * 0.5)[1], flip_error(black, black)[1], flip_error(black, black + 1)[1])
"""
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stdout + done.stderr
    dim, black, black_vs_one = map(float, done.stdout.split())
    assert 0 < dim < 1 and black == 0 and black_vs_one > 0.5




def test_known_perturbation_gives_the_expected_psnr():
    """A constant offset d on a display-space value: MSE = d^2, PSNR = -20 log10 d. At exposure 0
    an image of 0.18 (mid grey) is tonemapped and encoded first, so the offset is set there:
    the test image is built to differ by exactly d after display encoding."""
    from neumat.renderer.images.color import srgb_encode
    from neumat.renderer.images.io import tonemap

    rng = np.random.default_rng(3)
    ref = rng.uniform(0.05, 0.5, (32, 48, 3)).astype(np.float32)
    shown = srgb_encode(tonemap(ref, 0.0)).astype(np.float64)
    assert psnr(ref, ref) == math.inf and psnr_from_mse(0.0) == math.inf
    # Perturb in display space, then map back through the inverse curves (ACES fit inverted numerically).
    d = 0.01
    target = np.clip(shown + d, 0, 1)
    lo, hi = np.zeros_like(ref, np.float64), np.full_like(ref, 64.0, np.float64)
    for _ in range(60):  # bisection: tonemap and srgb_encode are monotonic
        mid = 0.5 * (lo + hi)
        too_bright = srgb_encode(tonemap(mid.astype(np.float32), 0.0)) > target
        hi = np.where(too_bright, mid, hi)
        lo = np.where(too_bright, lo, mid)
    test = (0.5 * (lo + hi)).astype(np.float32)
    assert np.mean(squared_display_error(ref, test)) == pytest.approx(d * d, rel=1e-3)
    assert psnr(ref, test) == pytest.approx(40.0, abs=0.01)


def test_relative_squared_error_of_a_scaled_image():
    ref = np.full((4, 4, 3), 2.0, np.float32)
    assert relative_squared_error(ref, ref * 1.1) == pytest.approx(np.full((4, 4), 0.04 / 4.01))


def test_flip_map_values_and_ldr_flip():
    rng = np.random.default_rng(0)
    a = rng.random((24, 24, 3)).astype(np.float32)
    b = a * 1.3
    values, mean = flip_error(a, b, magma=False)
    coloured, mean_magma = flip_error(a, b)
    assert values.shape == (24, 24) and coloured.shape == (24, 24, 3)
    assert mean == pytest.approx(mean_magma) and values.mean() == pytest.approx(mean, rel=1e-5)
    m, ldr = ldr_flip_error(np.clip(a, 0, 1), np.clip(b, 0, 1))
    assert m.shape == (24, 24, 3) and 0 < ldr < 1
    assert ldr_flip_error(a, a)[1] == 0.0
