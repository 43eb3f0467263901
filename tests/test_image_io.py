"""EXR is lossless linear float; PNG is exposure + tonemap + sRGB; bad paths fail before writing."""

import os

import numpy as np
import pytest

from renderer.errors import NeumatError
from renderer.image_io import read_image, srgb_decode, srgb_encode, to_display, tonemap, write_image


def test_exr_round_trip_is_exact(tmp_path):
    rng = np.random.default_rng(1)
    image = (rng.random((7, 11, 3)) * 100).astype(np.float32)
    image[0, 0] = [0.0, 1e-8, 65504.0]
    write_image(tmp_path / "a.exr", image)
    np.testing.assert_array_equal(read_image(tmp_path / "a.exr"), image)


def test_srgb_curve_known_values():
    # 0.18 linear grey is 46.1 % in sRGB; the curve is continuous at its knee and inverts exactly.
    np.testing.assert_allclose(srgb_encode(np.array([0.0, 0.0031308, 0.18, 1.0])),
                               [0.0, 0.04044994, 0.46135613, 1.0], rtol=1e-6)
    x = np.linspace(0, 1, 101)
    np.testing.assert_allclose(srgb_decode(srgb_encode(x)), x, atol=1e-7)


def test_tonemappers_and_exposure():
    x = np.array([0.0, 0.5, 1.0, 4.0])
    np.testing.assert_allclose(tonemap(x, 0, "clamp"), [0, 0.5, 1, 1])
    np.testing.assert_allclose(tonemap(x, 1, "clamp"), [0, 1, 1, 1])
    np.testing.assert_allclose(tonemap(x, 0, "reinhard"), [0, 1 / 3, 0.5, 0.8])
    aces = tonemap(np.linspace(0, 100, 1001), 0, "aces")
    assert aces[0] == 0 and np.all(np.diff(aces) >= 0) and 0.99 < aces[-1] <= 1.0
    with pytest.raises(NeumatError, match="unknown tonemapper"):
        tonemap(x, 0, "filmic9000")


def test_png_holds_display_values(tmp_path):
    image = np.full((4, 4, 3), 0.18, np.float32)
    write_image(tmp_path / "g.png", image, tonemapper="clamp")
    assert to_display(image, tonemapper="clamp")[0, 0, 0] == 118  # round(255 * 0.4614)
    np.testing.assert_allclose(read_image(tmp_path / "g.png"), srgb_decode(np.float32(118 / 255)), rtol=1e-6)


@pytest.mark.parametrize("name, message", [("x.jpg", "unknown image extension"), ("missing/x.png", "does not exist")])
def test_bad_output_paths_fail_cleanly(tmp_path, name, message):
    with pytest.raises(NeumatError, match=message):
        write_image(tmp_path / name, np.zeros((2, 2, 3), np.float32))
    assert list(tmp_path.iterdir()) == []


def test_unreadable_inputs(tmp_path):
    with pytest.raises(NeumatError, match="no such file"):
        read_image(tmp_path / "none.exr")
    (tmp_path / "bad.exr").write_bytes(b"not an exr")
    with pytest.raises(NeumatError, match="cannot read"):
        read_image(tmp_path / "bad.exr")


def test_written_images_get_ordinary_permissions(tmp_path):
    old = os.umask(0o022)
    try:
        path = write_image(tmp_path / "p.png", np.zeros((2, 2, 3), np.float32))
    finally:
        os.umask(old)
    assert path.stat().st_mode & 0o777 == 0o644
