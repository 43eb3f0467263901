"""Checks shared by the neural Slang parity tests (test_neural_slang.py for plain assets,
test_neural_lobe.py for lobe and half/difference assets): the generated Slang material against the
torch model it was exported from, and the CoopVec path against the loop path. Tolerances are
derived in test_neural_slang.py's module doc."""

import shutil
import subprocess
from pathlib import Path

import numpy as np
import pytest
import slangpy as spy
import torch

from neumat.renderer.core.paths import SHADER_DIR
from neumat.renderer.materials.query import query_records
from neumat.renderer.neural import codegen
from neumat.renderer.neural import material as nm
from neumat.training.export import load_model


def random_queries(seed: int, n: int) -> dict:
    """n queries with uv beyond [0, 1] (wrap), levels 0-3 and directions above the surface (where
    the torch model is defined; the runtime returns 0 or mirrors below it)."""
    rng = np.random.default_rng(seed)

    def unit():
        v = rng.normal(size=(n, 3))
        v[:, 2] = np.abs(v[:, 2]) + 1e-3
        return (v / np.linalg.norm(v, axis=1, keepdims=True)).astype(np.float32)

    return {"uv": rng.uniform(-1.5, 2.5, (n, 2)).astype(np.float32),
            "lod": rng.integers(0, 4, n).astype(np.float32), "wi": unit(), "wo": unit()}


def rel(a, b, floor):
    return np.abs(a - b) / (np.abs(b) + floor)


def fp16_model(path: Path):
    """The fp32 master model with every parameter rounded to fp16: the runtime's values."""
    model = load_model(path)
    with torch.no_grad():
        for p in model.parameters():
            p.copy_(p.half().float())
    return model


def torch_latents(model, q) -> torch.Tensor:
    return model.latents.sample_level(torch.from_numpy(q["uv"]), torch.from_numpy(q["lod"]).long())


def pcg_uniforms(seed: int, n: int, count: int) -> np.ndarray:
    """[n, count] floats of RNG.create(seed, i).next() (shaders/common/random.slang)."""
    state = np.zeros(n, np.uint32)
    inc = (np.arange(n, dtype=np.uint32) << np.uint32(1)) | np.uint32(1)

    def next_uint():
        nonlocal state
        old = state
        state = (old * np.uint32(747796405) + inc).astype(np.uint32)
        word = ((old >> ((old >> np.uint32(28)) + np.uint32(4))) ^ old) * np.uint32(277803737)
        return (word >> np.uint32(22)) ^ word

    with np.errstate(over="ignore"):
        next_uint()
        state = (state + np.uint32((seed * 0x9E3779B9 + 0x7F4A7C15) & 0xFFFFFFFF)).astype(np.uint32)
        next_uint()
        out = np.stack([(next_uint() >> np.uint32(8)).astype(np.float64) / 16777216.0 for _ in range(count)], axis=1)
    return out.astype(np.float32)


def check_eval_and_pdf_fp16(material, asset: Path, q):
    """eval and pdf against the fp16-rounded torch model: float32 rounding only. Returns (f, f16,
    the fp16 model, its latents) for further checks."""
    f = material.evaluate(q["uv"], q["wi"], q["wo"], q["lod"])
    p = material.pdf(q["uv"], q["wi"], q["wo"], q["lod"])
    wi, wo = torch.from_numpy(q["wi"]), torch.from_numpy(q["wo"])
    with torch.no_grad():
        m16 = fp16_model(asset)
        lat16 = torch_latents(m16, q)
        f16 = m16.eval_from_latent(lat16, wi, wo).numpy()
        p16 = m16.pdf_from_latent(lat16, wi, wo).numpy()
    assert np.all(np.isfinite(f)) and np.all(np.isfinite(p)) and np.all(p > 0)
    assert rel(f, f16, 1e-6).max() < 1e-4
    assert rel(p, p16, 1e-6).max() < 1e-3
    return f, f16, m16, lat16


