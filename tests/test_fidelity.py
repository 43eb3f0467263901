"""`neumat compare --material` (renderer/compare/fidelity.py, fidelity_views.py, reference_cache.py): bad
input, the reference cache's key and files, and a tiny material measured on two views, cold and
then from the cache."""

import json
import re
import shutil

import numpy as np
import pytest

import neumat.renderer.compare.reference_cache as reference_cache
from conftest import TINY_MATERIAL_TOML
from neumat.cli import main
from neumat.renderer.compare.views import SHAPES, VIEWS
from neumat.renderer.images.io import read_image
from neumat.renderer.compare.reference_cache import ReferenceCache, reference_key
from scene_helpers import tiny_asset

TINY_RUN = ["--size", "16", "--views", "2", "--reference-max-spp", "64", "--spp", "16"]


@pytest.fixture(scope="module")
def tiny(tmp_path_factory):
    """A folder with the tiny material and an untrained asset of it (random weights: a wrong
    neural material, so its FLIP is well above the reference's noise)."""
    folder = tmp_path_factory.mktemp("fidelity")
    (folder / "tiny.toml").write_text(TINY_MATERIAL_TOML)
    tiny_asset(folder / "tiny.neumat", folder / "tiny.toml", 1)
    return folder


def test_views_are_distinct_and_name_their_shapes():
    assert len({v.name for v in VIEWS}) == len(VIEWS) == 5
    assert all(v.shape in SHAPES for v in VIEWS) and {v.shape for v in VIEWS} == set(SHAPES)
    assert len({json.dumps(v.key(), sort_keys=True) for v in VIEWS}) == len(VIEWS)


@pytest.mark.parametrize("case, message", [
    ("no source", r"cannot find the material it was baked from, tiny\.toml; tried .*elsewhere.*tiny\.toml.*"
                  r"point at it with --source FILE\.toml"),
    ("missing --source", r"--source .*nope\.toml: no such material file"),
    ("stale", r"tiny\.neumat is stale: it was baked from another version of .*tiny\.toml .*rebake it with "
              r"`neumat bake"),
    ("views 0", r"--views must be 1 to 5 \(the fixed views: ball, tile_closeup, .*\), got 0"),
    ("views 9", r"--views must be 1 to 5 .*got 9"),
    ("scene too", r"--material takes no scene or images"),
    ("budget", r"--reference-minutes and --neural-minutes must be > 0"),
    ("size", r"--size must be 8 to 2048 pixels, got 4"),
    ("record", r"--record: .*tiny\.neumat/report/report\.json does not exist"),
])
def test_bad_input_is_one_error_and_writes_nothing(tiny, tmp_path, capsys, case, message):
    asset = tiny / "tiny.neumat"
    args = ["compare", "--material", str(asset), "-o", str(tmp_path / "out"), "--reference-cache",
            str(tmp_path / "cache")]
    if case == "no source":
        shutil.copytree(asset, tmp_path / "elsewhere" / "tiny.neumat")
        args[2] = str(tmp_path / "elsewhere" / "tiny.neumat")
    elif case == "missing --source":
        args += ["--source", str(tmp_path / "nope.toml")]
    elif case == "stale":
        (tmp_path / "tiny.toml").write_text(TINY_MATERIAL_TOML.replace("0.3", "0.35"))
        args += ["--source", str(tmp_path / "tiny.toml")]
    elif case.startswith("views"):
        args += ["--views", case.split()[1]]
    elif case == "budget":
        args += ["--neural-minutes", "0"]
    elif case == "size":
        args += ["--size", "4"]
    elif case == "record":
        args += ["--record"]
    else:
        args.insert(1, "stage")
    assert main(args) == 2
    err = capsys.readouterr().err
    assert err.count("error:") == 1 and re.search(message, err), err
    assert not (tmp_path / "out").exists() and not (tmp_path / "cache").exists()


