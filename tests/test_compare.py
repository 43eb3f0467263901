"""`neumat compare` and renderer/compare/comparison.py: metrics of known images, the per-material breakdown,
the report files, bad input, and a small scene rendered both ways."""

import json
import math
import re
from html.parser import HTMLParser

import numpy as np
import pytest

import neumat.renderer.scene.scene_file as scene_module
from neumat.cli import main
from neumat.renderer.compare.comparison import BACKGROUND, checked_image, error_maps, metrics, worst_crop
from neumat.renderer.images.io import read_image, write_image
from scene_helpers import diffuse, scene, tiny_asset, two_spheres


def images(seed: int = 0, size=(40, 60)) -> np.ndarray:
    rng = np.random.default_rng(seed)
    return rng.uniform(0.02, 1.5, size + (3,)).astype(np.float32)


def test_identical_images_give_zero_flip_and_infinite_psnr():
    a = images()
    m = metrics(error_maps(a, a))["image"]
    assert m["flip"] == 0.0 and m["psnr_db"] == math.inf and m["relative_mse"] == 0.0


def test_relative_mse_of_a_known_scaling_and_flip_grows_with_it():
    a = images()
    small, large = (metrics(error_maps(a, a * s))["image"] for s in (1.05, 1.5))
    t = a.astype(np.float64)
    expect = np.mean((0.05 * t) ** 2 / (t * t + 0.01))
    assert small["relative_mse"] == pytest.approx(expect, rel=1e-5)
    assert 0 < small["flip"] < large["flip"] < 1 and small["psnr_db"] > large["psnr_db"]


def test_per_material_breakdown_is_consistent_with_the_whole_image():
    a, b = images(1), images(2)
    ids = np.full(a.shape[:2], -1.0, np.float32)
    ids[:, 10:30] = 0
    ids[:, 30:] = 2  # material 2 ("c"); ids 0 and 1 share the name "a": one group
    ids[:20, 40:] = 1
    ids[0, 0] = 7  # an id with no name counts as background
    maps = error_maps(a, b)
    m = metrics(maps, ids, ["a", "a", "c"])
    assert set(m["materials"]) == {"a", "c", BACKGROUND}
    groups = m["materials"].values()
    assert sum(g["pixels"] for g in groups) == m["image"]["pixels"] == a.shape[0] * a.shape[1]
    for key in ("flip", "relative_mse", "display_mse"):
        weighted = sum(g[key] * g["pixels"] for g in groups) / m["image"]["pixels"]
        assert weighted == pytest.approx(m["image"][key], rel=1e-6), key
    assert m["materials"]["c"]["pixels"] == 40 * 30 - 20 * 20
    assert m["materials"][BACKGROUND]["flip"] == pytest.approx(float(maps.flip[ids == -1].sum() + maps.flip[0, 0])
                                                               / (np.sum(ids == -1) + 1), rel=1e-5)


def test_non_finite_and_negative_pixels_are_fixed_with_a_warning():
    a = images()
    a[0, 0, 1] = np.nan
    a[1, 1] = np.inf
    a[2, 2, 0] = -0.5
    c = checked_image("a.exr", a)
    assert np.all(np.isfinite(c.image)) and c.image.min() >= 0
    assert c.warnings == ["a.exr: 2 pixel(s) with non-finite values were zeroed",
                          "a.exr: 1 pixel(s) with negative values were clamped to 0"]


def test_worst_crop_finds_the_bad_region():
    flip = np.zeros((100, 150), np.float32)
    flip[60:80, 100:120] = 1.0
    y, x, side = worst_crop(flip)
    assert side == 20 and 50 <= y <= 60 and 90 <= x <= 100


class _Images(HTMLParser):
    def __init__(self):
        super().__init__()
        self.sources, self.tags = [], []

    def handle_starttag(self, tag, attrs):
        self.tags.append(tag)
        if tag == "img":
            self.sources.append(dict(attrs)["src"])


def read_html(path):
    parser = _Images()
    text = path.read_text()
    parser.feed(text)
    parser.close()
    return text, parser


def test_two_images_report_and_exit_codes(tmp_path, capsys):
    a, b = images(3), images(3) * 1.2
    write_image(tmp_path / "a.exr", a)
    write_image(tmp_path / "b.exr", b)
    out = tmp_path / "cmp"
    assert main(["compare", str(tmp_path / "a.exr"), str(tmp_path / "b.exr"), "-o", str(out)]) == 0
    names = {p.name for p in out.iterdir()}
    assert names == {"reference.exr", "reference.png", "test.exr", "test.png", "flip.png", "side_by_side.png",
                     "metrics.json", "report.html"}
    np.testing.assert_array_equal(read_image(out / "test.exr"), b)
    data = json.loads((out / "metrics.json").read_text())
    assert data["image"]["flip"] == pytest.approx(metrics(error_maps(a, b))["image"]["flip"], rel=1e-6)
    assert data["passed"] and data["materials"] == {}
    text, html = read_html(out / "report.html")
    assert text.startswith("<!DOCTYPE html>") and html.tags.count("table") >= 1
    assert len(html.sources) == 4 and all(s.startswith("data:image/png;base64,") for s in html.sources)
    assert "FLIP" in capsys.readouterr().out
    # A CI gate: exit 1 above --max-flip, and the report says FAIL.
    flip = data["image"]["flip"]
    assert main(["compare", str(tmp_path / "a.exr"), str(tmp_path / "b.exr"), "-o", str(out),
                 "--max-flip", f"{flip / 2}"]) == 1
    assert "FAIL" in (out / "report.html").read_text() and not json.loads((out / "metrics.json").read_text())["passed"]
    # Identical images: PSNR infinite, written as null in JSON.
    assert main(["compare", str(tmp_path / "a.exr"), str(tmp_path / "a.exr"), "-o", str(tmp_path / "same")]) == 0
    same = json.loads((tmp_path / "same" / "metrics.json").read_text())
    assert same["image"]["flip"] == 0 and same["image"]["psnr_db"] is None


