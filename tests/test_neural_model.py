"""The neural material model in torch (training/): latent pyramid lookup, learned frames, the
networks and their flat weight layout, and the composed NeuralMaterial, on CPU and on CUDA when
torch sees one."""

import math

import numpy as np
import pytest
import torch

from neumat.renderer.materials.layout import StackLayout
from sample_pdf_bound import SAMPLE_PDF_ULPS, sample_pdf_mismatch
from neumat.training.frames import ShadingFrames, identity_transform, transform
from neumat.training.latents import LatentPyramid
from neumat.training.model import NeuralMaterial, NeuralMaterialConfig
from neumat.training.networks import MLP, Encoder, Evaluator, flatten, weight_layout
from neumat.training.settings import EVALUATOR_SIZES

DEVICES = ["cpu"] + (["cuda"] if torch.cuda.is_available() else [])


def _pyramid_with_level_constants(resolution: int = 16) -> LatentPyramid:
    """Every texel of level l holds the value l in every channel."""
    pyr = LatentPyramid(resolution, channels=2)
    for lvl, tex in enumerate(pyr.levels):
        _, h, w = tex.shape
        pyr.fill_from(lvl, torch.full((h, w, 2), float(lvl)))
    return pyr


# --- latent pyramid ---------------------------------------------------------------------------

def test_pyramid_levels():
    pyr = LatentPyramid(8, channels=8)
    assert pyr.num_levels == 4
    assert [tuple(t.shape) for t in pyr.levels] == [(8, 8, 8), (8, 4, 4), (8, 2, 2), (8, 1, 1)]
    with pytest.raises(ValueError):
        LatentPyramid(12)


def test_bilinear_wrap_hand_computed():
    pyr = LatentPyramid(4, channels=2)
    tex = np.arange(32, dtype=np.float32).reshape(4, 4, 2)  # [row j, column i, channel]
    pyr.fill_from(0, torch.from_numpy(tex))
    # Texel centres return the texel itself: u picks the column, v the row.
    assert torch.equal(pyr.sample_level(torch.tensor([[2.5 / 4, 1.5 / 4]]), 0)[0], torch.from_numpy(tex[1, 2]))
    # uv = (0.05, 0.9): x = 0.05 * 4 - 0.5 = -0.3 lies between column 3 (wrapped) and 0 with weight
    # 0.7 on column 0; y = 0.9 * 4 - 0.5 = 3.1 lies between row 3 and row 0 (wrapped), 0.1 on row 0.
    top = 0.3 * tex[3, 3] + 0.7 * tex[3, 0]
    bottom = 0.3 * tex[0, 3] + 0.7 * tex[0, 0]
    expected = 0.9 * top + 0.1 * bottom
    got = pyr.sample_level(torch.tensor([[0.05, 0.9]]), 0)[0].detach().numpy()
    np.testing.assert_allclose(got, expected, rtol=1e-5)
    # uv outside [0, 1) tiles.
    shifted = pyr.sample_level(torch.tensor([[1.05, -0.1]]), 0)[0].detach().numpy()
    np.testing.assert_allclose(shifted, expected, rtol=1e-5)


def test_stochastic_level_pick_frequency():
    pyr = _pyramid_with_level_constants()
    n = 20_000
    g = torch.Generator().manual_seed(0)
    uv = torch.rand(n, 2, generator=g)
    for lod, frac in ((1.3, 0.3), (2.75, 0.75), (3.0, 0.0)):
        lat = pyr.sample(uv, torch.full((n,), lod), generator=g)[:, 0]
        base = math.floor(lod)
        assert set(lat.unique().tolist()) <= {float(base), float(base + 1)}
        p = (lat == base + 1).float().mean().item()
        assert abs(p - frac) < 4 * math.sqrt(frac * (1 - frac) / n) + 1e-9, (lod, p)


def test_lod_clamped():
    pyr = _pyramid_with_level_constants()
    uv = torch.rand(1000, 2)
    last = pyr.num_levels - 1
    for lod, level in ((-3.0, 0), (-0.5, 0), (last + 0.5, last), (99.0, last)):
        lat = pyr.sample(uv, torch.full((1000,), lod))
        assert torch.all(lat == level), lod


def test_mixed_levels_match_per_level_lookup():
    pyr = LatentPyramid(16, channels=8)
    g = torch.Generator().manual_seed(1)
    uv = torch.rand(500, 2, generator=g)
    level = torch.randint(0, pyr.num_levels, (500,), generator=g)
    mixed = pyr.sample_level(uv, level)
    for lvl in range(pyr.num_levels):
        sel = level == lvl
        assert torch.allclose(mixed[sel], pyr.sample_level(uv[sel], lvl))


