"""The analytic lobes (shaders/materials/lobes.slang): against Mitsuba 3, chi-square tests of the
samplers, sample/eval/pdf consistency, reciprocity and energy.

Conventions the comparisons rely on (see the Slang doc comments):
- Our GGX masking is height-correlated, G2 = 1 / (1 + L(wi) + L(wo)); Mitsuba's rough BSDFs use
  the separable G1(wi) G1(wo). The Mitsuba values are rescaled by G2 / (G1 G1), with Lambda
  computed here independently, before comparing; pdfs (visible normals) need no correction.
- Our dielectric transmission omits the radiance 1/eta^2 scaling: it equals Mitsuba's
  TransportMode.Importance, and Mitsuba's (default) Radiance value times (eta_o / eta_i)^2.
"""

import numpy as np
import pytest
from scipy import stats

from lobe_probe import (ALL, REFLECTION, TRANSMISSION, LobeProbe, conductor, conductor_artist, dielectric,
                        diffuse, sheen)


@pytest.fixture(scope="module")
def probe(device):
    return LobeProbe(device)


@pytest.fixture(scope="module")
def mitsuba():
    """Mitsuba 3's scalar RGB variant (CPU, one call per direction pair: keep batches small)."""
    mi = pytest.importorskip("mitsuba")
    mi.set_variant("scalar_rgb")
    return mi


def _sphere(rng, n):
    v = rng.normal(size=(n, 3))
    return v / np.linalg.norm(v, axis=1, keepdims=True)


def _upper(rng, n):
    v = _sphere(rng, n)
    v[:, 2] = np.abs(v[:, 2])
    return v


def _dir(theta_deg, phi_deg=0.0, side=1.0):
    t, p = np.radians(theta_deg), np.radians(phi_deg)
    return np.array([np.sin(t) * np.cos(p), np.sin(t) * np.sin(p), side * np.cos(t)])


def _ggx_lambda(w, ax, ay):
    a2 = (ax * ax * w[:, 0] ** 2 + ay * ay * w[:, 1] ** 2) / w[:, 2] ** 2
    return 0.5 * (np.sqrt(1.0 + a2) - 1.0)


def _correlated_over_separable(wi, wo, ax, ay):
    li, lo = _ggx_lambda(wi, ax, ay), _ggx_lambda(wo, ax, ay)
    return (1.0 + li) * (1.0 + lo) / (1.0 + li + lo)


def _mitsuba_eval_pdf(mi_, bsdf, wi, wo, mode=None):
    ctx = mi_.BSDFContext(mode if mode is not None else mi_.TransportMode.Radiance)
    ev, pdf = np.zeros((len(wi), 3)), np.zeros(len(wi))
    for j, (a, b) in enumerate(zip(wi, wo)):
        si = mi_.SurfaceInteraction3f()
        si.wi = mi_.Vector3f(*a)
        si.sh_frame = mi_.Frame3f(mi_.Vector3f(0, 0, 1))
        w = mi_.Vector3f(*b)
        e = bsdf.eval(ctx, si, w)
        ev[j] = [e[0], e[1], e[2]]
        pdf[j] = bsdf.pdf(ctx, si, w)
    return ev, pdf


def _rel_err(ours, ref, floor):
    """Largest |ours - ref| / max(|ref|, floor)."""
    return float(np.max(np.abs(ours - ref) / np.maximum(np.abs(ref), floor)))


REL_TOL = 1e-3
MITSUBA_PAIRS = 400


# --- 1. Equivalence to Mitsuba 3 -------------------------------------------------------------


def test_diffuse_matches_mitsuba(probe, mitsuba):
    rng = np.random.default_rng(1)
    wi, wo = _sphere(rng, MITSUBA_PAIRS), _sphere(rng, MITSUBA_PAIRS)  # lower hemisphere must give 0
    albedo = [0.2, 0.5, 0.8]
    bsdf = mitsuba.load_dict({"type": "diffuse", "reflectance": {"type": "rgb", "value": albedo}})
    me, mp = _mitsuba_eval_pdf(mitsuba, bsdf, wi, wo)
    oe, op = probe.eval_pdf(diffuse(albedo), wi, wo)
    assert np.count_nonzero(me[:, 0]) > MITSUBA_PAIRS // 5
    assert _rel_err(oe, me, 1e-4) < REL_TOL
    assert _rel_err(op, mp, 1e-4) < REL_TOL