@pytest.mark.parametrize("case, message", [
    ("size", r"differ in size: .*a\.exr is 60x40, .*small\.exr is 30x20"),
    ("missing", r"nope\.exr: no such file"),
    ("corrupt", r"broken\.exr: cannot read the image"),
    ("one image", r"needs a second one"),
    ("max flip", r"--max-flip must be in \[0, 1\]"),
    ("output is a file", r"out: exists and is not a folder"),
])
def test_bad_input_is_one_error_and_writes_nothing(tmp_path, capsys, case, message):
    write_image(tmp_path / "a.exr", images())
    write_image(tmp_path / "small.exr", images(size=(20, 30)))
    (tmp_path / "broken.exr").write_bytes(b"not an exr at all")
    if case == "output is a file":
        (tmp_path / "out").write_text("")
    second = {"size": "small.exr", "missing": "nope.exr", "corrupt": "broken.exr"}.get(case, "a.exr")
    args = ["compare", str(tmp_path / "a.exr")] + ([] if case == "one image" else [str(tmp_path / second)])
    args += ["-o", str(tmp_path / "out")] + (["--max-flip", "3"] if case == "max flip" else [])
    assert main(args) == 2
    err = capsys.readouterr().err
    assert re.search(message, err), err
    assert not (tmp_path / "out").is_dir()


def test_non_finite_pixels_warn_and_compare(tmp_path, capsys):
    a = images()
    b = a.copy()
    b[5, 5] = np.nan
    write_image(tmp_path / "a.exr", a)
    write_image(tmp_path / "b.exr", b)
    assert main(["compare", str(tmp_path / "a.exr"), str(tmp_path / "b.exr"), "-o", str(tmp_path / "o")]) == 0
    assert "b.exr: 1 pixel(s) with non-finite values were zeroed" in capsys.readouterr().err
    assert json.loads((tmp_path / "o" / "metrics.json").read_text())["warnings"]


SCENE = two_spheres((36, 24), '"grey.toml"', render="spp = 4\nmax_depth = 2")


@pytest.mark.gpu("ray_tracing", "acceleration_structure")
def test_scene_compare_renders_both_kinds_and_breaks_down_per_material(tmp_path, monkeypatch, capsys):
    diffuse(tmp_path, "red", (0.8, 0.1, 0.1))
    diffuse(tmp_path, "grey", (0.5, 0.5, 0.5))
    path = scene(tmp_path, SCENE)
    baked = tmp_path / "baked"
    baked.mkdir()
    monkeypatch.setattr(scene_module, "NEURAL_ASSET_DIR", baked)
    # Only grey has a neural asset: compare refuses, naming the object and how to bake it.
    tiny_asset(baked / "grey.neumat", tmp_path / "grey.toml", 1)
    assert main(["compare", str(path), "-o", str(tmp_path / "out")]) == 2
    err = capsys.readouterr().err
    assert "compare needs a neural asset for every material" in err and "left" in err and "neumat bake" in err
    assert not (tmp_path / "out").exists()

    tiny_asset(baked / "red.neumat", tmp_path / "red.toml", 2)
    out = tmp_path / "out"
    assert main(["compare", str(path), "-o", str(out), "--equal-time", "--material-timing-spp", "1"]) == 0
    data = json.loads((out / "metrics.json").read_text())
    assert set(data["materials"]) == {"red", "grey", BACKGROUND}
    # The environment is the same in both; FLIP's spatial filters spread some error over the edges.
    assert data["materials"][BACKGROUND]["flip"] < data["materials"]["red"]["flip"] / 3
    assert data["materials"]["red"]["flip"] > 0.05  # untrained networks are not the materials
    t = data["timings"]
    assert t["reference"]["spp"] == t["neural"]["spp"] == 4 and t["speedup"] > 0
    assert set(t["materials"]) == {"red", "grey"} and all(m["speedup"] > 0 for m in t["materials"].values())
    assert t["equal_time"]["spp"] >= 1 and len(data["extra"]) == 1
    assert {"neural_equal_time.exr", "neural_equal_time.png"} <= {p.name for p in out.iterdir()}
    text, html = read_html(out / "report.html")
    assert "Per material" in text and "reference / neural time" in text and len(html.sources) == 5
    ref, neural = read_image(out / "reference.exr"), read_image(out / "neural.exr")
    assert ref.shape == (24, 36, 3) and np.abs(ref - neural).mean() > 1e-3
    printed = capsys.readouterr().out
    assert re.search(r"red\s+\d+\.\d %\s+\d\.\d{4}", printed), printed