def test_fill_from_and_export():
    pyr = LatentPyramid(4, channels=8)
    values = torch.randn(2, 2, 8)
    pyr.fill_from(1, values)
    with pytest.raises(ValueError):
        pyr.fill_from(1, torch.randn(8, 2, 2))
    out = pyr.export_fp16()
    assert [a.shape for a in out] == [(4, 4, 8), (2, 2, 8), (1, 1, 8)]
    assert all(a.dtype == np.float16 for a in out)
    np.testing.assert_allclose(out[1], values.numpy(), rtol=1e-3, atol=1e-3)


# --- learned frames ---------------------------------------------------------------------------

def test_frames_identity_at_init():
    frames = ShadingFrames(8)(torch.randn(64, 8))
    x, y, z = torch.eye(3)
    for got, want in zip(frames, (z, x, y, z, x, y)):
        assert torch.allclose(got, want.expand(64, 3))
    wi, wo = torch.randn(64, 3), torch.randn(64, 3)
    assert torch.allclose(transform(frames, wi, wo), identity_transform(wi, wo))


def test_frames_orthonormal_right_handed():
    torch.manual_seed(2)
    mod = ShadingFrames(8)
    with torch.no_grad():
        mod.linear.weight.normal_(0.0, 0.5)
    frames = mod(torch.randn(4096, 8))
    for n, t, b in (frames[0:3], frames[3:6]):
        basis = torch.stack([t, b, n], dim=-2)  # rows t, b, n
        eye = torch.eye(3).expand_as(basis)
        assert torch.allclose(basis @ basis.transpose(-1, -2), eye, atol=1e-5)
        assert torch.allclose(torch.linalg.det(basis), torch.ones(1), atol=1e-5)
    # The features are the directions' coordinates in each frame.
    wi, wo = torch.randn(4096, 3), torch.randn(4096, 3)
    feat = transform(frames, wi, wo)
    n1, t1, b1 = frames[0:3]
    assert torch.allclose(feat[:, 3:6], torch.stack([(wo * t1).sum(-1), (wo * b1).sum(-1), (wo * n1).sum(-1)], -1))


# --- networks ---------------------------------------------------------------------------------

def test_mlp_shape():
    mlp = MLP(5, [7, 9], 3)
    linears = [m for m in mlp.modules() if isinstance(m, torch.nn.Linear)]
    assert [(m.in_features, m.out_features) for m in linears] == [(5, 7), (7, 9), (9, 3)]
    assert not isinstance(list(mlp.layers)[-1], torch.nn.ReLU)  # no activation after the last layer


@pytest.mark.parametrize("size", list(EVALUATOR_SIZES))
def test_evaluator_sizes_forward_backward(size):
    ev = Evaluator(size, 8)
    dirs = torch.randn(256, 12, requires_grad=True)
    latent = torch.randn(256, 8, requires_grad=True)
    rgb = ev(dirs, latent)
    assert rgb.shape == (256, 3) and torch.isfinite(rgb).all() and (rgb > 0).all()
    rgb.log().mean().backward()
    assert all(p.grad is not None and torch.isfinite(p.grad).all() for p in ev.parameters())
    assert latent.grad.abs().sum() > 0


def test_evaluator_output_is_exp_minus_three():
    ev = Evaluator("2x16", 8)
    dirs, latent = torch.randn(10, 12), torch.randn(10, 8)
    raw = ev.mlp(torch.cat([dirs, latent], -1))
    assert torch.allclose(ev(dirs, latent), torch.exp(raw - 3.0))


@pytest.mark.parametrize("module", [Evaluator("3x64", 8), Encoder(31, 8), ShadingFrames(8)],
                         ids=["evaluator", "encoder", "frames"])
def test_weight_layout_matches_flatten(module):
    layout = weight_layout(module)
    flat = flatten(module)
    offset = 0
    for entry, (name, p) in zip(layout, module.named_parameters()):
        assert entry["name"] == name and entry["offset"] == offset and entry["shape"] == tuple(p.shape)
        assert entry["size"] == p.numel()
        np.testing.assert_array_equal(flat[offset:offset + p.numel()].reshape(p.shape), p.detach().numpy())
        offset += p.numel()
    assert offset == flat.size == sum(p.numel() for p in module.parameters())
    assert flat.dtype == np.float32


def test_weight_layout_row_major():
    """W[o, i] of a Linear sits at offset + o * in + i (what the Slang export indexes)."""
    ev = Evaluator("2x16", 8)
    entry = weight_layout(ev)[0]
    w = ev.mlp.layers[0].weight
    assert entry["shape"] == (16, 20)
    assert flatten(ev)[entry["offset"] + 5 * 20 + 7] == w[5, 7].item()


