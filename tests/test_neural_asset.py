"""The neural asset format (renderer/neural/asset.py, docs/assets.md) and its writer and
reader in training/export.py: exact save -> load round trips, the documented layout read with numpy
alone, one named error per kind of damage, and saves that never leave half-written assets."""

import json
import os
import shutil
from pathlib import Path

import numpy as np
import pytest
import torch

from neumat.renderer.core.errors import NeumatError
from neumat.renderer.neural.asset import (
    ASSET_FORMAT_VERSION, MANIFEST_NAME, file_sha256, latents_file, load_asset, weights_file)
from neumat.training import export
from neumat.training.export import load_model, save_asset
from neumat.training.model import NeuralMaterial, NeuralMaterialConfig




@pytest.fixture(scope="module")
def material(tiny_material):
    return tiny_material


def trained_like(resolution: int = 16, seed: int = 0, **config) -> NeuralMaterial:
    """A model whose every parameter is random and non-trivial (the frames start at zero otherwise)."""
    torch.manual_seed(seed)
    model = NeuralMaterial(NeuralMaterialConfig(resolution=resolution, **config))
    with torch.no_grad():
        for p in model.parameters():
            p.copy_(torch.randn_like(p) * 0.3)
    return model


def save(tmp_path: Path, material, model=None, **kw) -> Path:
    return save_asset(tmp_path / "tiny.neumat", model or trained_like(), material,
                      kw.get("training", {"iterations": 3, "lr": 1e-3}),
                      kw.get("metrics", {"flip_mean": 0.05, "psnr_db": float("inf")}),
                      kw.get("timings", {"train_s": 1.5}))


def same_parameters(a: NeuralMaterial, b: NeuralMaterial) -> bool:
    sa, sb = a.state_dict(), b.state_dict()
    return list(sa) == list(sb) and all(torch.equal(sa[k], sb[k]) for k in sa)


# --- round trip -----------------------------------------------------------------------------------

@pytest.mark.parametrize("config", [{}, {"evaluator": "3x64", "use_frames": False}, {"evaluator": "2x16"}])
def test_round_trip_is_exact(tmp_path, material, config):
    model = trained_like(**config)
    path = save(tmp_path, material, model)
    asset = load_asset(path, expect_source_hash=material.source_hash)
    loaded = load_model(asset)
    assert same_parameters(model, loaded)
    for lvl, (tex, arr16, arr32) in enumerate(zip(model.latents.levels, asset.latents_fp16, asset.latents_fp32)):
        assert np.array_equal(arr32, tex.detach().permute(1, 2, 0).numpy())
        assert np.array_equal(arr16.view(np.uint16), model.latents.export_fp16()[lvl].view(np.uint16))
    # Identical outputs: eval at stochastic lods, pdf, sample (same generator seeds).
    n = 512
    g = torch.Generator().manual_seed(7)
    uv, lod = torch.rand(n, 2, generator=g), torch.rand(n, generator=g) * 4
    wi = torch.nn.functional.normalize(torch.randn(n, 3, generator=g).abs() + 0.1, dim=-1)
    wo = torch.nn.functional.normalize(torch.randn(n, 3, generator=g).abs() + 0.1, dim=-1)
    u = torch.rand(n, 3, generator=g)
    with torch.no_grad():
        outs = [(m.evaluate(uv, lod, wi, wo, torch.Generator().manual_seed(1)),
                 m.pdf(uv, lod, wi, wo, torch.Generator().manual_seed(2)),
                 *m.sample(uv, lod, wi, u, torch.Generator().manual_seed(3))) for m in (model, loaded)]
    for a, b in zip(*outs):
        assert torch.equal(a, b)
    assert asset.use_frames == config.get("use_frames", True)
    assert asset.evaluator == config.get("evaluator", "2x32")
    assert set(asset.networks) == ({"frames"} if asset.use_frames else set()) | {"evaluator", "sampler"}


