"""Generated Slang neural materials (renderer/neural/codegen.py, shaders/neural/,
renderer/neural/material.py) against the torch model they were exported from (training/model.py).

Two torch references:
- the model with every weight and latent rounded to fp16 (what the runtime stores), evaluated in
  fp32 like the loop path: agreement to float32 rounding (eval relative 1e-4, pdf relative 1e-3:
  the GGX pdf amplifies rounding near its peak);
- the fp32 master model of training/export.load_model: agreement within fp16 tolerance, i.e. what
  rounding the weights and latents to fp16 (relative 2^-11) does to the outputs (eval: relative
  1e-2 everywhere; pdf: relative 1e-3 for half the queries, 1e-2 for 90%, 0.5 at most: narrow GGX
  lobes (alpha down to 0.003 in these random models) amplify the rounding of their decoded
  parameters; the torch model itself moves that much between fp32 and fp16 weights).

The level pick is stochastic; the parity tests use integer lods (no randomness) and a separate test
checks the pick's frequency at fractional lods. sample() draws its three uniforms after the level
pick's one from RNG.create(seed, i), reproduced here in numpy (PCG32, shaders/common/random.slang).
"""

import logging
import math
import shutil

import numpy as np
import pytest
import slangpy as spy
import torch

from neumat.renderer.core.device_state import device_state
from neumat.renderer.materials.query import query_records
from neumat.renderer.neural import codegen as codegen
from neumat.renderer.core.errors import NeumatError
from neumat.renderer.neural import material as nm
from neumat.renderer.materials.graph import load_material
from neumat.renderer.neural.asset import ASSET_FORMAT_VERSION, load_asset
from neumat.renderer.core.paths import REPO_ROOT, cache_dir
from neumat.training.export import load_model, save_asset
from neumat.training.model import NeuralMaterial as TorchMaterial
from neumat.training.model import NeuralMaterialConfig
from neural_parity import (check_coopvec_against_loop, check_eval_and_pdf_fp16, check_sample, check_set_evaluate,
                           compile_with_slangc, cpu_slang_device, fp16_model, rel, torch_latents)

TINY_TOML = """
[material]
name = "tiny"
resolution = 8

[nodes.check]
type = "checker"
columns = 2
rows = 2

[nodes.albedo]
type = "mix"
a = [0.8, 0.2, 0.1]
b = [0.1, 0.3, 0.7]
factor = "check"

[[layers]]
type = "diffuse"
albedo = "albedo"
"""

RESOLUTION = 8  # 4 levels: 8, 4, 2, 1
N = 4096


def random_model(seed: int, **config) -> TorchMaterial:
    """Every parameter random and non-trivial (frames included: they start at zero otherwise)."""
    torch.manual_seed(seed)
    model = TorchMaterial(NeuralMaterialConfig(resolution=RESOLUTION, **config))
    with torch.no_grad():
        for p in model.parameters():
            p.copy_(torch.randn_like(p) * 0.3)
    return model


@pytest.fixture(scope="module")
def assets(tmp_path_factory):
    root = tmp_path_factory.mktemp("neural")
    (root / "tiny.toml").write_text(TINY_TOML)
    material = load_material(root / "tiny.toml")
    a = save_asset(root / "a.neumat", random_model(11), material, {}, {}, {})
    b = save_asset(root / "b.neumat", random_model(12, evaluator="2x16", use_frames=False), material, {}, {}, {})
    return {"a": a, "b": b, "material": material, "root": root}


@pytest.fixture(scope="module")
def mat_a(device, assets):
    return nm.NeuralMaterial.from_asset(device, assets["a"], mlp="loop")


@pytest.fixture(scope="module")
def mat_b(device, assets):
    return nm.NeuralMaterial.from_asset(device, assets["b"], mlp="loop")


def hemisphere(rng, n: int) -> np.ndarray:
    v = rng.normal(size=(n, 3))
    v[:, 2] = np.abs(v[:, 2]) + 1e-3
    return (v / np.linalg.norm(v, axis=1, keepdims=True)).astype(np.float32)


@pytest.fixture(scope="module")
def queries():
    rng = np.random.default_rng(3)
    return {"uv": rng.uniform(-1.5, 2.5, (N, 2)).astype(np.float32),  # wraps
            "lod": rng.integers(0, 4, N).astype(np.float32),
            "wi": hemisphere(rng, N), "wo": hemisphere(rng, N)}


# --- generated code -------------------------------------------------------------------------------