def test_encoder_fills_pyramid():
    k = StackLayout(("conductor", "dielectric", "sheen")).width
    enc = Encoder(k, 8)
    pyr = LatentPyramid(4, 8)
    params = torch.rand(4, 4, k)
    with torch.no_grad():
        lat = enc(params.reshape(-1, k)).reshape(4, 4, 8)
    pyr.fill_from(0, lat)
    uv = (torch.tensor([[1.0, 2.0]]) + 0.5) / 4  # texel column 1, row 2
    assert torch.allclose(pyr.sample_level(uv, 0)[0], lat[2, 1])


# --- the composed material --------------------------------------------------------------------

def _inputs(n: int, device: str, seed: int = 0):
    g = torch.Generator().manual_seed(seed)
    uv = torch.rand(n, 2, generator=g)
    lod = torch.rand(n, generator=g) * 5
    wi = torch.nn.functional.normalize(torch.randn(n, 3, generator=g), dim=-1)
    wi[:, 2] = wi[:, 2].abs()
    wo = torch.nn.functional.normalize(torch.randn(n, 3, generator=g), dim=-1)
    u = torch.rand(n, 3, generator=g)
    return [t.to(device) for t in (uv, lod, wi, wo, u)]


@pytest.mark.parametrize("device", DEVICES)
@pytest.mark.parametrize("use_frames", [True, False])
def test_material_runs_and_sample_is_consistent(device, use_frames):
    torch.manual_seed(0)
    mat = NeuralMaterial(NeuralMaterialConfig(resolution=16, use_frames=use_frames)).to(device)
    uv, lod, wi, wo, u = _inputs(512, device)
    rgb = mat.evaluate(uv, lod, wi, wo)
    pdf = mat.pdf(uv, lod, wi, wo)
    assert rgb.shape == (512, 3) and (rgb > 0).all() and torch.isfinite(rgb).all()
    assert pdf.shape == (512,) and (pdf >= 0).all() and torch.isfinite(pdf).all()

    lat = mat.latent(uv, lod)
    wo_s, weight, pdf_s = mat.sample_from_latent(lat, wi, u)
    assert torch.allclose(weight * pdf_s[:, None], mat.eval_from_latent(lat, wi, wo_s), rtol=1e-4)
    # A sample's pdf is the pdf at its direction, to rounding; the relative error may grow like
    # 1 / |wi + wo| towards wo = -wi, where float32 cannot resolve the half vector
    # (tests/sample_pdf_bound.py derives the bound).
    assert sample_pdf_mismatch(pdf_s, mat.pdf_from_latent(lat, wi, wo_s), wi, wo_s) < SAMPLE_PDF_ULPS
    # Integer lods are deterministic: the pyramid path equals the shared-latent path.
    lod_i = lod.floor()
    wo2, weight2, pdf2 = mat.sample(uv, lod_i, wi, u)
    lat_i = mat.latents.sample_level(uv, lod_i.long())
    assert sample_pdf_mismatch(pdf2, mat.pdf_from_latent(lat_i, wi, wo2), wi, wo2) < SAMPLE_PDF_ULPS
    assert torch.allclose(mat.evaluate(uv, lod_i, wi, wo), mat.eval_from_latent(lat_i, wi, wo))


def test_gradients_reach_every_part():
    torch.manual_seed(0)
    mat = NeuralMaterial(NeuralMaterialConfig(resolution=8, use_encoder=True, encoder_inputs=20))
    uv, lod, wi, wo, u = _inputs(256, "cpu")
    lod = torch.zeros_like(lod)  # level 0 receives the gradient
    loss = mat.evaluate(uv, lod, wi, wo).log().mean() - mat.pdf(uv, lod, wi, wo).clamp_min(1e-6).log().mean()
    latent = mat.encode(torch.rand(256, 20))
    loss = loss + mat.eval_from_latent(latent, wi, wo).mean()
    loss.backward()
    for part in (mat.latents.levels[0], mat.frames.linear.weight):
        assert part.grad is not None and part.grad.abs().sum() > 0
    for module in (mat.evaluator, mat.sampler, mat.encoder):
        for name, p in module.named_parameters():
            assert p.grad is not None and torch.isfinite(p.grad).all(), name
        assert sum(p.grad.abs().sum() for p in module.parameters()) > 0


def test_encoder_config_checked():
    with pytest.raises(ValueError):
        NeuralMaterial(NeuralMaterialConfig(resolution=4, use_encoder=True))
    with pytest.raises(RuntimeError):
        NeuralMaterial(NeuralMaterialConfig(resolution=4)).encode(torch.zeros(1, 5))
