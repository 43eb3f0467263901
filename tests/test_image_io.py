"""EXR is lossless linear float; PNG is exposure + tonemap + sRGB; bad paths fail before writing."""

import os

import numpy as np
import pytest

from neumat.renderer.core.errors import NeumatError
from neumat.renderer.images.color import srgb_decode, srgb_encode
from neumat.renderer.images.io import read_image, to_display, tonemap, write_image


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


def png_claiming(path, width: int, height: int):
    """A valid small PNG whose header (IHDR) then claims width x height: a few hundred bytes."""
    import struct
    import zlib

    from PIL import Image

    Image.new("RGB", (4, 4)).save(path)
    data = bytearray(path.read_bytes())
    data[16:24] = struct.pack(">II", width, height)
    data[29:33] = struct.pack(">I", zlib.crc32(bytes(data[12:29])))
    path.write_bytes(bytes(data))
    return path


def test_16_bit_grey_png_keeps_its_values(tmp_path):
    """convert("RGB") clipped 16-bit grey to white: environment maps and compare inputs read white."""
    from PIL import Image

    Image.fromarray(np.full((3, 5), 16384, np.uint16)).save(tmp_path / "grey16.png")
    assert Image.open(tmp_path / "grey16.png").mode.startswith("I")
    rgb = read_image(tmp_path / "grey16.png")
    assert rgb.shape == (3, 5, 3)
    np.testing.assert_allclose(rgb, srgb_decode(np.float64(16384 / 65535)), rtol=1e-5)

    from neumat.renderer.images.io import read_rgba  # the material image node's view: stored values, alpha

    np.testing.assert_allclose(read_rgba(tmp_path / "grey16.png", srgb=False), [[[16384 / 65535] * 3 + [1.0]] * 5] * 3,
                               rtol=1e-6)


def test_a_png_claiming_a_huge_size_is_one_clear_error(tmp_path, capsys):
    """100000 x 100000 ended in Pillow's DecompressionBombError traceback (environments, compare)."""
    from neumat.cli import main

    bomb = png_claiming(tmp_path / "bomb.png", 100000, 100000)
    with pytest.raises(NeumatError, match=r"bomb.png: the image claims 100000x100000 pixels"):
        read_image(bomb)
    write_image(tmp_path / "ok.png", np.zeros((4, 4, 3), np.float32))
    assert main(["compare", str(bomb), str(tmp_path / "ok.png"), "-o", str(tmp_path / "out")]) == 2
    err = capsys.readouterr().err
    assert "claims 100000x100000" in err and "Traceback" not in err and not (tmp_path / "out").exists()


def test_a_png_claiming_a_size_between_our_limit_and_pillows_is_refused(tmp_path):
    bomb = png_claiming(tmp_path / "big.png", 12000, 12000)  # 144 M pixels: Pillow only warns
    with pytest.raises(NeumatError, match="claims 12000x12000"):
        read_image(bomb)


def test_existing_folder_as_output_fails_before_writing(tmp_path):
    (tmp_path / "out.png").mkdir()
    with pytest.raises(NeumatError, match="out.png: is a folder"):
        write_image(tmp_path / "out.png", np.zeros((2, 2, 3), np.float32))
    assert [p.name for p in tmp_path.iterdir()] == ["out.png"] and not any((tmp_path / "out.png").iterdir())


def test_the_material_image_node_reads_through_the_same_reader(tmp_path):
    from neumat.renderer.materials.graph import load_material

    png_claiming(tmp_path / "bomb.png", 100000, 100000)
    (tmp_path / "m.toml").write_text('[material]\nname = "m"\n[nodes.img]\ntype = "image"\nfile = "bomb.png"\n'
                                     '[[layers]]\ntype = "diffuse"\nalbedo = "img"\n')
    with pytest.raises(NeumatError, match=r"^m.toml: nodes.img.file: .*bomb.png: the image claims 100000x100000"):
        load_material(tmp_path / "m.toml")
