"""The learned importance sampler (training/sampler.py) with untrained parameters: its pdf integrates
to 1 over the sphere, sample() follows pdf() (chi-square), sample() and pdf() agree pointwise, the
specular lobe reduces to textbook GGX, and nothing goes NaN at grazing angles or extreme parameters.

Integrals (midpoint rule) and chi-square cells use one (theta, phi) grid over the whole sphere,
polar about -wi and graded towards the specular peak (SphereGrid says why): a plain (cos theta, phi)
grid about the normal cannot resolve the grazing lobes, nor the integrable singularity at wo = -wi.
Any such grid is a valid partition of the sphere; its shape only buys accuracy. The pdf is evaluated
in float64 for the expected counts and integrals; sampling runs in float32.
"""

import math

import numpy as np
import pytest
import torch
from scipy import stats

from sample_pdf_bound import SAMPLE_PDF_ULPS, sample_pdf_mismatch
from neumat.training import sampler as S

POWER = 3.0


def _dir(theta_deg: float, phi_deg: float = 0.0) -> torch.Tensor:
    """A unit direction in float64 (float32 rounding of wi would move the singular point -wi)."""
    t, p = math.radians(theta_deg), math.radians(phi_deg)
    return torch.tensor([math.sin(t) * math.cos(p), math.sin(t) * math.sin(p), math.cos(t)], dtype=torch.float64)


def _params(alpha, rho, mean, tilt, weights) -> S.SamplerParams:
    """A batch of one, set directly (not through the network's output mapping)."""
    axis = torch.tensor([tilt[0], tilt[1], 1.0])
    return S.SamplerParams(alpha=torch.tensor([alpha], dtype=torch.float32), rho=torch.tensor([rho]),
                           mean=torch.tensor([mean], dtype=torch.float32), axis=(axis / axis.norm())[None],
                           weights=torch.tensor([weights], dtype=torch.float32))


def _net_params(seed: int) -> S.SamplerParams:
    """What an untrained sampler network decodes for a random latent."""
    torch.manual_seed(seed)
    net = S.Sampler()
    with torch.no_grad():
        p = net.decode(torch.randn(1, 8), torch.tensor([[0.0, 0.0, 1.0]]))
    return p


PARAMS = {
    "net0": lambda: _net_params(0),
    "net1": lambda: _net_params(1),
    "isotropic": lambda: _params((0.3, 0.3), 0.0, (0.0, 0.0), (0.0, 0.0), (0.4, 0.6)),
    "correlated": lambda: _params((0.15, 0.5), 0.7, (0.4, -0.3), (0.5, -0.2), (0.3, 0.7)),
    "narrow": lambda: _params((0.03, 0.08), -0.5, (-0.2, 0.5), (-1.0, 0.8), (0.1, 0.9)),
}
INCIDENT = [(0.0, 0.0), (40.0, 30.0), (75.0, 120.0), (88.0, 250.0)]
CASES = [(name, th, ph) for name in PARAMS for th, ph in INCIDENT]
CASE_IDS = [f"{n}-{th:g}deg" for n, th, _ in CASES]


