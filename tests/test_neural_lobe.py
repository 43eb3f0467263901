"""The stable half/difference direction features (training/frames.py) and the analytic GGX lobe of
`SIZE+lobe` networks (training/lobe.py): their math in torch, the asset format that records them, and
the generated Slang (loop path on the test device, CoopVec path on slangpy's cpu device) against the
torch model, for eval, pdf and sample, the way tests/test_neural_slang.py tests the plain evaluator.

Tolerances: the torch references here run in float32 like the loop path, so the parity bounds are
those of tests/test_neural_slang.py (eval relative 1e-4, pdf relative 1e-3, from float32 rounding of
the same operations in a different order). The lobe adds one float32 expression whose most sensitive
part is D: with q = (h_x / a_x)^2 + (h_y / a_y)^2 + h_z^2, a rounding error e ~ 1e-7 of h changes q
by at most 2 |h_xy| e / alpha^2, i.e. D (which goes as 1 / q^2) relatively by at most about
2 e / alpha (the worst case, |h_xy| ~ alpha, q ~ 2): 7e-6 for the parity model's smallest alpha, 0.03,
over ten times below the 1e-4 bound.
"""

import json
import math
import shutil

import numpy as np
import pytest
import torch

from neumat.renderer.neural import codegen
from neumat.renderer.core.errors import NeumatError
from neumat.renderer.neural import material as nm
from neumat.renderer.neural.asset import load_asset
from neumat.training import lobe as L
from neumat.training.export import load_model, save_asset
from neumat.training.frames import half_difference
from neumat.training.model import NeuralMaterial, NeuralMaterialConfig
from neumat.training.settings import parse_network
from neural_parity import (check_coopvec_against_loop, check_eval_and_pdf_fp16, check_sample, check_set_evaluate,
                           compile_with_slangc, cpu_slang_device)

RESOLUTION = 8
N = 4096


def _unit(rng: np.random.Generator, n: int, upper: bool = True) -> torch.Tensor:
    v = rng.normal(size=(n, 3))
    if upper:
        v[:, 2] = np.abs(v[:, 2]) + 1e-3
    return torch.from_numpy(v / np.linalg.norm(v, axis=1, keepdims=True))


# --- torch: half/difference -----------------------------------------------------------------------

def _rotation_to_z(h: np.ndarray) -> np.ndarray:
    """The shortest-arc rotation matrix taking unit h to z, built independently (axis-angle)."""
    z = np.array([0.0, 0.0, 1.0])
    axis = np.cross(h, z)
    s = np.linalg.norm(axis)
    if s < 1e-15:
        return np.eye(3)
    k = axis / s
    angle = math.atan2(s, h @ z)
    kx = np.array([[0, -k[2], k[1]], [k[2], 0, -k[0]], [-k[1], k[0], 0]])
    return np.eye(3) + math.sin(angle) * kx + (1 - math.cos(angle)) * kx @ kx


def test_half_difference_is_the_shortest_arc_rotation():
    rng = np.random.default_rng(0)
    wi, wo = _unit(rng, 200), _unit(rng, 200)
    hd = half_difference(wi, wo).numpy()
    for k in range(200):
        h = (wi[k] + wo[k]).numpy()
        h /= np.linalg.norm(h)
        r = _rotation_to_z(h)
        np.testing.assert_allclose(hd[k, :3], h, atol=1e-12)
        np.testing.assert_allclose(hd[k, 3:], r @ wi[k].numpy(), atol=1e-12)
    # (h, d) of (wo, wi): the same h, d mirrored about z: the pair holds both directions
    swapped = half_difference(wo, wi).numpy()
    np.testing.assert_allclose(swapped[:, :3], hd[:, :3], atol=1e-12)
    np.testing.assert_allclose(swapped[:, 3:], hd[:, 3:] * [-1, -1, 1], atol=1e-12)