CONDUCTORS = [  # (eta, k, alpha_u, alpha_v): gold-like, aluminium-like, copper-like
    ((0.143, 0.374, 1.442), (3.983, 2.386, 1.603), 0.3, 0.3),
    ((1.66, 0.88, 0.52), (9.22, 6.27, 4.84), 0.4, 0.1),
    ((0.2, 0.92, 1.1), (3.9, 2.45, 2.14), 0.08, 0.25),
    ((0.2, 0.92, 1.1), (3.9, 2.45, 2.14), 0.05, 0.05),
]


@pytest.mark.parametrize("eta,k,au,av", CONDUCTORS)
def test_conductor_matches_mitsuba(probe, mitsuba, eta, k, au, av):
    rng = np.random.default_rng(2)
    wi, wo = _upper(rng, MITSUBA_PAIRS), _upper(rng, MITSUBA_PAIRS)
    # Half the pairs near the specular direction, where the lobe has its values.
    half = MITSUBA_PAIRS // 2
    spec = wi[:half] * np.array([-1, -1, 1]) + 2.0 * max(au, av) * rng.normal(size=(half, 3))
    spec[:, 2] = np.abs(spec[:, 2])
    wo[:half] = spec / np.linalg.norm(spec, axis=1, keepdims=True)
    bsdf = mitsuba.load_dict({"type": "roughconductor", "distribution": "ggx", "alpha_u": au, "alpha_v": av,
                              "sample_visible": True, "eta": {"type": "rgb", "value": list(eta)},
                              "k": {"type": "rgb", "value": list(k)}})
    me, mp = _mitsuba_eval_pdf(mitsuba, bsdf, wi, wo)
    me *= _correlated_over_separable(wi, wo, au, av)[:, None]
    oe, op = probe.eval_pdf(conductor(eta, k, au, av), wi, wo)
    floor = 1e-3 * max(me.max(), 1.0)
    assert _rel_err(oe, me, floor) < REL_TOL
    assert _rel_err(op, mp, 1e-3 * max(mp.max(), 1.0)) < REL_TOL
    # Wrong sides give nothing.
    oe, op = probe.eval_pdf(conductor(eta, k, au, av), wi, -wo)
    assert not oe.any() and not op.any()


DIELECTRICS = [(1.5, 0.3), (1.33, 0.12), (0.8, 0.4)]  # eta = ior_below / ior_above


@pytest.mark.parametrize("eta,alpha", DIELECTRICS)
def test_dielectric_matches_mitsuba(probe, mitsuba, eta, alpha):
    rng = np.random.default_rng(3)
    n = MITSUBA_PAIRS
    wi = _sphere(rng, n)
    wo = _sphere(rng, n)
    # A third of the pairs near the refracted direction and a third near the mirror direction.
    third = n // 3
    for sl, fn in ((slice(0, third), "refract"), (slice(third, 2 * third), "reflect")):
        for j in range(sl.start, sl.stop):
            w = wi[j]
            if fn == "reflect":
                d = w * np.array([-1, -1, 1])
            else:
                er = eta if w[2] > 0 else 1.0 / eta
                s2 = (1 - w[2] ** 2) / er ** 2
                if s2 >= 1:
                    d = w * np.array([-1, -1, 1])
                else:
                    d = np.array([-w[0] / er, -w[1] / er, -np.sign(w[2]) * np.sqrt(1 - s2)])
            d = d + 1.5 * alpha * rng.normal(size=3)
            want_side = np.sign(w[2]) if fn == "reflect" else -np.sign(w[2])
            d[2] = want_side * abs(d[2])
            wo[j] = d / np.linalg.norm(d)
    ext, intr = (1.0, eta) if eta >= 1 else (1.0 / eta, 1.0)
    bsdf = mitsuba.load_dict({"type": "roughdielectric", "distribution": "ggx", "alpha": alpha,
                              "sample_visible": True, "int_ior": intr, "ext_ior": ext})
    me, mp = _mitsuba_eval_pdf(mitsuba, bsdf, wi, wo, mitsuba.TransportMode.Importance)
    me *= _correlated_over_separable(wi, wo, alpha, alpha)[:, None]
    oe, op = probe.eval_pdf(dielectric(eta, alpha), wi, wo)
    refl = wi[:, 2] * wo[:, 2] > 0
    assert np.count_nonzero(me[refl, 0]) > n // 8 and np.count_nonzero(me[~refl, 0]) > n // 8
    floor = 1e-3 * max(me.max(), 1.0)
    assert _rel_err(oe, me, floor) < REL_TOL
    assert _rel_err(op, mp, 1e-3 * max(mp.max(), 1.0)) < REL_TOL
    # Mitsuba's default (radiance) transmission is ours divided by (eta_o / eta_i)^2.
    mr, _ = _mitsuba_eval_pdf(mitsuba, bsdf, wi[~refl], wo[~refl])
    mr *= _correlated_over_separable(wi[~refl], wo[~refl], alpha, alpha)[:, None]
    eta_o_over_i = np.where(wi[~refl, 2] > 0, eta, 1.0 / eta)
    assert _rel_err(oe[~refl], mr * eta_o_over_i[:, None] ** 2, floor) < REL_TOL


