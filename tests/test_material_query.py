"""The material query interface (renderer/materials/query.py): the reference and the neural
material answer the same calls with the same shapes, and each answer agrees with another of its own."""

import numpy as np
import pytest

from conftest import TINY_MATERIAL_TOML
from neumat.renderer.materials.query import MATERIAL_KINDS, Material, query_records
from neumat.renderer.materials.reference import ReferenceMaterial
from neumat.renderer.neural.material import NeuralMaterial
from scene_helpers import tiny_asset


@pytest.fixture(scope="module")
def materials(device, tmp_path_factory):
    folder = tmp_path_factory.mktemp("query")
    (folder / "tiny.toml").write_text(TINY_MATERIAL_TOML)
    asset = tiny_asset(folder / "tiny.neumat", folder / "tiny.toml", seed=3)
    return {"reference": ReferenceMaterial.from_file(device, folder / "tiny.toml"),
            "neural": NeuralMaterial.from_asset(device, asset, mlp="loop")}


def _queries(n: int, seed: int = 0):
    rng = np.random.default_rng(seed)
    def hemisphere():
        v = rng.normal(size=(n, 3))
        v[:, 2] = np.abs(v[:, 2]) + 0.05
        return (v / np.linalg.norm(v, axis=1, keepdims=True)).astype(np.float32)
    return rng.random((n, 2)).astype(np.float32), hemisphere(), hemisphere(), rng.random(n).astype(np.float32) * 2


@pytest.mark.parametrize("kind", MATERIAL_KINDS)
def test_both_kinds_answer_the_same_calls(materials, kind):
    m = materials[kind]
    assert isinstance(m, Material) and m.kind == kind
    n = 257
    uv, wi, wo, lod = _queries(n)
    f = m.evaluate(uv, wi, wo, lod, seed=1)
    wo_s, weight, pdf = m.sample(uv, wi, lod, seed=1)
    p = m.pdf(uv, wi, wo, lod, seed=1)
    a = m.albedo(uv, lod, seed=1)
    assert f.shape == (n, 3) and wo_s.shape == (n, 3) and weight.shape == (n, 3) and pdf.shape == (n,)
    assert p.shape == (n,) and a.shape == (n, 3)
    for x in (f, weight, pdf, p, a):
        assert np.all(np.isfinite(x)) and np.all(x >= 0)
    ok = pdf > 0
    assert ok.mean() > 0.5 and np.allclose(np.linalg.norm(wo_s[ok], axis=1), 1.0, atol=1e-4)
    with pytest.raises(ValueError, match=r"wi must have shape \[257, 3\]"):
        m.evaluate(uv, wi[:10], wo, lod)


def test_neural_albedo_is_pi_times_eval_at_normal_incidence(materials):
    """The albedo the path tracer writes to its AOV for a neural material: pi * eval(n, n) at the
    level the query's random stream picks (the same stream for the same seed and index)."""
    m = materials["neural"]
    uv, _, _, lod = _queries(300, seed=2)
    n = np.tile(np.float32([0, 0, 1]), (300, 1))
    np.testing.assert_allclose(m.albedo(uv, lod, seed=5), np.pi * m.evaluate(uv, n, n, lod, seed=5), rtol=1e-5,
                               atol=1e-7)


def test_query_records_lay_out_what_the_kernels_read():
    uv, wi, wo, lod = _queries(4)
    q = query_records(uv, wi, wo, lod)
    assert q.shape == (4, 9) and q.dtype == np.float32
    np.testing.assert_array_equal(q[:, 0:2], uv)
    np.testing.assert_array_equal(q[:, 2], lod)
    np.testing.assert_array_equal(q[:, 3:6], wi)
    np.testing.assert_array_equal(q[:, 6:9], wo)
    with pytest.raises(ValueError, match="lod must be a scalar or have shape"):
        query_records(uv, wi, wo, np.zeros(3))