def test_manifest_records_the_bake(tmp_path, material):
    path = save(tmp_path, material)
    doc = json.loads((path / MANIFEST_NAME).read_text())
    assert doc["format_version"] == ASSET_FORMAT_VERSION
    assert doc["name"] == "tiny" and doc["source_hash"] == material.source_hash
    assert doc["source"]["parameter_layout"]["layer_types"] == ["diffuse", "dielectric"]
    assert len(doc["source"]["parameter_layout"]["names"]) == material.layout.width
    assert doc["architecture"]["levels"] == [[16 >> l, 16 >> l, 8] for l in range(5)]
    assert doc["architecture"]["encoder"]["dropped"] is True
    assert doc["training"] == {"iterations": 3, "lr": 1e-3}
    assert doc["metrics"]["psnr_db"] == "inf"  # strict JSON: infinities as strings
    assert doc["timings"] == {"train_s": 1.5}
    on_disk = {p.name for p in path.iterdir()}
    assert on_disk == set(doc["files"]) | {MANIFEST_NAME}
    assert doc["sizes"]["files_bytes"] == sum(os.path.getsize(path / f) for f in doc["files"])
    assert doc["sizes"]["weights_fp16_bytes"] == 2 * sum(n["size"] for n in doc["networks"].values())
    assert doc["sizes"]["latents_fp16_bytes"] == 2 * 8 * sum((16 >> l) ** 2 for l in range(5))


def test_layout_readable_with_numpy_alone(tmp_path, material):
    """docs/assets.md, "Reading an asset with numpy alone": the evaluator and the frames run from the .npy files and the
    manifest's offsets, without neumat, match the torch model."""
    model = trained_like()
    path = save(tmp_path, material, model)
    doc = json.loads((path / MANIFEST_NAME).read_text())

    def mlp(network: str, x: np.ndarray) -> np.ndarray:
        net = doc["networks"][network]
        flat = np.load(path / net["fp32"]).astype(np.float64)
        for layer in net["layers"]:
            n_in, n_out, w0 = layer["inputs"], layer["outputs"], layer["weight_offset"]
            w = flat[w0:w0 + n_out * n_in].reshape(n_out, n_in)  # W[o, i] at w0 + o * in + i
            x = x @ w.T
            if layer["bias_offset"] is not None:
                x = x + flat[layer["bias_offset"]:layer["bias_offset"] + n_out]
            if layer["activation"] == "relu":
                x = np.maximum(x, 0)
        return x

    level0 = np.load(path / doc["latents"]["levels"][0]["fp32"])  # [h, w, C], row = v
    rng = np.random.default_rng(0)
    rows, cols = rng.integers(0, 16, 64), rng.integers(0, 16, 64)
    latent = level0[rows, cols].astype(np.float64)
    wi = np.tile([[0.0, 0.6, 0.8]], (64, 1))
    wo = np.tile([[0.6, 0.0, 0.8]], (64, 1))
    raw = mlp("frames", latent)
    feats = []
    for k in (0, 6):
        n = raw[:, k:k + 3] + [0, 0, 1]
        n /= np.linalg.norm(n, axis=-1, keepdims=True)
        t = raw[:, k + 3:k + 6] + [1, 0, 0]
        t -= np.sum(t * n, -1, keepdims=True) * n
        t /= np.linalg.norm(t, axis=-1, keepdims=True)
        b = np.cross(n, t)
        feats += [np.sum(w * axis, -1) for w in (wi, wo) for axis in (t, b, n)]
    f = np.exp(mlp("evaluator", np.concatenate([np.stack(feats, -1), latent], -1)) - 3.0)

    uv = np.stack([(cols + 0.5) / 16, (rows + 0.5) / 16], -1)
    with torch.no_grad():
        expected = model.evaluate(torch.tensor(uv, dtype=torch.float32), torch.zeros(64),
                                  torch.tensor(wi, dtype=torch.float32), torch.tensor(wo, dtype=torch.float32))
    np.testing.assert_allclose(f, expected.numpy(), rtol=1e-4)


def test_load_model_keeps_the_callers_rng(tmp_path, material):
    asset = load_asset(save(tmp_path, material))
    state = torch.get_rng_state()
    load_model(asset)
    assert torch.equal(state, torch.get_rng_state())


# --- damaged assets -------------------------------------------------------------------------------

def edit_manifest(path: Path, change) -> None:
    doc = json.loads((path / MANIFEST_NAME).read_text())
    change(doc)
    (path / MANIFEST_NAME).write_text(json.dumps(doc))


def rewrite_array(path: Path, file: str, array: np.ndarray, update_hash: bool = True) -> None:
    np.save(path / file, array)
    if update_hash:
        edit_manifest(path, lambda d: d["files"][file].update(sha256=file_sha256(path / file)))


def _newer_version(doc):
    doc["format_version"] = ASSET_FORMAT_VERSION + 2


def _offset_gap(doc):
    doc["networks"]["evaluator"]["layers"][1]["weight_offset"] += 1