def check_sample(material, asset: Path, q, seed: int) -> None:
    """sample() against the torch sampler fed the same uniforms, and against the material's own
    pdf() and evaluate() at the sampled direction (weight = eval / pdf)."""
    n = len(q["uv"])
    wo, weight, pdf = material.sample(q["uv"], q["wi"], q["lod"], seed=seed)
    u = pcg_uniforms(seed, n, 4)[:, 1:]  # the first number picked the level
    wi = torch.from_numpy(q["wi"])
    with torch.no_grad():
        m16 = fp16_model(asset)
        lat = torch_latents(m16, q)
        t_wo, t_weight, t_pdf = (x.numpy() for x in m16.sample_from_latent(lat, wi, torch.from_numpy(u)))
        w_diffuse = m16.sampler.decode(lat, wi).weights[:, 0].numpy()
    # Ambiguous queries: the lobe pick within rounding of the mixture weight, or a sample grazing the
    # surface (the runtime rejects wo.z <= 0; training's sampler does not).
    clear = (np.abs(u[:, 0] - w_diffuse) > 1e-5) & (np.abs(t_wo[:, 2]) > 1e-4)
    assert clear.mean() > 0.99
    below = clear & (t_wo[:, 2] < 0)
    assert np.all(pdf[below] == 0) and np.all(weight[below] == 0)
    ok = clear & (t_wo[:, 2] > 0)
    assert ok.sum() > n // 2 and np.all(pdf[ok] > 0)
    assert np.abs(wo[ok] - t_wo[ok]).max() < 1e-4
    assert np.quantile(rel(pdf[ok], t_pdf[ok], 1e-6), 0.999) < 1e-3
    assert np.quantile(rel(weight[ok], t_weight[ok], 1e-6), 0.999) < 1e-3
    f = material.evaluate(q["uv"][ok], q["wi"][ok], wo[ok], q["lod"][ok])
    p = material.pdf(q["uv"][ok], q["wi"][ok], wo[ok], q["lod"][ok])
    assert np.quantile(rel(p, pdf[ok], 1e-6), 0.99) < 1e-3
    assert np.quantile(rel(f / p[:, None], weight[ok], 1e-6), 0.99) < 1e-3


def check_set_evaluate(device, members, q, ids, mlp: str = "loop") -> np.ndarray:
    """One set of `members`, per-query material ids: each query gets its own material's eval."""
    mset = nm.NeuralMaterialSet(device, members, mlp=mlp)
    f = nm.run_queries(mset, "evaluate", 3, query_records(q["uv"], q["wi"], q["wo"], q["lod"]), 3, ids)
    for k, m in enumerate(members):
        sel = ids == k
        fk = m.evaluate(q["uv"][sel], q["wi"][sel], q["wo"][sel], q["lod"][sel])
        assert rel(f[sel], fk, 1e-6).max() < 1e-5
    return mset


def cpu_slang_device() -> spy.Device:
    if shutil.which("g++") is None:
        pytest.skip("slangpy's cpu device needs g++")
    return spy.Device(type=spy.DeviceType.cpu,
                      compiler_options=spy.SlangCompilerOptions({"include_paths": [str(SHADER_DIR)]}))


def check_coopvec_against_loop(coop, loop, q, with_sample: bool = True) -> None:
    """The CoopVec path (fp16 matrices and accumulation) against the loop path: fp16 tolerances,
    eval relative 2e-2, pdf relative 5e-2 for 95% of queries (the sampler's narrow lobes amplify
    its decoded parameters' rounding)."""
    n = len(q["uv"])
    f = coop.evaluate(q["uv"], q["wi"], q["wo"], q["lod"])
    p = coop.pdf(q["uv"], q["wi"], q["wo"], q["lod"])
    f_loop = loop.evaluate(q["uv"], q["wi"], q["wo"], q["lod"])
    p_loop = loop.pdf(q["uv"], q["wi"], q["wo"], q["lod"])
    assert rel(f, f_loop, 1e-4).max() < 2e-2
    assert np.quantile(rel(p, p_loop, 1e-4), 0.95) < 5e-2
    if with_sample:
        wo, _, pdf = coop.sample(q["uv"], q["wi"], q["lod"], seed=2)
        wo_loop, _, pdf_loop = loop.sample(q["uv"], q["wi"], q["lod"], seed=2)
        assert ((pdf > 0) == (pdf_loop > 0)).mean() > 0.9  # same samples accepted (wo above the surface)
        both = (pdf > 0) & (pdf_loop > 0)
        assert both.sum() > n // 2 and np.median(np.abs(wo[both] - wo_loop[both])) < 1e-2


def compile_with_slangc(jobs, tmp_path: Path) -> list[Path]:
    """Each (generated module, target 'cuda' or 'spirv', CoopVec 0/1) through slangtorch's slangc."""
    slangtorch = pytest.importorskip("slangtorch")
    slangc = Path(slangtorch.__file__).parent / "bin" / "slangc"
    if not slangc.is_file():
        pytest.skip(f"no slangc in {slangc.parent}")
    outs = []
    for module, target, coop in jobs:
        out = tmp_path / f"{module.name}_{coop}.{'cu' if target == 'cuda' else 'spv'}"
        cmd = [str(slangc), str(module.kernels_path), "-I", str(SHADER_DIR), "-I", str(module.directory),
               "-target", target, "-entry", codegen.KERNEL_ENTRIES["shade"], f"-DNEURAL_COOPVEC={coop}",
               f"-DNEURAL_COOPVEC_OPTIMAL={coop}", "-o", str(out)] + (["-O0"] if target == "spirv" else [])
        r = subprocess.run(cmd, capture_output=True, text=True, timeout=120)
        assert r.returncode == 0, f"{' '.join(cmd)}\n{r.stderr}"
        assert out.stat().st_size > 0
        outs.append(out)
    return outs