def test_reference_key_covers_material_view_size_and_renderer(tmp_path, monkeypatch):
    view = VIEWS[0].key()
    base = reference_key("a" * 64, view, 128, {"max_depth": 8})
    assert base == reference_key("a" * 64, view, 128, {"max_depth": 8})
    others = [reference_key("b" * 64, view, 128, {"max_depth": 8}), reference_key("a" * 64, VIEWS[1].key(), 128,
              {"max_depth": 8}), reference_key("a" * 64, view, 64, {"max_depth": 8}),
              reference_key("a" * 64, view, 128, {"max_depth": 4})]
    assert len({base, *others}) == 5
    # A change to any reference shader source changes the fingerprint, hence every key.
    (tmp_path / "shaders" / "materials").mkdir(parents=True)
    layered = tmp_path / "shaders" / "materials" / "layered.slang"
    layered.write_text("// v1")
    monkeypatch.setattr(reference_cache, "REPO_ROOT", tmp_path)
    monkeypatch.setattr(reference_cache, "_FINGERPRINTED", ("shaders/materials",))
    reference_cache.renderer_fingerprint.cache_clear()
    try:
        first = reference_cache.renderer_fingerprint()
        reference_cache.renderer_fingerprint.cache_clear()
        layered.write_text("// v2: less noise, same mean")
        assert reference_cache.renderer_fingerprint() != first
    finally:
        reference_cache.renderer_fingerprint.cache_clear()


def test_cache_entries_round_trip_and_unreadable_ones_are_misses(tmp_path):
    cache = ReferenceCache(tmp_path / "cache")
    image = np.random.default_rng(0).uniform(0, 2, (4, 5, 3)).astype(np.float32)
    record = {"spp": 64, "seconds": 1.5, "noise_flip": 0.02, "stopped": "target"}
    assert cache.load("k") is None
    path = cache.store("k", image, record)
    got, rec, halves = cache.load("k")
    np.testing.assert_array_equal(got, image)
    assert halves is None  # an entry written without its halves (as before they were kept)
    assert rec == record and [p.name for p in path.parent.iterdir()] == ["k.npz"]  # no temporary file left
    cache.store("k", image, record, (image * 0.5, image * 1.5))
    _, _, (a, b) = cache.load("k")
    np.testing.assert_array_equal(a, image * 0.5)
    np.testing.assert_array_equal(b, image * 1.5)
    path.write_bytes(b"truncated")
    assert cache.load("k") is None


def _noisy_side(base: np.ndarray, scale: float, seed: int):
    """A side whose two halves are `scale` x base with 30 % independent Gaussian noise per pixel."""
    from neumat.renderer.compare.fidelity import Halves

    rng = np.random.default_rng(seed)
    a, b = ((base * scale * (1 + 0.3 * rng.standard_normal(base.shape))).astype(np.float32) for _ in range(2))
    return Halves(0.5 * (a + b), 2, 0.0, 0.0, "fixed spp", halves=(a, b))


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_the_noise_floor_reads_what_noise_alone_gives(seed):
    """A perfect neural side measures its noise floor (the two are equal in distribution: within 10 %,
    they differed by 2 % over these seeds); one 30 % too bright measures far above it (1.5x), so a FLIP
    near the floor is noise and a FLIP well above it is the material's error."""
    from neumat.renderer.compare.fidelity import noise_floor
    from neumat.renderer.images.metrics import flip_error

    y, x = np.mgrid[0:64, 0:64] / 64.0
    base = np.stack([0.2 + 0.3 * x, 0.3 + 0.2 * y, 0.4 + 0.1 * x * y], -1).astype(np.float32)
    ref = _noisy_side(base, 1.0, seed)
    for scale, low, high in ((1.0, 0.9, 1.1), (1.3, 1.3, np.inf)):
        neural = _noisy_side(base, scale, seed + 10)
        measured = flip_error(ref.image, neural.image, magma=False)[1]
        floor = noise_floor(ref, neural)
        assert low < measured / floor < high, (scale, measured, floor)
    ref.halves = None  # a reference cached before the halves were kept
    assert noise_floor(ref, neural) is None