def test_fresnel_matches_mitsuba(probe, mitsuba):
    cos = np.linspace(-1.0, 1.0, 101)
    eta = np.where(np.arange(101) % 2 == 0, 1.5, 0.75)
    cond_eta, cond_k = (0.143, 0.374, 1.442), (3.983, 2.386, 1.603)
    got = probe.fresnel(cos, eta, cond_eta, cond_k)
    for j, (c, e) in enumerate(zip(cos, eta)):
        f, cos_t, _, _ = mitsuba.fresnel(float(c), float(e))
        assert got["dielectric"][j] == pytest.approx(f, rel=1e-4, abs=1e-6)
        assert got["cos_t"][j] == pytest.approx(cos_t, rel=1e-4, abs=1e-5)
        if c >= 0:
            for ch in range(3):
                fc = mitsuba.fresnel_conductor(float(c), mitsuba.Complex2f(cond_eta[ch], cond_k[ch]))
                assert got["conductor"][j, ch] == pytest.approx(fc, rel=1e-4, abs=1e-6)


def test_artist_conductor_mapping(probe):
    """Gulbrandsen 2014: F(0 deg) reproduces f0; edge tint 0 gives k = 0 and larger edge tints
    brighten grazing angles, at fixed f0."""
    f0 = np.array([0.95, 0.64, 0.54])
    cos = np.array([1.0, 0.5, 0.15])
    grazing = []
    for tint in (0.0, 0.5, 1.0):
        got = probe.fresnel(cos, np.full(3, 1.5), f0, (tint, tint, tint))
        eta, k = got["artist_eta"], got["artist_k"]
        f = probe.fresnel(cos, np.full(3, 1.5), eta, k)["conductor"]
        np.testing.assert_allclose(f[0], f0, rtol=1e-4)
        if tint == 0.0:
            np.testing.assert_allclose(k, 0.0, atol=1e-3)
        grazing.append(f[2])
    assert np.all(np.diff(np.array(grazing), axis=0) > 0)
    # The lobe built from artist parameters is the lobe built from the mapped IOR.
    got = probe.fresnel(cos, np.full(3, 1.5), f0, (0.3, 0.6, 0.9))
    rng = np.random.default_rng(4)
    wi, wo = _upper(rng, 64), _upper(rng, 64)
    a, _ = probe.eval_pdf(conductor_artist(f0, (0.3, 0.6, 0.9), 0.3, 0.2), wi, wo)
    b, _ = probe.eval_pdf(conductor(got["artist_eta"], got["artist_k"], 0.3, 0.2), wi, wo)
    np.testing.assert_allclose(a, b, rtol=1e-4, atol=1e-7)


# --- 2. Chi-square goodness of fit of the samplers -------------------------------------------

CHI2_SAMPLES = 1_000_000
# The grid is uniform in (theta, phi) over the whole sphere: narrow lobes around the poles (e.g. the
# transmission lobe at normal incidence) then span several cells, which a grid uniform in
# cos(theta) would squeeze into one.
CHI2_THETA_BINS, CHI2_PHI_BINS, CHI2_SUPERSAMPLE = 48, 64, 6
ANGLES = (0.0, 30.0, 60.0, 85.0)

CHI2_CASES = (
    [("diffuse", diffuse(0.7), t, 1.0) for t in ANGLES]
    + [("conductor-iso", conductor((0.2, 0.9, 1.1), (3.9, 2.4, 2.1), 0.3, 0.3), t, 1.0) for t in ANGLES]
    + [("conductor-aniso", conductor((0.2, 0.9, 1.1), (3.9, 2.4, 2.1), 0.5, 0.15), t, 1.0) for t in ANGLES]
    + [("dielectric-above", dielectric(1.5, 0.3), t, 1.0) for t in ANGLES]
    + [("dielectric-below", dielectric(1.5, 0.3), t, -1.0) for t in ANGLES]
    + [("dielectric-rough", dielectric(1.33, 0.6), t, s) for t in (20.0, 70.0) for s in (1.0, -1.0)]
    + [("sheen", sheen(1.0, 0.4), t, 1.0) for t in ANGLES]
)
CHI2_MODES = [("dielectric-transmission", dielectric(1.5, 0.3), 40.0, 1.0, TRANSMISSION),
              ("dielectric-reflection", dielectric(1.5, 0.3), 40.0, -1.0, REFLECTION)]