class Graded:
    """A 1D map s in [-1, 1] -> x in [lo, hi] whose cells shrink towards given centres: s is split
    evenly into one segment per centre (segments meet halfway between centres), and within a
    segment x = centre +- extent * |s'|^POWER for the local coordinate s' in [-1, 1]."""

    def __init__(self, lo: float, hi: float, centres: list[float]) -> None:
        self.centres = np.array(centres)
        self.bounds = np.array([lo, *((self.centres[1:] + self.centres[:-1]) / 2), hi])

    def x(self, s: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """x(s) and dx/ds."""
        k = len(self.centres)
        j = np.clip(((s + 1) / 2 * k).astype(int), 0, k - 1)
        sl = ((s + 1) / 2 * k - j) * 2 - 1
        c = self.centres[j]
        side = np.where(sl < 0, c - self.bounds[j], self.bounds[j + 1] - c)
        return c + np.sign(sl) * side * np.abs(sl) ** POWER, side * POWER * np.abs(sl) ** (POWER - 1) * k

    def s(self, x: np.ndarray) -> np.ndarray:
        k = len(self.centres)
        j = np.clip(np.searchsorted(self.bounds, x, side="right") - 1, 0, k - 1)
        c = self.centres[j]
        side = np.where(x < c, c - self.bounds[j], self.bounds[j + 1] - c)
        sl = np.sign(x - c) * (np.abs(x - c) / side) ** (1.0 / POWER)
        return ((sl + 1) / 2 + j) / k * 2 - 1


class SphereGrid:
    """Polar coordinates (theta, phi) about -wi, graded towards the specular peak in both.

    Two features need resolving: the peak, and the point wo = -wi, where the specular pdf has an
    integrable 1 / |wo + wi| singularity (every h on the great circle h.wi = 0 maps to -wi, the
    1 / (4 |wo.h|) factor blows up; it matters for wide lobes at grazing wi). The polar Jacobian
    sin(theta) cancels the singularity, the grading resolves the peak, which at grazing incidence is
    thin across the plane of incidence (reflection compresses it by wi.h) and long within it. phi
    is also graded towards the opposite side, phi0 + pi: a lobe whose normals straddle that great
    circle lands on both sides of -wi (the offset wo + wi = 2 (wi.h) h flips with the sign of wi.h).
    """

    def __init__(self, wi: np.ndarray, peak: np.ndarray) -> None:
        self.e3 = -wi / np.linalg.norm(wi)
        helper = np.array([1.0, 0.0, 0.0]) if abs(self.e3[0]) < 0.9 else np.array([0.0, 1.0, 0.0])
        self.e1 = np.cross(helper, self.e3)
        self.e1 /= np.linalg.norm(self.e1)
        self.e2 = np.cross(self.e3, self.e1)
        th0, ph0 = self._polar(peak)
        self.theta = Graded(0.0, math.pi, [float(th0)])
        self.phi = Graded(float(ph0) - math.pi / 2, float(ph0) + 3 * math.pi / 2, [float(ph0), float(ph0) + math.pi])

    def _polar(self, w: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        x, y, z = w @ self.e1, w @ self.e2, w @ self.e3
        return np.arctan2(np.hypot(x, y), z), np.arctan2(y, x)

    def directions(self, s_theta: np.ndarray, s_phi: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Unit directions at grid coordinates in [-1, 1]^2 and d omega / (ds_theta ds_phi)."""
        th, dth = self.theta.x(s_theta)
        ph, dph = self.phi.x(s_phi)
        d = (np.sin(th) * np.cos(ph))[..., None] * self.e1 + (np.sin(th) * np.sin(ph))[..., None] * self.e2 \
            + np.cos(th)[..., None] * self.e3
        return d, np.sin(th) * dth * dph

    def coords(self, w: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        th, ph = self._polar(w)
        lo = self.phi.bounds[0]
        ph = lo + np.mod(ph - lo, 2 * math.pi)
        return self.theta.s(th), self.phi.s(ph)


def _f64(p: S.SamplerParams) -> S.SamplerParams:
    return S.SamplerParams(*(t.double() for t in (p.alpha, p.rho, p.mean, p.axis, p.weights)))


def _peak(p: S.SamplerParams, wi: torch.Tensor) -> np.ndarray:
    """Mirror direction about the mean microfacet normal: the pole of the test grids."""
    h = torch.cat([-p.mean[0].double(), torch.ones(1, dtype=torch.float64)])
    h = h / h.norm()
    return (2 * (wi @ h) * h - wi).numpy()


def _pdf_np(fn, p: S.SamplerParams, wi: torch.Tensor, wo: np.ndarray) -> np.ndarray:
    """fn evaluated in float64: near wo = -wi the half vector is ill-conditioned in float32."""
    with torch.no_grad():
        return fn(_f64(p), wi[None], torch.from_numpy(wo.reshape(-1, 3))).numpy().reshape(wo.shape[:-1])


def _grid(p: S.SamplerParams, wi: torch.Tensor) -> SphereGrid:
    return SphereGrid(wi.numpy(), _peak(p, wi))


def _nodes(n: int) -> np.ndarray:
    """Midpoints of n equal cells of [-1, 1]."""
    return (np.arange(n) + 0.5) / n * 2 - 1


def _integral(fn, p: S.SamplerParams, wi: torch.Tensor, n: int = 256) -> float:
    """Midpoint rule on the graded grid: n x n nodes."""
    sa, sb = np.meshgrid(_nodes(n), _nodes(n), indexing="ij")
    wo, jac = _grid(p, wi).directions(sa, sb)
    return float(np.sum(_pdf_np(fn, p, wi, wo) * jac) * (2 / n) ** 2)


def _diffuse_only(p, wi, wo):
    return S.diffuse_pdf(p, wo)


@pytest.mark.parametrize("name,theta,phi", CASES, ids=CASE_IDS)
def test_pdf_integrates_to_one(name, theta, phi):
    p, wi = PARAMS[name](), _dir(theta, phi)
    for fn in (S.pdf, S.specular_pdf, _diffuse_only):
        assert _integral(fn, p, wi) == pytest.approx(1.0, abs=1e-3), fn.__name__


def _chi2_pvalue(p: S.SamplerParams, wi: torch.Tensor, n: int = 200_000, cells: int = 48, sub: int = 8,
                 seed: int = 0) -> float:
    grid = _grid(p, wi)
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        wo, _ = S.sample(p, wi.float()[None].expand(n, 3), torch.rand(n, 3, generator=g))
    sa, sb = grid.coords(wo.double().numpy())
    ia, ib = (np.clip(((s + 1) / 2 * cells).astype(int), 0, cells - 1) for s in (sa, sb))
    observed = np.bincount(ia * cells + ib, minlength=cells * cells).astype(float)

    # Expected counts: midpoint rule on sub x sub nodes per cell.
    sa, sb = np.meshgrid(_nodes(cells * sub), _nodes(cells * sub), indexing="ij")
    dirs, jac = grid.directions(sa, sb)
    dens = _pdf_np(S.pdf, p, wi, dirs) * jac * (2 / (cells * sub)) ** 2
    expected = n * dens.reshape(cells, sub, cells, sub).sum(axis=(1, 3)).reshape(-1)

    assert not np.any((expected == 0) & (observed > 0)), "samples where the pdf is zero"
    low = expected < 5
    obs = np.append(observed[~low], observed[low].sum())
    exp = np.append(expected[~low], expected[low].sum())
    if exp[-1] < 5:  # pool the pooled remainder into the smallest kept cell
        k = np.argmin(exp[:-1])
        obs[k] += obs[-1]
        exp[k] += exp[-1]
        obs, exp = obs[:-1], exp[:-1]
    stat = np.sum((obs - exp) ** 2 / exp)
    return float(stats.chi2.sf(stat, len(obs) - 1))


@pytest.mark.parametrize("name,theta,phi", CASES, ids=CASE_IDS)
def test_sample_matches_pdf_chi2(name, theta, phi):
    pval = _chi2_pvalue(PARAMS[name](), _dir(theta, phi))
    assert pval > 0.01 / len(CASES), f"p-value {pval:.3g}"


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64], ids=["float32", "float64"])
@pytest.mark.parametrize("name", list(PARAMS))
def test_sample_pdf_equals_pdf_of_sample(name, dtype):
    p = PARAMS[name]()
    p = S.SamplerParams(**{k: getattr(p, k).to(dtype) for k in ("alpha", "rho", "mean", "axis", "weights")})
    g = torch.Generator().manual_seed(3)
    for theta, phi in INCIDENT + [(89.9, 10.0)]:
        wi = _dir(theta, phi).to(dtype)[None].expand(20_000, 3)
        with torch.no_grad():
            wo, pdf_s = S.sample(p, wi, torch.rand(20_000, 3, generator=g, dtype=dtype))
            pdf_e = S.pdf(p, wi, wo)
        assert wo.dtype == dtype and pdf_s.dtype == dtype
        assert torch.allclose(wo.norm(dim=-1), torch.ones(1, dtype=dtype), atol=1e-5)
        # Near wo = -wi the pdf ~ 1 / |wi + wo| is ill-conditioned: there the relative error may grow
        # like 1 / |wi + wo|; after that scaling the two paths (sampled h, h from wi + wo) must agree
        # to rounding, in float32 and float64 alike (tests/sample_pdf_bound.py derives the bound).
        mismatch = sample_pdf_mismatch(pdf_s, pdf_e, wi, wo)
        assert mismatch < SAMPLE_PDF_ULPS, f"{theta} deg: {mismatch:.0f} u"


def _ggx_d_aniso(h: np.ndarray, ax: float, ay: float) -> np.ndarray:
    """Textbook anisotropic GGX NDF (Walter et al. 2007; Heitz 2014)."""
    c = h[:, 2]
    return 1.0 / (math.pi * ax * ay * (h[:, 0] ** 2 / ax ** 2 + h[:, 1] ** 2 / ay ** 2 + c ** 2) ** 2)


def _upper(rng: np.random.Generator, n: int) -> np.ndarray:
    v = rng.normal(size=(n, 3))
    v[:, 2] = np.abs(v[:, 2])
    return v / np.linalg.norm(v, axis=1, keepdims=True)


def _spec_pdf(ax, ay, rho, wi, wo):
    p = _params((ax, ay), rho, (0.0, 0.0), (0.0, 0.0), (0.0, 1.0))
    with torch.no_grad():
        return S.specular_pdf(p, torch.from_numpy(wi).float(), torch.from_numpy(wo).float()).double().numpy()


@pytest.mark.parametrize("alpha", [0.05, 0.3, 1.0])
def test_specular_reduces_to_isotropic_ggx(alpha):
    rng = np.random.default_rng(4)
    wi, wo = _upper(rng, 2000), _upper(rng, 2000)
    h = wi + wo
    h /= np.linalg.norm(h, axis=1, keepdims=True)
    c2 = h[:, 2] ** 2
    d = alpha ** 2 / (math.pi * ((alpha ** 2 - 1) * c2 + 1) ** 2)
    ref = d * h[:, 2] / (4 * np.abs(np.sum(wo * h, axis=1)))
    np.testing.assert_allclose(_spec_pdf(alpha, alpha, 0.0, wi, wo), ref, rtol=2e-4, atol=1e-6)


def test_specular_anisotropic_and_correlated_match_rotated_ggx():
    """rho = 0 is axis-aligned anisotropic GGX (alpha_x along x); a correlated lobe is an anisotropic
    one rotated about the normal by psi: Sigma = R diag(a1^2, a2^2) R^T."""
    rng = np.random.default_rng(5)
    wi, wo = _upper(rng, 2000), _upper(rng, 2000)
    h = wi + wo
    h /= np.linalg.norm(h, axis=1, keepdims=True)
    jac = h[:, 2] / (4 * np.abs(np.sum(wo * h, axis=1)))
    np.testing.assert_allclose(_spec_pdf(0.1, 0.4, 0.0, wi, wo), _ggx_d_aniso(h, 0.1, 0.4) * jac,
                               rtol=2e-4, atol=1e-6)

    a1, a2, psi = 0.1, 0.4, 0.6
    c, s = math.cos(psi), math.sin(psi)
    rot = np.array([[c, -s], [s, c]])
    sigma = rot @ np.diag([a1 ** 2, a2 ** 2]) @ rot.T
    ax, ay = math.sqrt(sigma[0, 0]), math.sqrt(sigma[1, 1])
    rho = sigma[0, 1] / (ax * ay)
    h_lobe = h.copy()  # h in the lobe's own (rotated) frame: rotate the xy part by -psi
    h_lobe[:, :2] = h[:, :2] @ rot
    np.testing.assert_allclose(_spec_pdf(ax, ay, rho, wi, wo), _ggx_d_aniso(h_lobe, a1, a2) * jac,
                               rtol=2e-4, atol=1e-6)


def test_extremes_stay_finite():
    """Bounds of every parameter, grazing and normal wi, u at 0 and just below 1: finite, unit wo,
    finite pdf and finite gradients."""
    raw = torch.tensor([[-30.0, 30.0, 30.0, 50.0, -50.0, 50.0, 50.0, 20.0, -20.0],
                        [30.0, -30.0, -30.0, -50.0, 0.0, -50.0, 0.0, -20.0, 20.0],
                        [0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0]], requires_grad=True)
    wis = torch.stack([_dir(90.0, 0.0), _dir(89.999, 200.0), _dir(0.0)]).float()
    us = torch.tensor([[0.0, 0.0, 0.0], [1 - 6e-8, 1 - 6e-8, 1 - 6e-8], [0.5, 1 - 6e-8, 0.0],
                       [1 - 6e-8, 0.0, 0.25]])
    rows = [(r, w, u) for r in range(3) for w in range(3) for u in range(4)]
    r_idx, w_idx, u_idx = (torch.tensor(c) for c in zip(*rows))
    p = S.params_from_outputs(raw[r_idx])
    wi = wis[w_idx]
    wo, pdf_s = S.sample(p, wi, us[u_idx])
    pdf_e = S.pdf(p, wi, wo) + S.pdf(p, wi, -wi) + S.pdf(p, wi, wi)
    assert torch.isfinite(wo).all() and torch.allclose(wo.norm(dim=-1), torch.ones(1), atol=1e-4)
    assert torch.isfinite(pdf_s).all() and torch.isfinite(pdf_e).all() and (pdf_e >= 0).all()
    (pdf_s.sum() + pdf_e.sum() + wo.sum()).backward()
    assert torch.isfinite(raw.grad).all()


def test_output_mapping_ranges():
    raw = torch.randn(1000, 9) * 20
    p = S.params_from_outputs(raw)
    assert (p.alpha >= S.ALPHA_MIN * 0.999).all() and (p.alpha <= S.ALPHA_MAX * 1.001).all()
    assert (p.rho.abs() <= S.RHO_MAX).all()
    assert torch.allclose(p.axis.norm(dim=-1), torch.ones(1)) and (p.axis[:, 2] > 0).all()
    assert torch.allclose(p.weights.sum(-1), torch.ones(1))