def test_half_difference_is_smooth_at_the_mirror_direction():
    """Rusinkiewicz's d jumps with phi_h at h = z; the shortest-arc d moves by O(|dh|)."""
    wi = torch.tensor([[0.3, 0.2, math.sqrt(1 - 0.13)]], dtype=torch.float64)
    mirror = wi * torch.tensor([-1.0, -1.0, 1.0], dtype=torch.float64)
    at = half_difference(wi, mirror)
    np.testing.assert_allclose(at.numpy()[0], [0, 0, 1, 0.3, 0.2, math.sqrt(1 - 0.13)], atol=1e-15)
    for phi in np.linspace(0, 2 * math.pi, 13):
        eps = 1e-6
        wo = mirror + eps * torch.tensor([[math.cos(phi), math.sin(phi), 0.0]], dtype=torch.float64)
        wo = wo / wo.norm(dim=-1, keepdim=True)
        # |dh| ~ eps / (2 cos theta_d); d moves no more than twice that
        assert (half_difference(wi, wo) - at).abs().max() < 2 * eps


# --- torch: the lobe ------------------------------------------------------------------------------

def _lobe_params(f90, f0, ax, ay, n=1) -> L.LobeParams:
    return L.LobeParams(f90=torch.full((n,), f90, dtype=torch.float64),
                        f0=torch.tensor([f0] * n, dtype=torch.float64),
                        alpha=torch.tensor([[ax, ay]] * n, dtype=torch.float64))


def _ggx_textbook(wi, wo, ax, ay, f0, f90):
    """f * cos of an anisotropic GGX reflection (Heitz 2014, 'Understanding the masking-shadowing
    function'), written from the formulas in numpy: D(h) G2(wi, wo) F(wi.h) / (4 cos_i cos_o) * cos_o,
    with Schlick's F running from f0 at normal incidence to f90 at grazing."""
    h = wi + wo
    h /= np.linalg.norm(h, axis=-1, keepdims=True)
    cos_h = h[:, 2]
    tan2 = (h[:, 0] ** 2 / ax ** 2 + h[:, 1] ** 2 / ay ** 2) / cos_h ** 2
    d = 1 / (np.pi * ax * ay * cos_h ** 4 * (1 + tan2) ** 2)

    def lam(w):
        a2tan2 = (ax ** 2 * w[:, 0] ** 2 + ay ** 2 * w[:, 1] ** 2) / w[:, 2] ** 2
        return (-1 + np.sqrt(1 + a2tan2)) / 2

    g2 = 1 / (1 + lam(wi) + lam(wo))
    c = np.sum(wi * h, axis=-1)
    f = np.asarray(f0)[None] + (f90 - np.asarray(f0)[None]) * ((1 - c) ** 5)[:, None]
    return (d * g2 / (4 * wi[:, 2] * wo[:, 2]) * wo[:, 2])[:, None] * f


@pytest.mark.parametrize("ax, ay", [(0.05, 0.05), (0.3, 0.3), (0.02, 0.4)])
def test_lobe_is_textbook_ggx(ax, ay):
    rng = np.random.default_rng(1)
    wi, wo = _unit(rng, 5000), _unit(rng, 5000)
    f0 = [0.04, 0.5, 0.9]  # f0 above f90 too: the two ends are independent
    got = L.evaluate(_lobe_params(0.7, f0, ax, ay, 5000), wi, wo).numpy()
    want = _ggx_textbook(wi.numpy(), wo.numpy(), ax, ay, f0, 0.7)
    np.testing.assert_allclose(got, want, rtol=1e-10, atol=1e-300)
    below = wo * torch.tensor([1.0, 1.0, -1.0], dtype=torch.float64)
    assert torch.all(L.evaluate(_lobe_params(0.7, f0, ax, ay, 5000), wi, below) == 0)