def test_generated_modules_are_cached_unique_and_outside_the_tree(assets, tmp_path):
    a, b = load_asset(assets["a"]), load_asset(assets["b"])
    ma = codegen.generate_module(a, tmp_path)
    text, mtime = ma.path.read_text(), ma.path.stat().st_mtime_ns
    again = codegen.generate_module(a, tmp_path)
    assert again.path == ma.path and again.path.stat().st_mtime_ns == mtime  # cached, not rewritten
    mb = codegen.generate_module(b, tmp_path)
    assert mb.name != ma.name and mb.networks_type != ma.networks_type
    assert codegen.code_hash(a)[:16] in ma.name
    # the weights are inlined as exact fp16 constants, and both MLP paths are in the file
    w = a.layer_arrays("sampler", "fp16")[1][0]
    assert codegen._literal(w[5, 7]) in text and "#if NEURAL_COOPVEC" in text and "coopLinear<" in text
    # the default location is the cache, never the source tree
    default = codegen.generate_module(a)
    assert default.path.is_relative_to(cache_dir() / "neural") and not default.path.is_relative_to(REPO_ROOT)
    s = codegen.generate_set([ma, mb], tmp_path)
    assert s.name.startswith("neural_set_") and f"import {ma.name};" in s.path.read_text()


# --- parity with torch ----------------------------------------------------------------------------

def test_latents_and_level_pick(device, mat_a, assets, queries):
    q = queries
    lat, level = mat_a.fetch_latents(q["uv"], q["lod"], seed=1)
    assert np.array_equal(level, q["lod"].astype(np.int64))
    with torch.no_grad():
        expected = torch_latents(fp16_model(assets["a"]), q).numpy()
    assert np.max(np.abs(lat - expected)) < 1e-5

    # Fractional lods: the coarser level with probability frac(lod), clamped to the pyramid.
    n = 20000
    uv = np.random.default_rng(0).random((n, 2)).astype(np.float32)
    for lod, lo, p_hi in ((1.3, 1, 0.3), (0.75, 0, 0.75), (2.5, 2, 0.5)):
        _, level = mat_a.fetch_latents(uv, np.full(n, lod, np.float32), seed=7)
        assert set(np.unique(level)) <= {lo, lo + 1}
        sigma = math.sqrt(p_hi * (1 - p_hi) / n)
        assert abs(np.mean(level == lo + 1) - p_hi) < 5 * sigma
    _, level = mat_a.fetch_latents(uv[:100], np.full(100, 7.5, np.float32))
    assert np.all(level == 3)
    _, level = mat_a.fetch_latents(uv[:100], np.full(100, -2.0, np.float32))
    assert np.all(level == 0)


@pytest.mark.parametrize("which", ["a", "b"])
def test_eval_and_pdf_match_torch(device, mat_a, mat_b, assets, queries, which):
    material = {"a": mat_a, "b": mat_b}[which]
    q = queries
    f = material.evaluate(q["uv"], q["wi"], q["wo"], q["lod"])
    p = material.pdf(q["uv"], q["wi"], q["wo"], q["lod"])
    # same values as the runtime stores: float32 rounding only
    check_eval_and_pdf_fp16(material, assets[which], q)
    # the fp32 master model: fp16 tolerance
    wi, wo = torch.from_numpy(q["wi"]), torch.from_numpy(q["wo"])
    with torch.no_grad():
        m32 = load_model(assets[which])
        lat32 = torch_latents(m32, q)
        f32 = m32.eval_from_latent(lat32, wi, wo).numpy()
        p32 = m32.pdf_from_latent(lat32, wi, wo).numpy()
    assert rel(f, f32, 1e-4).max() < 1e-2
    r = rel(p, p32, 1e-4)
    assert np.quantile(r, 0.5) < 1e-3 and np.quantile(r, 0.9) < 1e-2 and r.max() < 0.5


def test_sample_matches_torch(device, mat_a, assets, queries):
    check_sample(mat_a, assets["a"], queries, seed=5)


def test_two_sided_like_the_reference(device, mat_a, queries):
    """Directions on opposite sides are black; both below the surface are the mirror image of both
    above (as the reference's eval/sample/pdf: the back faces of open meshes are not black)."""
    q = queries
    n = 64
    mirror = np.array([1, 1, -1], np.float32)
    wi, wo, uv = q["wi"][:n], q["wo"][:n], q["uv"][:n]
    assert np.all(mat_a.evaluate(uv, wi, wo * mirror, 0.0) == 0)
    assert np.all(mat_a.evaluate(uv, wi * mirror, wo, 0.0) == 0)
    above = mat_a.evaluate(uv, wi, wo, 0.0)
    assert above.max() > 0
    np.testing.assert_allclose(mat_a.evaluate(uv, wi * mirror, wo * mirror, 0.0), above, rtol=1e-6)
    np.testing.assert_allclose(mat_a.pdf(uv, wi * mirror, wo * mirror, 0.0), mat_a.pdf(uv, wi, wo, 0.0),
                               rtol=1e-6)
    wo_up, weight_up, pdf_up = mat_a.sample(uv, wi, 0.0)
    wo_down, weight_down, pdf_down = mat_a.sample(uv, wi * mirror, 0.0)
    ok = pdf_up > 0  # the same random numbers: the same samples fail
    assert ok.sum() > n // 2 and np.all(pdf_down[~ok] == 0)
    np.testing.assert_allclose(wo_down[ok], wo_up[ok] * mirror, rtol=1e-6)
    np.testing.assert_allclose(pdf_down, pdf_up, rtol=1e-6)
    np.testing.assert_allclose(weight_down[ok], weight_up[ok], rtol=1e-6)