def test_record_adds_the_fidelity_to_the_bake_report(tmp_path):
    """--record writes render_mean_flip and the per-view numbers into report.json and keeps every
    other key; a file that is not a bake report is one error naming it, and is left alone."""
    from neumat.renderer.compare.fidelity import record_in_report
    from neumat.renderer.core.errors import NeumatError

    report = tmp_path / "report.json"
    report.write_text(json.dumps({"format": "neumat-bake-report", "format_version": 1, "metrics": {"flip_mean": 0.1}}))
    summary = {"mean_flip": 0.05, "mean_psnr_db": 30.0, "views": [{"name": "ball", "flip": 0.04},
                                                                  {"name": "tile_far", "flip": 0.06}],
               "reference_noise_flip_mean": 0.01, "neural_noise_flip_mean": 0.02, "device": "lavapipe",
               "size": [128, 128], "reference_sampling": {}, "neural_sampling": {}}
    record_in_report(report, summary)
    data = json.loads(report.read_text())
    assert data["render_mean_flip"] == 0.05 and data["metrics"] == {"flip_mean": 0.1}
    assert data["render_fidelity"]["views"] == {"ball": 0.04, "tile_far": 0.06}
    other = tmp_path / "other.json"
    other.write_text('{"format": "something else"}')
    with pytest.raises(NeumatError, match=r"other\.json: format: not a neumat bake report"):
        record_in_report(other, summary)
    assert json.loads(other.read_text()) == {"format": "something else"}


@pytest.mark.slow
@pytest.mark.gpu("ray_tracing", "acceleration_structure")
def test_measures_the_views_then_reuses_the_cached_reference(tiny, tmp_path, capsys):
    cache = tmp_path / "cache"
    args = ["compare", "--material", str(tiny / "tiny.neumat"), "--reference-cache", str(cache)] + TINY_RUN
    assert main(args + ["-o", str(tmp_path / "cold")]) == 0
    cold_log = capsys.readouterr().err
    data = json.loads((tmp_path / "cold" / "metrics.json").read_text())
    assert {"views", "mean_flip", "reference_noise_flip", "neural_noise_flip"} <= set(data)
    assert [v["name"] for v in data["views"]] == ["ball", "tile_closeup"]
    for v in data["views"]:
        assert 0 < v["reference"]["spp"] <= 64 and v["neural"]["spp"] == 16 and not v["reference"]["cached"]
        assert v["neural"]["stopped"] == "fixed spp" and 0 < v["coverage"] <= 1
        # The reference against itself (two seeds) is far closer than the untrained network is.
        assert v["reference"]["noise_flip"] < v["flip_material_pixels"] / 2, v
        assert 0 < v["noise_floor_flip"] < v["flip"] / 2, v
    assert data["noise_floor_flip_mean"] == pytest.approx(np.mean([v["noise_floor_flip"] for v in data["views"]]))
    assert data["mean_flip"] == pytest.approx(np.mean([v["flip"] for v in data["views"]]))
    assert data["reference_noise_flip"] == max(v["reference"]["noise_flip"] for v in data["views"])
    assert data["neural_sampling"] == {"rule": "fixed spp", "spp": 16}
    names = {p.name for p in (tmp_path / "cold").iterdir()}
    assert {"metrics.json", "report.html", "views.png", "ball.png", "ball_reference.exr", "ball_neural.exr"} <= names
    assert "ball reference: " in cold_log and len(list(cache.glob("*.npz"))) == 2

    # The warm run on the buffer MLP path (the same network; its frames agree with the loop's to 1e-3).
    assert main(args + ["-o", str(tmp_path / "warm"), "--mlp", "buffer"]) == 0
    warm_log = capsys.readouterr().err
    warm = json.loads((tmp_path / "warm" / "metrics.json").read_text())
    assert data["mlp"] in ("loop", "coopvec") and warm["mlp"] == "buffer"
    for cold_view, warm_view in zip(data["views"], warm["views"]):
        assert warm_view["flip"] == pytest.approx(cold_view["flip"], abs=0.01)
        assert warm_view["noise_floor_flip"] is not None  # the cached reference kept its halves
    assert all(v["reference"]["cached"] for v in warm["views"]) and warm["seconds"]["reference"] == 0
    assert "reference: " not in warm_log.replace("reference from the cache", "") and "neural: " in warm_log
    for name in ("ball", "tile_closeup"):
        np.testing.assert_array_equal(read_image(tmp_path / "warm" / f"{name}_reference.exr"),
                                      read_image(tmp_path / "cold" / f"{name}_reference.exr"))