def _wrong_levels(doc):
    doc["architecture"]["levels"][2] = [4, 4, 4]


def _missing_key(doc):
    del doc["architecture"]["latent_channels"]


def _wrong_type(doc):
    doc["architecture"]["resolution"] = "16"


DAMAGE = {
    "newer version": (lambda p: edit_manifest(p, _newer_version),
                      f"tiny.neumat/manifest.json: format_version: {ASSET_FORMAT_VERSION + 2} is newer than this "
                      f"neumat ({ASSET_FORMAT_VERSION})"),
    "corrupt JSON": (lambda p: (p / MANIFEST_NAME).write_text('{"format": "neumat-neural-material", "format_'),
                     "tiny.neumat/manifest.json: not valid JSON (line 1"),
    "missing manifest": (lambda p: (p / MANIFEST_NAME).unlink(), "tiny.neumat/manifest.json: missing"),
    "not an asset": (lambda p: edit_manifest(p, lambda d: d.update(format="something-else")),
                     "tiny.neumat/manifest.json: format: expected 'neumat-neural-material'"),
    "missing key": (lambda p: edit_manifest(p, _missing_key),
                    "tiny.neumat/manifest.json: architecture.latent_channels: missing"),
    "wrong type": (lambda p: edit_manifest(p, _wrong_type),
                   'tiny.neumat/manifest.json: architecture.resolution: must be int, got "16"'),
    "offset gap": (lambda p: edit_manifest(p, _offset_gap),
                   "tiny.neumat/manifest.json: networks.evaluator.layers.1.weight_offset: 673 leaves a gap"),
    "levels": (lambda p: edit_manifest(p, _wrong_levels), "tiny.neumat/manifest.json: architecture.levels:"),
    "missing file": (lambda p: (p / weights_file("sampler", "fp16")).unlink(),
                     "tiny.neumat/sampler_fp16.npy: missing"),
    "wrong shape": (lambda p: rewrite_array(p, latents_file(0, "fp16"), np.zeros((16, 16, 4), np.float16)),
                    "tiny.neumat/latents_fp16_level0.npy: shape: (16, 16, 4) != manifest (16, 16, 8)"),
    "wrong dtype": (lambda p: rewrite_array(p, latents_file(1, "fp32"), np.zeros((8, 8, 8), np.float64)),
                    "tiny.neumat/latents_fp32_level1.npy: dtype: <f8 != manifest float32"),
    # A header that claims 4e12 elements: np.load allocated 16 TB (a MemoryError traceback).
    "huge header": (lambda p: _npy_header_only(p / weights_file("evaluator", "fp32"), (4_000_000_000_000,)),
                    "tiny.neumat/evaluator_fp32.npy: shape: (4000000000000,) != manifest"),
    "truncated": (lambda p: _truncate(p / weights_file("sampler", "fp32")),
                  "tiny.neumat/sampler_fp32.npy: "),
    "not npy": (lambda p: (p / weights_file("evaluator", "fp32")).write_bytes(b"garbage"),
                "tiny.neumat/evaluator_fp32.npy: not a readable .npy array"),
    "non-finite weights": (lambda p: rewrite_array(p, weights_file("evaluator", "fp32"), _with_nan(p)),
                           "tiny.neumat/evaluator_fp32.npy: values: 1 non-finite values (NaN or infinity), "
                           "the first at index [5]"),
    "changed values": (lambda p: rewrite_array(p, weights_file("sampler", "fp32"), _shifted(p), update_hash=False),
                       "tiny.neumat/sampler_fp32.npy: sha256:"),
    "fp16 not the rounding": (lambda p: rewrite_array(p, weights_file("frames", "fp16"), _frames16_shifted(p)),
                              "tiny.neumat/frames_fp16.npy: values: not frames_fp32.npy rounded to float16"),
}


def _npy_header_only(path: Path, shape: tuple[int, ...]) -> None:
    with open(path, "wb") as f:
        np.lib.format.write_array_header_1_0(f, {"descr": "<f4", "fortran_order": False, "shape": shape})


def _truncate(path: Path) -> None:
    data = path.read_bytes()
    path.write_bytes(data[:-8])


def _with_nan(p: Path) -> np.ndarray:
    a = np.load(p / weights_file("evaluator", "fp32"))
    a[5] = np.nan
    return a


def _shifted(p: Path) -> np.ndarray:
    return np.load(p / weights_file("sampler", "fp32")) + np.float32(1e-3)