def test_a_set_dispatches_each_material_by_id(device, mat_a, mat_b, queries):
    """Two assets (2x32 with frames, 2x16 without) in one generated switch: per-query material ids
    give each material's own results."""
    q = queries
    ids = np.random.default_rng(9).integers(0, 2, N).astype(np.uint32)
    mset = check_set_evaluate(device, [mat_a, mat_b], q, ids)
    assert mset.module.is_set and len(mset.module.members) == 2
    qs = query_records(q["uv"], q["wi"], q["wo"], q["lod"])
    s = nm.run_queries(mset, "sample", 7, qs, 3, ids)
    # sample uses RNG.create(seed, i): compare with the single material at the same query indices
    single = [nm.run_queries(m.set, "sample", 7, qs, 3) for m in (mat_a, mat_b)]
    expected = np.where((ids == 0)[:, None], single[0], single[1])
    assert rel(s, expected, 1e-6).max() < 1e-4


# --- the CoopVec path -----------------------------------------------------------------------------

@pytest.fixture(scope="module")
def cpu_device():
    return cpu_slang_device()


def test_coopvec_path_on_the_cpu_device(cpu_device, mat_a, assets, queries):
    """The CoopVec MLP (fp16 inputs, matrices and results) through Slang's software fallback on
    slangpy's cpu device (raw dispatch), against the loop path on lavapipe. The fallback also
    accumulates in fp16, so the tolerance is fp16's."""
    coop = nm.NeuralMaterial.from_asset(cpu_device, assets["a"], mlp="coopvec")
    assert coop.mlp == "coopvec" and coop.set.defines()["NEURAL_COOPVEC"] == "1"
    check_coopvec_against_loop(coop, mat_a, {k: v[:64] for k, v in queries.items()})


def test_generated_code_compiles_for_cuda_and_coopvec_spirv(assets, tmp_path):
    """The kernel module of an asset and of a set, both MLP paths, through slangtorch's slangc:
    CUDA (CoopVec becomes OptiX cooperative vectors there) and SPIR-V with CoopVec."""
    ma = codegen.generate_module(load_asset(assets["a"]), tmp_path)
    mb = codegen.generate_module(load_asset(assets["b"]), tmp_path)
    s = codegen.generate_set([ma, mb], tmp_path)
    jobs = [(m, "cuda", coop) for m in (ma, s) for coop in (0, 1)] + [(ma, "spirv", 1)]
    outs = compile_with_slangc(jobs, tmp_path)
    for (module, target, coop), out in zip(jobs, outs):
        if target == "cuda" and coop:
            assert "optixCoopVecMatMul" in out.read_text()


@pytest.mark.gpu("cooperative_vector")
def test_coopvec_path_on_the_device(device, mat_a, assets, queries):
    """Tensor cores on a real GPU (inferencing-optimal matrices) against the loop path."""
    coop = nm.NeuralMaterial.from_asset(device, assets["a"], mlp="coopvec")
    check_coopvec_against_loop(coop, mat_a, queries, with_sample=False)


# --- bad input ------------------------------------------------------------------------------------

def test_coopvec_without_the_feature_is_one_clear_error(device, assets, caplog):
    if device.has_feature(spy.Feature.cooperative_vector):
        pytest.skip("this device has cooperative vectors")
    with pytest.raises(NeumatError, match="cooperative_vector") as e:
        nm.NeuralMaterial.from_asset(device, assets["a"], mlp="coopvec")
    assert "a.neumat" in str(e.value)
    device_state(device, nm.__name__).pop("fallback_said", None)
    with caplog.at_level(logging.INFO, logger="neumat.neural"):
        first = nm.NeuralMaterial.from_asset(device, assets["a"])
        nm.NeuralMaterial.from_asset(device, assets["b"])
    assert first.mlp == "loop"
    said = [r for r in caplog.records if "loop MLP path" in r.getMessage()]
    assert len(said) == 1


def test_unsupported_or_damaged_assets_name_the_asset(device, assets, tmp_path):
    model = TorchMaterial(NeuralMaterialConfig(resolution=RESOLUTION, latent_channels=4))
    path = save_asset(tmp_path / "four.neumat", model, assets["material"], {}, {}, {})
    with pytest.raises(NeumatError, match=r"four\.neumat.*latent_channels"):
        nm.NeuralMaterial.from_asset(device, path)
    broken = tmp_path / "broken.neumat"
    shutil.copytree(assets["a"], broken)
    manifest = broken / "manifest.json"
    manifest.write_text(manifest.read_text().replace(f'"format_version": {ASSET_FORMAT_VERSION}', '"format_version": 99'))
    with pytest.raises(NeumatError, match=r"broken\.neumat.*format_version"):
        nm.NeuralMaterial.from_asset(device, broken)