def test_masked_directions_give_finite_gradients():
    """Pairs below the surface, and wo = -wi (h = 0, an infinite D at its own directions), are 0 and
    leave every gradient finite: a NaN gradient from a masked query diverged a glazed_ceramic bake."""
    wi = torch.tensor([[0.3, 0.1, 0.9], [0.0, 0.6, 0.8], [0.2, 0.0, -0.98], [0.6, 0.0, 0.8]])
    wo = torch.tensor([[-0.3, 0.2, 0.93], [0.0, -0.6, -0.8], [0.1, 0.3, 0.95], [-0.6, 0.0, 0.8]])
    wi, wo = wi / wi.norm(dim=-1, keepdim=True), wo / wo.norm(dim=-1, keepdim=True)
    raw = torch.zeros(4, L.NUM_OUTPUTS, requires_grad=True)
    wi_t, wo_t = wi.clone().requires_grad_(True), wo.clone().requires_grad_(True)
    f = L.evaluate(L.params_from_outputs(raw), wi_t, wo_t)
    assert torch.all(f[1:3] == 0) and torch.all(f[[0, 3]] > 0)
    f.sum().backward()
    for g in (raw.grad, wi_t.grad, wo_t.grad):
        assert torch.all(torch.isfinite(g)), g


def test_lobe_conserves_energy():
    """White furnace, f0 = f90 = 1 (F = 1), alpha 0.3: the directional albedo of a single-scattering GGX lobe
    is below 1 (G2 <= 1). At normal incidence every h with tan(theta_h) > 1 reflects wo below the
    horizon, and under D(h) h_z that mass is P(tan^2 theta_h > 1) = alpha^2 / (1 + alpha^2) (GGX's
    slope law), so the albedo is at most 1 / (1 + alpha^2) = 0.917; the masking of the rest is small
    (G2 > 0.9 where most wo lie), so above 0.8. Cosine-weighted wo, 256k samples: 3 sigma ~ 0.004."""
    n = 1 << 18
    alpha = 0.3
    g = torch.Generator().manual_seed(2)
    u1, u2 = torch.rand(n, generator=g, dtype=torch.float64), torch.rand(n, generator=g, dtype=torch.float64)
    r, phi = torch.sqrt(u1), 2 * math.pi * u2
    wo = torch.stack([r * torch.cos(phi), r * torch.sin(phi), torch.sqrt(1 - u1)], dim=-1)
    for theta, upper in ((0.0, 1 / (1 + alpha ** 2)), (60.0, 1.0)):
        t = math.radians(theta)
        wi = torch.tensor([[math.sin(t), 0.0, math.cos(t)]], dtype=torch.float64).expand(n, 3)
        v = L.evaluate(_lobe_params(1.0, [1.0, 1.0, 1.0], alpha, alpha, n), wi, wo)[:, 0] / (wo[:, 2] / math.pi)
        est, err = v.mean().item(), 3 * v.std().item() / math.sqrt(n)
        assert 0.8 < est < upper + err, (theta, est, err)


def test_network_spec_and_model():
    assert parse_network("2x32") == ("2x32", False) and parse_network("3x64+lobe") == ("3x64", True)
    for bad in ("2x33", "2x32+lobes", "lobe", ""):
        with pytest.raises(ValueError, match="choose from"):
            parse_network(bad)
    torch.manual_seed(0)
    model = NeuralMaterial(NeuralMaterialConfig(resolution=4, evaluator="2x32+lobe", directions="half_difference"))
    plain = NeuralMaterial(NeuralMaterialConfig(resolution=4, evaluator="2x32"))
    assert model.lobe is not None and plain.lobe is None
    latent = torch.randn(64, 8)
    rng = np.random.default_rng(3)
    wi, wo = _unit(rng, 64).float(), _unit(rng, 64).float()
    f = model.eval_from_latent(latent, wi, wo)
    mlp = model.evaluator(model.direction_features(latent, wi, wo), latent)
    lobe = L.evaluate(model.lobe(latent), *model.local_directions(latent, wi, wo)[:2])
    torch.testing.assert_close(f, mlp + lobe)
    assert lobe.max() > 0
    f.sum().backward()
    assert model.lobe.linear.weight.grad.abs().sum() > 0 and model.lobe.linear.bias.grad.abs().sum() > 0
    with pytest.raises(ValueError, match="direction encoding"):
        NeuralMaterial(NeuralMaterialConfig(resolution=4, directions="rusinkiewicz"))


# --- the asset format -----------------------------------------------------------------------------

