"""The render-test kernel writes the values shaders/pattern.slang promises, pixel by pixel."""

import numpy as np
import pytest

from neumat.renderer.core.pattern import render_pattern

W, H = 512, 256
ZENITH = np.array([0.08, 0.22, 0.60])
HORIZON = np.array([0.75, 0.85, 1.00])
GROUND = np.array([0.18, 0.16, 0.14])
SWATCHES = [(0, 0, 0), (0.18,) * 3, (0.5,) * 3, (1, 1, 1), (1, 0, 0), (0, 1, 0), (0, 0, 1), (4, 4, 4)]


@pytest.fixture(scope="module")
def image(device):
    return render_pattern(device, W, H)


def test_shape_and_finite(image):
    assert image.shape == (H, W, 3) and image.dtype == np.float32
    assert np.isfinite(image).all()


def test_sky_gradient(image):
    horizon_y = 0.6 * H
    for y in (1, 40, 100, 150):
        t = (horizon_y - (y + 0.5)) / horizon_y
        np.testing.assert_allclose(image[y, 33], HORIZON + (ZENITH - HORIZON) * t, rtol=1e-5)


def test_ground_grid_sun_and_swatches(image):
    np.testing.assert_allclose(image[180, 33], GROUND, rtol=1e-6)
    np.testing.assert_allclose(image[180, 64], GROUND * 0.25, rtol=1e-6)   # vertical grid line
    np.testing.assert_allclose(image[192, 33], GROUND * 0.25, rtol=1e-6)   # horizontal grid line
    np.testing.assert_array_equal(image[int(0.25 * H), int(0.72 * W)], [20, 18, 15])
    for i, expected in enumerate(SWATCHES):
        x = int((i + 0.5) * W / 8)
        np.testing.assert_array_equal(image[H - 4, x], np.float32(expected))