def _frames16_shifted(p: Path) -> np.ndarray:
    a = np.load(p / weights_file("frames", "fp16"))
    a[0] += np.float16(0.5)
    return a


@pytest.fixture(scope="module")
def pristine(tmp_path_factory, material):
    return save(tmp_path_factory.mktemp("pristine"), material)


@pytest.mark.parametrize("kind", list(DAMAGE))
def test_damage_is_one_named_error(tmp_path, pristine, kind):
    path = tmp_path / "tiny.neumat"
    shutil.copytree(pristine, path)
    damage, message = DAMAGE[kind]
    damage(path)
    with pytest.raises(NeumatError) as exc:
        load_asset(path)
    assert str(exc.value).startswith(message), str(exc.value)


def test_source_hash_mismatch(pristine, material):
    assert load_asset(pristine, expect_source_hash=material.source_hash).source_hash == material.source_hash
    with pytest.raises(NeumatError, match=r"^tiny\.neumat/manifest\.json: source_hash: the asset was baked from "
                                          r"another version of the material"):
        load_asset(pristine, expect_source_hash="0" * 64)


def test_not_a_directory(tmp_path):
    with pytest.raises(NeumatError, match="no such neural asset"):
        load_asset(tmp_path / "nothing.neumat")


# --- saving ---------------------------------------------------------------------------------------

def leftovers(parent: Path) -> list[str]:
    return sorted(p.name for p in parent.iterdir() if p.name.startswith("."))


class Interrupt(KeyboardInterrupt):
    pass


def interrupt_after(monkeypatch, count: int) -> None:
    written = []
    original = export._write_array

    def write(path, array):
        if len(written) == count:
            raise Interrupt()
        written.append(path)
        original(path, array)

    monkeypatch.setattr(export, "_write_array", write)


def test_interrupted_save_leaves_nothing(tmp_path, material, monkeypatch):
    interrupt_after(monkeypatch, 4)
    with pytest.raises(Interrupt):
        save(tmp_path, material)
    assert list(tmp_path.iterdir()) == []


def test_interrupted_save_keeps_the_old_asset(tmp_path, material, monkeypatch):
    old = save(tmp_path, material, trained_like(seed=1))
    before = {p.name: p.read_bytes() for p in old.iterdir()}
    interrupt_after(monkeypatch, 7)
    with pytest.raises(Interrupt):
        save(tmp_path, material, trained_like(seed=2))
    assert {p.name: p.read_bytes() for p in old.iterdir()} == before
    assert leftovers(tmp_path) == []


def test_save_replaces_an_asset(tmp_path, material):
    save(tmp_path, material, trained_like(seed=1))
    second = trained_like(seed=2, evaluator="2x16")
    path = save(tmp_path, material, second)
    assert same_parameters(load_model(load_asset(path)), second)
    assert leftovers(tmp_path) == [] and [p.name for p in tmp_path.iterdir()] == ["tiny.neumat"]


def test_save_into_a_folder_names_the_asset(tmp_path, material):
    path = save_asset(tmp_path, trained_like(), material, {}, {}, {})
    assert path == tmp_path / "tiny.neumat" and (path / MANIFEST_NAME).is_file()
    umask = os.umask(0)
    os.umask(umask)
    assert path.stat().st_mode & 0o777 == 0o777 & ~umask  # not the temporary directory's 0700


def test_save_refuses_bad_targets(tmp_path, material):
    other = tmp_path / "tiny.neumat"
    other.mkdir()
    (other / "notes.txt").write_text("mine")
    with pytest.raises(NeumatError, match="exists and is not a neural asset"):
        save(tmp_path, material)
    assert (other / "notes.txt").read_text() == "mine"
    with pytest.raises(NeumatError, match="does not exist"):
        save_asset(tmp_path / "missing" / "x.neumat", trained_like(), material, {}, {}, {})


@pytest.mark.parametrize("value, message", [(float("nan"), "not finite"), (1e6, "exceeds float16's range")])
def test_save_refuses_unexportable_models(tmp_path, material, value, message):
    model = trained_like()
    with torch.no_grad():
        model.evaluator.mlp.layers[0].weight[0, 0] = value
    with pytest.raises(NeumatError, match=f"^evaluator: .*{message}"):
        save(tmp_path, material, model)
    assert list(tmp_path.iterdir()) == []


def test_save_refuses_unstorable_metadata(tmp_path, material):
    with pytest.raises(TypeError, match=r"training\.when"):
        save(tmp_path, material, training={"when": object()})
    assert list(tmp_path.iterdir()) == []