def random_model(seed: int, **config) -> NeuralMaterial:
    """Every parameter random and non-trivial; the lobe's biases then set to a visible, moderately
    broad lobe (f90 ~0.7, alpha ~0.25 before the latent's share) so that random queries see it."""
    torch.manual_seed(seed)
    model = NeuralMaterial(NeuralMaterialConfig(resolution=RESOLUTION, **config))
    with torch.no_grad():
        for p in model.parameters():
            p.copy_(torch.randn_like(p) * 0.3)
        if model.lobe is not None:
            model.lobe.linear.bias.copy_(torch.tensor([1.0, -1.0, 0.0, 1.0, 1.0, 0.5]))
    return model


@pytest.fixture(scope="module")
def assets(tmp_path_factory, tiny_material):
    root = tmp_path_factory.mktemp("lobe")
    lobe = save_asset(root / "lobe.neumat", random_model(21, evaluator="2x32+lobe", directions="half_difference"),
                      tiny_material, {}, {}, {})
    hd = save_asset(root / "hd.neumat", random_model(22, evaluator="2x16", directions="half_difference",
                                                     use_frames=False), tiny_material, {}, {}, {})
    return {"lobe": lobe, "hd": hd, "material": tiny_material, "root": root}


def test_asset_records_directions_and_lobe(assets, tmp_path):
    a = load_asset(assets["lobe"])
    assert a.lobe and a.directions == "half_difference" and a.network == "2x32+lobe" and a.evaluator == "2x32"
    assert a.networks["lobe"].layers[0].inputs == 8 and a.networks["lobe"].outputs == L.NUM_OUTPUTS
    arch = a.manifest["architecture"]
    assert arch["lobe"]["enabled"] and arch["direction_encoding"] == "half_difference"
    model = random_model(21, evaluator="2x32+lobe", directions="half_difference")
    loaded = load_model(a)
    assert loaded.config.evaluator == "2x32+lobe" and loaded.config.directions == "half_difference"
    sa, sb = model.state_dict(), loaded.state_dict()
    assert list(sa) == list(sb) and all(torch.equal(sa[k], sb[k]) for k in sa)
    b = load_asset(assets["hd"])
    assert not b.lobe and "lobe" not in b.networks and b.network == "2x16"


def test_version_1_assets_still_load(assets, tmp_path):
    """A format-1 manifest (before direction_encoding and lobe) loads as vectors without a lobe."""
    old = tmp_path / "old.neumat"
    plain = save_asset(tmp_path / "plain.neumat", random_model(23), assets["material"], {}, {}, {})
    shutil.copytree(plain, old)
    doc = json.loads((old / "manifest.json").read_text())
    doc["format_version"] = 1
    del doc["architecture"]["direction_encoding"], doc["architecture"]["lobe"]
    (old / "manifest.json").write_text(json.dumps(doc))
    a = load_asset(old)
    assert a.directions == "vectors" and not a.lobe and a.network == "2x32"
    assert load_model(a).lobe is None


def test_version_2_lobes_are_refused_and_plain_ones_load(assets, tmp_path):
    """Format 2 decoded the lobe as gate * Schlick(f0), a different function of the same 6 outputs
    than format 3's (f0, f90): such an asset is refused by name, a format-2 asset without a lobe loads."""
    for name, src in (("lobe2.neumat", assets["lobe"]), ("plain2.neumat", assets["hd"])):
        shutil.copytree(src, tmp_path / name)
        doc = json.loads((tmp_path / name / "manifest.json").read_text())
        doc["format_version"] = 2
        (tmp_path / name / "manifest.json").write_text(json.dumps(doc))
    with pytest.raises(NeumatError, match=r"lobe2\.neumat/manifest\.json: architecture\.lobe\.enabled: .*bake the "
                                          r"material again"):
        load_asset(tmp_path / "lobe2.neumat")
    assert not load_asset(tmp_path / "plain2.neumat").lobe