N_CHI2_TESTS = len(CHI2_CASES) + len(CHI2_MODES)
SIGNIFICANCE = 0.01 / N_CHI2_TESTS  # Bonferroni


def _integrate_cells(fn, tol=1e-9, max_depth=14):
    """Integral of fn(directions) -> (N,) over each (theta, phi) cell of the chi-square grid.

    Midpoint rule in phi (CHI2_SUPERSAMPLE columns per cell), adaptive Simpson along theta in each
    column, on intervals whose end points include every cell edge. The adaptivity matters where
    the pdf has hard edges, e.g. the largest refraction angle, up to which the density stays high:
    an edge that clips a thin sliver off a cell is found because an interval end point on the
    cell edge differs from its neighbour.
    """
    nt, nphi, ss = CHI2_THETA_BINS, CHI2_PHI_BINS, CHI2_SUPERSAMPLE
    ncol, nint = nphi * ss, nt * ss
    dp = 2.0 * np.pi / ncol
    phi_of_col = (np.arange(ncol) + 0.5) * dp

    def f(theta, col):
        ph = phi_of_col[col]
        st = np.sin(theta)
        d = np.stack([st * np.cos(ph), st * np.sin(ph), np.cos(theta)], axis=-1)
        return fn(d) * st  # d(omega) = sin(theta) d(theta) d(phi)

    edges = np.arange(nint + 1) * (np.pi / nint)
    col = np.repeat(np.arange(ncol), nint)
    a = np.tile(edges[:-1], ncol)
    b = np.tile(edges[1:], ncol)
    cell = np.tile(np.arange(nint) // ss, ncol)
    pts = np.concatenate([np.tile(edges, ncol), 0.5 * (a + b)])
    pcol = np.concatenate([np.repeat(np.arange(ncol), nint + 1), col])
    vals = f(pts, pcol)
    node = vals[: ncol * (nint + 1)].reshape(ncol, nint + 1)
    fa, fb = node[:, :-1].ravel(), node[:, 1:].ravel()
    fm = vals[ncol * (nint + 1):]
    out = np.zeros((nt, nphi))
    for depth in range(max_depth + 1):
        m = 0.5 * (a + b)
        fl_fr = f(np.concatenate([0.5 * (a + m), 0.5 * (m + b)]), np.concatenate([col, col]))
        fl, fr = fl_fr[: len(a)], fl_fr[len(a):]
        h = b - a
        s1 = h / 6.0 * (fa + 4.0 * fm + fb)
        s2 = h / 12.0 * (fa + 4.0 * fl + 2.0 * fm + 4.0 * fr + fb)
        done = (np.abs(s2 - s1) <= 15.0 * tol) | (depth == max_depth)
        np.add.at(out, (cell[done], col[done] // ss), (s2 + (s2 - s1) / 15.0)[done] * dp)
        keep = ~done
        if not keep.any():
            break
        a, b, m, col, cell = a[keep], b[keep], m[keep], col[keep], cell[keep]
        fa, fl, fm, fr, fb = fa[keep], fl[keep], fm[keep], fr[keep], fb[keep]
        a, b = np.concatenate([a, m]), np.concatenate([m, b])
        fa, fm, fb = np.concatenate([fa, fm]), np.concatenate([fl, fr]), np.concatenate([fm, fb])
        col, cell = np.concatenate([col, col]), np.concatenate([cell, cell])
    return out


def _expected_counts(probe, lobe, wi, mode, n):
    """n times the pdf integrated over each cell."""
    def pdf(d):
        return probe.eval_pdf(lobe, np.broadcast_to(wi, d.shape), d, mode)[1]
    return _integrate_cells(pdf) * n


def _observed_counts(wo):
    theta = np.arccos(np.clip(wo[:, 2], -1.0, 1.0))
    phi = np.mod(np.arctan2(wo[:, 1], wo[:, 0]), 2.0 * np.pi)
    h, _, _ = np.histogram2d(theta, phi, bins=[CHI2_THETA_BINS, CHI2_PHI_BINS],
                             range=[[0.0, np.pi], [0.0, 2.0 * np.pi]])
    return h


def _chi2_pvalue(observed, expected):
    """Pearson chi-square p-value, cells of expected count < 5 pooled into one."""
    order = np.argsort(expected)
    obs, exp = observed[order], expected[order]
    small = exp < 5.0
    pooled_o, pooled_e = obs[small].sum(), exp[small].sum()
    obs, exp = list(obs[~small]), list(exp[~small])
    if pooled_e >= 5.0:
        obs.append(pooled_o)
        exp.append(pooled_e)
    elif pooled_o > 25:  # many samples where the pdf says there should be none
        return 0.0
    obs, exp = np.array(obs), np.array(exp)
    stat = np.sum((obs - exp) ** 2 / exp)
    return float(stats.chi2.sf(stat, len(obs) - 1))


def _chi2_case(probe, lobe, theta, side, mode, seed):
    wi = _dir(theta, 37.0, side)
    s = probe.sample(lobe, wi[None], CHI2_SAMPLES, seed=seed, mode=mode)
    valid = s["pdf"][0] > 0
    assert not s["delta"][0].any()
    observed = _observed_counts(s["wo"][0][valid]).ravel()
    expected = _expected_counts(probe, lobe, wi, mode, CHI2_SAMPLES).ravel()
    # The mass the pdf does not cover is the samples the sampler rejected: one more cell.
    observed = np.append(observed, np.count_nonzero(~valid))
    expected = np.append(expected, max(CHI2_SAMPLES - expected.sum(), 0.0))
    return _chi2_pvalue(observed, expected)


@pytest.mark.parametrize("name,lobe,theta,side", CHI2_CASES,
                         ids=[f"{c[0]}-{c[2]:g}deg{'' if c[3] > 0 else '-below'}" for c in CHI2_CASES])
def test_sampler_chi2(probe, name, lobe, theta, side):
    p = _chi2_case(probe, lobe, theta, side, ALL, seed=11 + int(theta))
    assert p > SIGNIFICANCE, f"{name} at {theta} deg: p = {p:.3g}"


@pytest.mark.parametrize("name,lobe,theta,side,mode", CHI2_MODES, ids=[c[0] for c in CHI2_MODES])
def test_sampler_chi2_restricted_mode(probe, name, lobe, theta, side, mode):
    p = _chi2_case(probe, lobe, theta, side, mode, seed=5)
    assert p > SIGNIFICANCE, f"{name}: p = {p:.3g}"


def test_chi2_rejects_a_wrong_pdf(probe):
    """The chi-square machinery has power: samples of one roughness against another's pdf fail."""
    wi = _dir(30.0, 37.0)
    s = probe.sample(conductor(1.0, 3.0, 0.3, 0.3), wi[None], CHI2_SAMPLES, seed=3)
    valid = s["pdf"][0] > 0
    observed = _observed_counts(s["wo"][0][valid]).ravel()
    expected = _expected_counts(probe, conductor(1.0, 3.0, 0.32, 0.3), wi, ALL, CHI2_SAMPLES).ravel()
    assert _chi2_pvalue(observed, expected) < SIGNIFICANCE


# --- 3. sample() agrees with eval() and pdf() ------------------------------------------------

CONSISTENCY_LOBES = [
    diffuse((0.2, 0.5, 0.9)),
    conductor((0.2, 0.9, 1.1), (3.9, 2.4, 2.1), 0.3, 0.3),
    conductor((1.66, 0.88, 0.52), (9.2, 6.3, 4.8), 0.6, 0.05),
    conductor_artist((0.95, 0.64, 0.54), (0.9, 0.5, 0.3), 0.02, 0.02),
    dielectric(1.5, 0.05),
    dielectric(1.5, 0.3),
    dielectric(0.7, 0.8),
    sheen((0.9, 0.6, 0.3), 0.3),
    sheen(1.0, 0.05),
]


@pytest.mark.parametrize("lobe", CONSISTENCY_LOBES, ids=[l.label for l in CONSISTENCY_LOBES])
@pytest.mark.parametrize("mode", [ALL, REFLECTION, TRANSMISSION], ids=["all", "refl", "trans"])
def test_sample_weight_and_pdf_match_eval(probe, lobe, mode):
    rng = np.random.default_rng(7)
    wi = _sphere(rng, 64)
    wi[:8] = [_dir(t, 10.0 * t, s) for t in (0.0, 45.0, 80.0, 89.0) for s in (1.0, -1.0)]
    s = probe.sample(lobe, wi, 2000, seed=17, mode=mode)
    valid = s["pdf"] > 0
    assert not s["delta"].any()
    if lobe.type != 3 and mode == TRANSMISSION:
        assert not valid.any()
        return
    assert valid.any()
    pdf, pdf_eval = s["pdf"][valid], s["pdf_eval"][valid]
    weight, ev = s["weight"][valid], s["eval"][valid]
    assert np.all(np.isfinite(weight)) and np.all(weight >= 0)
    assert _rel_err(pdf_eval, pdf, 1e-4 * pdf.max()) < REL_TOL
    assert _rel_err(weight * pdf[:, None], ev, 1e-4 * ev.max()) < REL_TOL
    # Failed samples carry no weight.
    assert not s["weight"][~valid].any()
    # Reflection-only and transmission-only samples stay on their side.
    same_side = np.sign(s["wo"][..., 2]) == np.sign(wi[:, None, 2])
    if mode == REFLECTION:
        assert same_side[valid].all()
    if mode == TRANSMISSION:
        assert not same_side[valid].any()


def test_smooth_lobes_are_dirac(probe):
    rng = np.random.default_rng(8)
    wi = _upper(rng, 16)
    wo = _sphere(rng, 16)
    eta, k = (0.2, 0.9, 1.1), (3.9, 2.4, 2.1)
    for lobe in (conductor(eta, k, 1e-4, 5e-4), dielectric(1.5, 0.0), dielectric(1.0, 0.3)):
        e, p = probe.eval_pdf(lobe, wi, wo)
        assert not e.any() and not p.any()
    # Smooth conductor: mirror direction, weight F(cos theta_i).
    s = probe.sample(conductor(eta, k, 0.0, 0.0), wi, 4)
    assert s["delta"].all()
    np.testing.assert_allclose(s["wo"], np.broadcast_to((wi * [-1, -1, 1])[:, None], s["wo"].shape), atol=1e-6)
    f = probe.fresnel(wi[:, 2], np.full(16, 1.5), eta, k)["conductor"]
    np.testing.assert_allclose(s["weight"][:, 0], f, rtol=1e-5)
    # Smooth dielectric, both sides: reflection picked with probability F, weights 1, R + T = 1.
    for side in (1.0, -1.0):
        w = _dir(50.0, 20.0, side)
        s = probe.sample(dielectric(1.5, 0.0), w[None], 50_000, seed=9)
        assert s["delta"].all() and np.all(s["pdf"] > 0)
        refl = np.sign(s["wo"][0, :, 2]) == side
        f = probe.fresnel(np.array([w[2]]), np.array([1.5]))["dielectric"][0]
        n = refl.size
        assert abs(refl.mean() - f) < 5 * np.sqrt(f * (1 - f) / n) + 1e-6
        np.testing.assert_allclose(s["weight"], 1.0, rtol=1e-5)
        np.testing.assert_allclose(s["pdf"][0, refl], f, rtol=1e-4)
        if side < 0:  # 50 deg from inside glass is beyond the critical angle: all reflected
            assert refl.all()
        else:
            t = s["wo"][0, ~refl][0]
            np.testing.assert_allclose(np.hypot(t[0], t[1]), np.sin(np.radians(50.0)) / 1.5, rtol=1e-5)
    # Transmission-only under total internal reflection fails; reflection-only carries F.
    w = _dir(60.0, 0.0, -1.0)
    assert not probe.sample(dielectric(1.5, 0.0), w[None], 8, mode=TRANSMISSION)["pdf"].any()
    s = probe.sample(dielectric(1.5, 0.0), _dir(30.0)[None], 8, mode=REFLECTION)
    f = probe.fresnel(np.array([np.cos(np.radians(30.0))]), np.array([1.5]))["dielectric"][0]
    np.testing.assert_allclose(s["weight"], f, rtol=1e-5)
    np.testing.assert_allclose(s["pdf"], 1.0)
    # Index-matched interface: straight through with weight 1, whatever the roughness.
    for alpha in (0.0, 0.5):
        s = probe.sample(dielectric(1.0, alpha), wi, 4)
        assert s["delta"].all()
        np.testing.assert_allclose(s["wo"], np.broadcast_to(-wi[:, None], s["wo"].shape), atol=1e-7)
        np.testing.assert_allclose(s["weight"], 1.0)


# --- 4. Reciprocity --------------------------------------------------------------------------


@pytest.mark.parametrize("lobe", [
    diffuse((0.3, 0.6, 0.9)),
    conductor((0.2, 0.9, 1.1), (3.9, 2.4, 2.1), 0.4, 0.1),
    conductor_artist((0.9, 0.6, 0.5), (0.5, 0.5, 0.5), 0.2, 0.2),
    sheen((0.8, 0.8, 0.8), 0.3),
    dielectric(1.5, 0.3),
    dielectric(0.75, 0.15),
], ids=lambda l: l.label)
def test_reciprocity(probe, lobe):
    """f(wi, wo) = f(wo, wi) for reflection, with f = eval / |wo.z| (eval carries the cosine).
    Dielectric transmission (no 1/eta^2 radiance scaling) satisfies
    f(wi, wo) / eta_o^2 = f(wo, wi) / eta_i^2 with eta_i, eta_o the IORs on wi's and wo's sides."""
    rng = np.random.default_rng(10)
    n = 2000
    wi, wo = _sphere(rng, n), _sphere(rng, n)
    if lobe.type != 3:
        wi[:, 2], wo[:, 2] = np.abs(wi[:, 2]), np.abs(wo[:, 2])
    e1, _ = probe.eval_pdf(lobe, wi, wo)
    e2, _ = probe.eval_pdf(lobe, wo, wi)
    f1, f2 = e1 / np.abs(wo[:, 2:3]), e2 / np.abs(wi[:, 2:3])
    if lobe.type == 3:
        eta = lobe.p0[0]
        ior = lambda w: np.where(w[:, 2] > 0, 1.0, eta)[:, None]  # noqa: E731
        f1, f2 = f1 / ior(wo) ** 2, f2 / ior(wi) ** 2
        refl = wi[:, 2] * wo[:, 2] > 0
        assert np.count_nonzero(f1[refl, 0]) > 100 and np.count_nonzero(f1[~refl, 0]) > 100
    assert np.count_nonzero(f1[:, 0]) > n // 4
    assert _rel_err(f1, f2, 1e-4 * f2.max()) < REL_TOL


def test_dielectric_transmission_is_not_plainly_symmetric(probe):
    """Documents the convention: without the radiance scaling the BTDF is not f(wi, wo) = f(wo, wi)."""
    wi, wo = _dir(20.0)[None], _dir(30.0, 180.0, -1.0)[None]
    e1, _ = probe.eval_pdf(dielectric(1.5, 0.3), wi, wo)
    e2, _ = probe.eval_pdf(dielectric(1.5, 0.3), wo, wi)
    f1, f2 = e1[0, 0] / abs(wo[0, 2]), e2[0, 0] / abs(wi[0, 2])
    assert f1 / f2 == pytest.approx(1.5 ** 2, rel=1e-3)


# --- 5. Energy -------------------------------------------------------------------------------

ALBEDO_SAMPLES = 100_000
ALBEDO_ANGLES = (0.0, 30.0, 60.0, 80.0, 89.0)
SHEEN_ALPHAS = (0.07, 0.1, 0.3, 0.6, 1.0)  # 0.07: SheenLobe's smallest alpha (smaller ones are clamped)


def _albedo(probe, lobe, side=1.0, angles=ALBEDO_ANGLES):
    """Directional albedo per incident angle (MC over the lobe's own sampler) and its std error."""
    wi = np.array([_dir(t, 25.0, side) for t in angles])
    s = probe.sample(lobe, wi, ALBEDO_SAMPLES, seed=23)
    w = s["weight"][..., 0]
    return w.mean(axis=1), w.std(axis=1) / np.sqrt(ALBEDO_SAMPLES), s


@pytest.mark.parametrize("lobe", [
    diffuse(1.0),
    conductor(0.0, 1e4, 0.1, 0.1),  # k huge: F ~ 1, a perfect mirror's microfacets
    conductor(0.0, 1e4, 0.5, 0.5),
    conductor(0.0, 1e4, 1.0, 0.2),
    conductor((0.2, 0.9, 1.1), (3.9, 2.4, 2.1), 0.3, 0.3),
] + [sheen(1.0, a) for a in (0.0, 0.01) + SHEEN_ALPHAS], ids=lambda l: l.label)
def test_albedo_at_most_one(probe, lobe):
    a, err, s = _albedo(probe, lobe, angles=ALBEDO_ANGLES + ((89.5, 89.8, 89.9, 89.97) if lobe.type == 4 else ()))
    assert np.all(a <= 1.0 + 4.0 * err + 1e-4), a
    if lobe.type == 0:
        np.testing.assert_allclose(a, 1.0, rtol=1e-5)
    if lobe.type == 1 and lobe.p2[0] <= 0.1:
        assert np.all(a[:2] > 0.97)  # little masking loss for a fairly smooth mirror at 0 and 30 deg


def test_sheen_albedo_by_quadrature(probe):
    """The sheen bound again, integrating eval over the sphere instead of trusting the sampler."""
    for alpha in SHEEN_ALPHAS:
        for theta in (0.0, 45.0, 75.0, 89.0, 89.9):
            wi = _dir(theta)
            total = _integrate_cells(lambda d: probe.eval_pdf(sheen(1.0, alpha), np.broadcast_to(wi, d.shape), d)[0][:, 0],
                                     tol=1e-7).sum()
            assert total < 1.0, (alpha, theta, total)


# Lower bounds on R + T for incidence up to 80 deg, from the rarer and from the denser side. From
# the denser side total internal reflection sends much of the light into the multiple microfacet
# bounces a single-scattering model drops, so the loss is far larger there (cf. Kulla & Conty 2017).
DIELECTRIC_ENERGY = [  # eta, alpha, min from the rarer side, min from the denser side
    (1.5, 0.0, 1.0, 1.0), (1.5, 0.1, 0.93, 0.85), (1.33, 0.3, 0.85, 0.7), (0.7, 0.3, 0.85, 0.7),
    (1.5, 0.5, 0.8, 0.6), (1.5, 1.0, 0.65, 0.35)]


@pytest.mark.parametrize("eta,alpha,min_rare,min_dense", DIELECTRIC_ENERGY)
@pytest.mark.parametrize("side", [1.0, -1.0], ids=["above", "below"])
def test_dielectric_energy(probe, eta, alpha, min_rare, min_dense, side):
    """Nothing absorbs: R + T = 1 when smooth; rough interfaces lose only the single-scattering
    masking energy (weights are F G2 / G1 <= 1), bounded below per roughness."""
    a, err, s = _albedo(probe, dielectric(eta, alpha), side, angles=(0.0, 30.0, 60.0, 80.0))
    min_total = min_rare if (side > 0) == (eta > 1.0) else min_dense
    assert np.all(a <= 1.0 + 4.0 * err + 1e-4), a
    assert np.all(a >= min_total - 4.0 * err - 1e-4), a
    if alpha == 0.0:
        np.testing.assert_allclose(a, 1.0, rtol=1e-5)
    # Both kinds of sample occur where no total internal reflection prevents it.
    refl = np.sign(s["wo"][..., 2]) == side
    valid = s["pdf"] > 0
    assert (refl & valid)[0].any() and (~refl & valid)[0].any()


@pytest.mark.parametrize("eta,alpha,theta,side", [(1.5, 0.5, 60.0, -1.0), (1.33, 0.3, 80.0, 1.0),
                                                  (1.5, 1.0, 0.0, -1.0)])
def test_dielectric_albedo_matches_mitsuba(probe, mitsuba, eta, alpha, theta, side):
    """The energy loss is the model's, not a bug: Mitsuba's own sampler (importance mode, weights
    rescaled to correlated masking) integrates to the same R + T."""
    n = 4000
    bsdf = mitsuba.load_dict({"type": "roughdielectric", "distribution": "ggx", "alpha": alpha,
                              "int_ior": eta, "ext_ior": 1.0})
    ctx = mitsuba.BSDFContext(mitsuba.TransportMode.Importance)
    wi = _dir(theta, 25.0, side)
    si = mitsuba.SurfaceInteraction3f()
    si.wi = mitsuba.Vector3f(*wi)
    si.sh_frame = mitsuba.Frame3f(mitsuba.Vector3f(0, 0, 1))
    u = np.random.default_rng(12).random((n, 3))
    w = np.zeros(n)
    for j in range(n):
        bs, weight = bsdf.sample(ctx, si, float(u[j, 0]), mitsuba.Point2f(u[j, 1], u[j, 2]))
        if weight[0] > 0:
            wo = np.array([[bs.wo[0], bs.wo[1], bs.wo[2]]])
            w[j] = weight[0] * _correlated_over_separable(wi[None], wo, alpha, alpha)[0]
    ours, err, _ = _albedo(probe, dielectric(eta, alpha), side, angles=(theta,))
    assert abs(ours[0] - w.mean()) < 4.0 * np.hypot(err[0], w.std() / np.sqrt(n))