def test_inconsistent_lobe_records_are_named(assets, tmp_path):
    bad = tmp_path / "bad.neumat"
    shutil.copytree(assets["lobe"], bad)
    doc = json.loads((bad / "manifest.json").read_text())
    doc["architecture"]["lobe"]["enabled"] = False
    (bad / "manifest.json").write_text(json.dumps(doc))
    with pytest.raises(NeumatError, match=r"bad\.neumat/manifest\.json: networks\.lobe: unexpected network"):
        load_asset(bad)
    doc["architecture"]["lobe"]["enabled"] = True
    doc["architecture"]["direction_encoding"] = "rusinkiewicz"
    (bad / "manifest.json").write_text(json.dumps(doc))
    with pytest.raises(NeumatError, match="direction_encoding"):
        load_asset(bad)


# --- Slang parity ---------------------------------------------------------------------------------

@pytest.fixture(scope="module")
def queries():
    rng = np.random.default_rng(4)
    return {"uv": rng.uniform(-1.5, 2.5, (N, 2)).astype(np.float32),
            "lod": rng.integers(0, 4, N).astype(np.float32),
            "wi": _unit(rng, N).numpy().astype(np.float32), "wo": _unit(rng, N).numpy().astype(np.float32)}


@pytest.fixture(scope="module")
def mat_lobe(device, assets):
    return nm.NeuralMaterial.from_asset(device, assets["lobe"], mlp="loop")


@pytest.fixture(scope="module")
def mat_hd(device, assets):
    return nm.NeuralMaterial.from_asset(device, assets["hd"], mlp="loop")


@pytest.mark.parametrize("which", ["lobe", "hd"])
def test_eval_and_pdf_match_torch(device, mat_lobe, mat_hd, assets, queries, which):
    material = {"lobe": mat_lobe, "hd": mat_hd}[which]
    _, f16, m16, lat = check_eval_and_pdf_fp16(material, assets[which], queries)
    if which == "lobe":
        wi, wo = torch.from_numpy(queries["wi"]), torch.from_numpy(queries["wo"])
        with torch.no_grad():
            lobe = L.evaluate(m16.lobe(lat), *m16.local_directions(lat, wi, wo)[:2]).numpy()
        share = lobe.sum(-1) / f16.sum(-1)
        assert np.median(share) > 0.05 and share.max() > 0.5  # the lobe is tested, not negligible


def test_sample_matches_torch_and_its_pdf(device, mat_lobe, assets, queries):
    check_sample(mat_lobe, assets["lobe"], queries, seed=6)


def test_a_set_mixes_lobe_and_plain_members(device, mat_lobe, mat_hd, queries):
    check_set_evaluate(device, [mat_hd, mat_lobe], queries, np.random.default_rng(9).integers(0, 2, N).astype(np.uint32))


@pytest.fixture(scope="module")
def cpu_device():
    return cpu_slang_device()


def test_coopvec_path_on_the_cpu_device(cpu_device, mat_lobe, assets, queries):
    """The lobe layer through CoopVec (fp16 matrices and accumulation in Slang's software fallback)
    against the loop path, with the fp16 tolerances of the plain assets' test."""
    coop = nm.NeuralMaterial.from_asset(cpu_device, assets["lobe"], mlp="coopvec")
    check_coopvec_against_loop(coop, mat_lobe, {k: v[:64] for k, v in queries.items()})


@pytest.mark.gpu("cooperative_vector")
def test_coopvec_path_on_the_device(device, mat_lobe, assets, queries):
    coop = nm.NeuralMaterial.from_asset(device, assets["lobe"], mlp="coopvec")
    check_coopvec_against_loop(coop, mat_lobe, queries, with_sample=False)


def test_generated_lobe_code_compiles_for_cuda_and_coopvec_spirv(assets, tmp_path):
    ma = codegen.generate_module(load_asset(assets["lobe"]), tmp_path)
    mb = codegen.generate_module(load_asset(assets["hd"]), tmp_path)
    s = codegen.generate_set([ma, mb], tmp_path)
    assert ma.lobe and not mb.lobe and s.lobe
    compile_with_slangc([(ma, "cuda", 1), (s, "spirv", 1)], tmp_path)
