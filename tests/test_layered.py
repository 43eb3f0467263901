"""The reference layered BSDF (shaders/materials/layered.slang) through its batched Python API
(renderer/materials/reference.py): the parameter layout and fetch, exact single-layer and
closed-form cases, energy, the agreement of sample() with eval(), convergence, presence weights
and reciprocity.

Stacks are built from constant parameter vectors (StackLayout slots), so no material graph is
involved. Statistical checks use fixed seeds and tolerances of several standard errors.
"""

import re
from pathlib import Path

import numpy as np
import pytest
import slangpy as spy

from neumat.renderer.core.kernels import compute_kernel
from neumat.renderer.materials import reference as ref
from neumat.renderer.materials.layout import LAYER_TYPES, MAX_LAYERS, StackLayout
from neumat.renderer.materials import query
from neumat.renderer.materials.query import query_records
from neumat.renderer.core.paths import ASSET_DIR, SHADER_DIR

# SheenLobe's alpha clamp, read from the shader it is defined in.
SHEEN_MIN_ALPHA = float(re.search(r"SHEEN_MIN_ALPHA = ([0-9.]+)",
                                  (SHADER_DIR / "materials" / "lobes.slang").read_text()).group(1))

WHITE = (1.0, 1.0, 1.0)


def constant_stack(device, types: tuple[str, ...], values: dict, walk=ref.WalkSettings()):
    """A 1x1 material: every layer present with a flat normal, then `values` {(layer, param): v}."""
    layout = StackLayout(types)
    v = np.zeros(layout.width, np.float32)
    for i in range(len(types)):
        v[layout.slot(i, "weight")] = 1.0
        v[layout.slot(i, "normal")] = (0.0, 0.0, 1.0)
    for (layer, param), value in values.items():
        v[layout.slot(layer, param)] = value
    return ref.ReferenceMaterial(device, layout, [v[None, None, :]], walk=walk)


STACKS = {
    "coat_over_white_diffuse": (("diffuse", "dielectric"),
                                {(0, "albedo"): WHITE, (1, "ior"): 1.5, (1, "alpha"): 0.15}),
    "absorbing_coat_over_conductor": (("conductor", "dielectric"),
                                      {(0, "f0"): (0.95, 0.64, 0.54), (0, "edge_tint"): (1.0, 0.9, 0.8),
                                       (0, "alpha_u"): 0.25, (0, "alpha_v"): 0.1, (0, "rotation"): 0.6,
                                       (1, "ior"): 1.5, (1, "alpha"): 0.05, (1, "thickness"): 0.5,
                                       (1, "absorption"): (0.1, 0.4, 0.9)}),
    "flakes_and_coat_over_diffuse": (("diffuse", "flakes", "dielectric"),
                                     {(0, "albedo"): (0.8, 0.5, 0.3), (1, "weight"): 0.4,
                                      (1, "normal"): (0.3, 0.0, 0.954), (1, "f0"): (0.9, 0.9, 0.9),
                                      (1, "alpha"): 0.15, (2, "ior"): 1.5, (2, "alpha"): 0.05}),
    "sheen_over_white_diffuse": (("diffuse", "sheen"), {(0, "albedo"): WHITE, (1, "color"): WHITE,
                                                        (1, "alpha"): 0.4}),
    "five_layers": (("conductor", "dielectric", "flakes", "dielectric", "sheen"),
                    {(0, "f0"): (0.9, 0.9, 0.9), (0, "edge_tint"): WHITE, (0, "alpha_u"): 0.3,
                     (0, "alpha_v"): 0.3, (1, "ior"): 1.3, (1, "alpha"): 0.2, (2, "weight"): 0.3,
                     (2, "f0"): (0.9, 0.9, 0.9), (2, "alpha"): 0.1, (3, "weight"): 0.7, (3, "ior"): 1.5,
                     (3, "alpha"): 0.05, (4, "weight"): 0.5, (4, "color"): (0.5, 0.5, 0.5), (4, "alpha"): 0.5}),
}


def stack(device, name: str, overrides: dict | None = None):
    types, values = STACKS[name]
    return constant_stack(device, types, {**values, **(overrides or {})})


def unit(v) -> np.ndarray:
    v = np.asarray(v, np.float64)
    return (v / np.linalg.norm(v, axis=-1, keepdims=True)).astype(np.float32)


def upper_hemisphere(rng, n: int, min_z: float = 0.0) -> np.ndarray:
    v = rng.normal(size=(n, 3))
    v[:, 2] = np.abs(v[:, 2]) + min_z * np.linalg.norm(v, axis=1)
    return unit(v)


def direction(theta: float, phi: float = 0.0) -> np.ndarray:
    return np.array([np.sin(theta) * np.cos(phi), np.sin(theta) * np.sin(phi), np.cos(theta)], np.float32)


def cosine_directions(rng, n: int) -> np.ndarray:
    u1, u2 = rng.random(n), rng.random(n)
    r = np.sqrt(u1)
    return np.stack([r * np.cos(2 * np.pi * u2), r * np.sin(2 * np.pi * u2), np.sqrt(1 - u1)], 1).astype(np.float32)


def repeated(v: np.ndarray, n: int) -> np.ndarray:
    return np.repeat(np.asarray(v, np.float32)[None], n, axis=0)


def mean_and_error(x: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    x = np.asarray(x, np.float64)
    return x.mean(0), x.std(0) / np.sqrt(len(x))


def pair_means(material, wi: np.ndarray, wo: np.ndarray, repeats: int, seed: int = 0):
    """Per-pair mean of eval over `repeats` independent single walks, and its standard error."""
    n = len(wi)
    f = material.evaluate(np.zeros((n * repeats, 2)), np.repeat(wi, repeats, 0), np.repeat(wo, repeats, 0),
                     0.0, n_walks=1, seed=seed).astype(np.float64).reshape(n, repeats, 3)
    return f.mean(1), f.std(1) / np.sqrt(repeats)


# --- layout and parameters ------------------------------------------------------------------------

def parse_slang_constants(path: Path) -> dict[str, int]:
    consts: dict[str, int] = {}
    for name, expr in re.findall(r"static const uint (\w+) = ([^;]+);", path.read_text()):
        consts[name] = int(eval(expr, {"__builtins__": {}}, dict(consts)))
    return consts


def test_slang_layer_layout_mirrors_layout_py():
    c = parse_slang_constants(SHADER_DIR / "materials" / "layer_layout.slang")
    expected = {"MAX_LAYERS": MAX_LAYERS, "LAYER_WEIGHT": 0, "LAYER_NORMAL": 1,
                "MAX_LAYER_WIDTH": max(t.width for t in LAYER_TYPES.values()),
                "MAX_TEXEL_WIDTH": MAX_LAYERS * max(t.width for t in LAYER_TYPES.values())}
    for t in LAYER_TYPES.values():
        expected[f"LAYER_{t.name.upper()}"] = t.type_id
        expected[f"{t.name.upper()}_WIDTH"] = t.width
        for param, _ in t.params:
            if param in ("weight", "normal"):
                assert t.offset(param) == expected[f"LAYER_{param.upper()}"]
            else:
                expected[f"{t.name.upper()}_{param.upper()}"] = t.offset(param)
    assert c == expected


def fetch_reference(pyramid: list[np.ndarray], uv: np.ndarray, lod: np.ndarray) -> np.ndarray:
    """Bilinear with wrap inside a level, linear between the two levels around lod (clamped)."""
    def bilinear(level: np.ndarray, u: float, v: float) -> np.ndarray:
        h, w, _ = level.shape
        x, y = u * w - 0.5, v * h - 0.5
        x0, y0 = int(np.floor(x)), int(np.floor(y))
        fx, fy = x - x0, y - y0
        c = [level[(y0 + j) % h, (x0 + i) % w].astype(np.float64) for j in (0, 1) for i in (0, 1)]
        return (1 - fy) * ((1 - fx) * c[0] + fx * c[1]) + fy * ((1 - fx) * c[2] + fx * c[3])

    out = []
    for (u, v), l in zip(uv.astype(np.float64), lod.astype(np.float64)):
        l = min(max(l, 0.0), len(pyramid) - 1)
        l0 = int(np.floor(l))
        l1 = min(l0 + 1, len(pyramid) - 1)
        out.append((1 - (l - l0)) * bilinear(pyramid[l0], u, v) + (l - l0) * bilinear(pyramid[l1], u, v))
    return np.array(out)


def random_pyramid(rng, layout: StackLayout, shapes) -> list[np.ndarray]:
    return [rng.random((h, w, layout.width)).astype(np.float32) for h, w in shapes]


def test_parameter_fetch_matches_numpy(device):
    rng = np.random.default_rng(11)
    layout = StackLayout(("diffuse", "dielectric"))
    pyramid = random_pyramid(rng, layout, [(5, 7), (3, 4), (2, 2), (1, 1)])
    material = ref.ReferenceMaterial(device, layout, pyramid)
    n = 400
    uv = rng.uniform(-2.5, 3.5, size=(n, 2)).astype(np.float32)
    lod = rng.uniform(-0.7, 4.2, size=n).astype(np.float32)
    lod[:8] = [0, 1, 2, 3, 0.5, 2.5, -1, 9]
    got = material.fetch_parameters(uv, lod)
    np.testing.assert_allclose(got, fetch_reference(pyramid, uv, lod), rtol=2e-4, atol=2e-5)


def test_material_set_offsets_each_material(device):
    """The second material of a set reads its own levels and texels through the binding helper."""
    rng = np.random.default_rng(12)
    a_layout, b_layout = StackLayout(("conductor", "dielectric", "sheen")), StackLayout(("diffuse",))
    a = ref.ReferenceMaterial(device, a_layout, random_pyramid(rng, a_layout, [(4, 4), (2, 2)]))
    b = ref.ReferenceMaterial(device, b_layout, random_pyramid(rng, b_layout, [(3, 6), (2, 3), (1, 1)]))
    materials = ref.MaterialSet(device, [a, b])
    n = 200
    uv = rng.uniform(0, 1, size=(n, 2)).astype(np.float32)
    lod = rng.uniform(0, 2, size=n).astype(np.float32)
    queries = query_records(uv, None, None, lod)
    query_buf = device.create_buffer(data=queries.ravel(), struct_size=4,
                                     usage=spy.BufferUsage.shader_resource)
    out = device.create_buffer(element_count=n * b.width, struct_size=4,
                               usage=spy.BufferUsage.unordered_access | spy.BufferUsage.shader_resource)
    compute_kernel(device, ref.QUERY_MODULE, "fetchKernel").dispatch(
        [n, 1, 1], vars={"materials": materials.uniform(), "materialIndex": materials.index(b),
                         "queries": query_buf, "results": out, "count": n, "seed": 0, "firstIndex": 0})
    got = out.to_numpy().view(np.float32).reshape(n, b.width)
    np.testing.assert_allclose(got, fetch_reference(list(b.pyramid), uv, lod), rtol=2e-4, atol=2e-5)


# --- exact cases ----------------------------------------------------------------------------------

def test_diffuse_only_stack_is_lambert_without_noise(device):
    rng = np.random.default_rng(1)
    albedo = np.array([0.8, 0.5, 0.2], np.float32)
    material = constant_stack(device, ("diffuse",), {(0, "albedo"): albedo})
    n = 256
    wi, wo = upper_hemisphere(rng, n), upper_hemisphere(rng, n)
    wi[: n // 4, 2] *= -1  # two-sided: seen from below, both directions mirror
    wo[: n // 4, 2] *= -1
    wo[n // 4: n // 2, 2] *= -1  # opposite sides: no transmission
    uv = rng.random((n, 2))
    expected = albedo[None] * np.abs(wo[:, 2:3]) / np.pi
    expected[n // 4: n // 2] = 0
    for seed in (0, 1):
        np.testing.assert_allclose(material.evaluate(uv, wi, wo, 0.0, n_walks=3, seed=seed), expected,
                                   rtol=1e-5, atol=1e-7)
    pdf = material.pdf(uv, wi, wo, 0.0)
    np.testing.assert_allclose(pdf, np.where(expected[:, 0] > 0, np.abs(wo[:, 2]) / np.pi, 0), rtol=1e-5, atol=1e-7)
    wo_s, weight, pdf_s = material.sample(uv, wi, 0.0)
    np.testing.assert_allclose(weight, np.broadcast_to(albedo, weight.shape), rtol=1e-5)
    np.testing.assert_allclose(pdf_s, np.abs(wo_s[:, 2]) / np.pi, rtol=1e-4)
    assert np.all(np.sign(wo_s[:, 2]) == np.sign(wi[:, 2]))


def layer_frame(normal, rotation: float) -> np.ndarray:
    """Rows t, b, n of layered.slang's layer frame: the normal, the tangent (cos r, sin r, 0)
    made orthogonal to it."""
    n = unit(normal)
    t = np.array([np.cos(rotation), np.sin(rotation), 0.0])
    t = unit(t - n * np.dot(n, t))
    return np.stack([t, np.cross(n, t), n]).astype(np.float64)


def test_conductor_only_stack_is_its_lobe(device):
    """A rough anisotropic conductor with a tilted normal and a rotated tangent evaluates exactly
    to ConductorLobe.fromArtist in that frame (tests/lobe_probe.py runs the lobe alone)."""
    from lobe_probe import LobeProbe, conductor_artist

    rng = np.random.default_rng(2)
    f0, edge, au, av, rot = (0.95, 0.64, 0.54), (1.0, 0.9, 0.8), 0.3, 0.08, 0.7
    normal = (0.2, -0.1, 0.97)
    material = constant_stack(device, ("conductor",), {
        (0, "f0"): f0, (0, "edge_tint"): edge, (0, "alpha_u"): au, (0, "alpha_v"): av,
        (0, "rotation"): rot, (0, "normal"): normal})
    frame = layer_frame(normal, rot)
    n = 512
    wi, wo = upper_hemisphere(rng, n, 0.3), upper_hemisphere(rng, n, 0.3)
    li, lo = wi @ frame.T, wo @ frame.T
    keep = (li[:, 2] > 0.05) & (lo[:, 2] > 0.05)
    wi, wo, li, lo = wi[keep], wo[keep], li[keep], lo[keep]
    expected, expected_pdf = LobeProbe(device).eval_pdf(conductor_artist(f0, edge, au, av), li, lo)
    uv = np.zeros((len(wi), 2))
    got = material.evaluate(uv, wi, wo, 0.0)
    np.testing.assert_allclose(got, expected, rtol=2e-3, atol=1e-6)
    np.testing.assert_allclose(material.pdf(uv, wi, wo, 0.0), expected_pdf, rtol=2e-3, atol=1e-6)
    assert expected.max() > 1.0  # the lobe is peaked enough for the comparison to mean something


def test_index_matched_coat_is_transparent(device):
    """A clear coat with IOR 1 and no absorption (smooth or rough) returns the base exactly: the
    chain and the entry pass straight through, nothing reflects."""
    rng = np.random.default_rng(3)
    albedo = np.array([0.8, 0.5, 0.2], np.float32)
    n = 256
    wi, wo = upper_hemisphere(rng, n), upper_hemisphere(rng, n)
    uv = rng.random((n, 2))
    for alpha in (0.0, 0.4):
        material = constant_stack(device, ("diffuse", "dielectric"),
                                  {(0, "albedo"): albedo, (1, "ior"): 1.0, (1, "alpha"): alpha})
        np.testing.assert_allclose(material.evaluate(uv, wi, wo, 0.0), albedo * wo[:, 2:3] / np.pi,
                                   rtol=1e-5, atol=1e-7)
        _, weight, pdf = material.sample(uv, wi, 0.0)
        np.testing.assert_allclose(weight, np.broadcast_to(albedo, weight.shape), rtol=1e-5)
        assert np.all(pdf > 0)


def test_albedo_estimate(device):
    """albedo() blends the layer reflectances top-down: a diffuse base alone is its albedo; a
    clear coat adds its normal-incidence reflectance and passes the rest to the base."""
    uv = np.zeros((1, 2))
    base = np.array([0.8, 0.5, 0.2])
    np.testing.assert_allclose(constant_stack(device, ("diffuse",), {(0, "albedo"): base}).albedo(uv, 0.0)[0],
                               base, rtol=1e-5)
    coat = constant_stack(device, ("diffuse", "dielectric"), {(0, "albedo"): base, (1, "ior"): 1.5,
                                                             (1, "weight"): 0.5})
    f0 = 0.04
    np.testing.assert_allclose(coat.albedo(uv, 0.0)[0], 0.5 * f0 + (0.5 + 0.5 * (1 - f0)) * base, rtol=1e-4)


def test_sheen_albedo_table_integrates_the_lobe(device):
    """The tabulated albedo that sets the sheen pass-through equals the mean weight of
    SheenLobe's own samples (tests/lobe_probe.py)."""
    from lobe_probe import LobeProbe, sheen

    table = ref.sheen_albedo_table(device).to_numpy().view(np.float32).reshape(ref.SHEEN_TABLE_SIZE, -1)
    probe = LobeProbe(device)
    n = ref.SHEEN_TABLE_SIZE
    for i, j in [(2, 0), (16, 5), (30, 15), (8, 31)]:
        cos_theta, alpha = (i + 0.5) / n, SHEEN_MIN_ALPHA + (1 - SHEEN_MIN_ALPHA) * j / (n - 1)
        wi = np.array([[np.sqrt(1 - cos_theta ** 2), 0.0, cos_theta]])
        weights = probe.sample(sheen(WHITE, alpha), wi, 100000, seed=j)["weight"][0, :, 0]
        assert abs(table[j, i] - weights.mean()) < 4 * weights.std() / np.sqrt(len(weights)) + 2e-3, (i, j)


def fresnel_dielectric(cos_i: np.ndarray, eta: float) -> np.ndarray:
    """Unpolarised Fresnel reflectance, light arriving in the medium of IOR 1 onto IOR eta."""
    cos_i = np.abs(cos_i)
    sin2_t = (1 - cos_i ** 2) / eta ** 2
    out = np.ones_like(cos_i)
    ok = sin2_t < 1
    ct, ci = np.sqrt(1 - sin2_t[ok]), cos_i[ok]
    rs, rp = (ci - eta * ct) / (ci + eta * ct), (eta * ci - ct) / (eta * ci + ct)
    out[ok] = 0.5 * (rs ** 2 + rp ** 2)
    return out


def test_smooth_coat_over_diffuse_matches_closed_form(device):
    """A smooth dielectric over a Lambertian base has a closed form (all orders of internal
    reflection): f = T(wi) T(wo) rho / (pi eta^2 (1 - rho r_i)), with r_i the cosine-weighted
    internal reflectance. It checks the eta^2 bookkeeping of the importance-form transmission."""
    eta, rho = 1.5, 0.8
    mu = (np.arange(100000) + 0.5) / 100000
    r_i = np.mean(fresnel_dielectric(mu, 1 / eta) * 2 * mu)
    material = constant_stack(device, ("diffuse", "dielectric"),
                              {(0, "albedo"): (rho,) * 3, (1, "ior"): eta, (1, "alpha"): 0.0})
    rng = np.random.default_rng(4)
    n = 48
    wi, wo = upper_hemisphere(rng, n, 0.2), upper_hemisphere(rng, n, 0.2)
    f = material.evaluate(np.zeros((n, 2)), wi, wo, 0.0, n_walks=2048)[:, 0]
    expected = ((1 - fresnel_dielectric(wi[:, 2], eta)) * (1 - fresnel_dielectric(wo[:, 2], eta)) * rho
                / (np.pi * eta ** 2 * (1 - rho * r_i)) * wo[:, 2])
    ratio = f / expected
    assert abs(ratio.mean() - 1) < 0.01
    assert np.all(np.abs(ratio - 1) < 0.08)


# --- energy and consistency -----------------------------------------------------------------------

@pytest.mark.parametrize("name", list(STACKS))
def test_no_stack_reflects_more_than_it_receives(device, name):
    material = stack(device, name)
    rng = np.random.default_rng(5)
    n = 100000
    for theta in (0.2, 0.9, 1.45):
        _, weight, pdf = material.sample(rng.random((n, 2)), repeated(direction(theta, 0.4), n), 0.0)
        albedo, err = mean_and_error(weight)
        assert np.all(weight >= 0) and np.all(pdf >= 0)
        assert np.all(albedo <= 1 + 4 * err + 1e-3), (theta, albedo, err)


@pytest.mark.parametrize("name, minimum", [("smooth coat", 0.995), ("white sheen", 0.99)])
def test_white_furnace_keeps_energy_where_nothing_absorbs(device, name, minimum):
    """Nothing absorbs, so everything comes back: a smooth coat over a white diffuse base, and a
    white sheen (reflection + pass-through = 1) over it."""
    if name == "smooth coat":
        material = constant_stack(device, ("diffuse", "dielectric"),
                                  {(0, "albedo"): WHITE, (1, "ior"): 1.5, (1, "alpha"): 0.0})
    else:
        material = stack(device, "sheen_over_white_diffuse")
    n = 100000
    for theta in (0.1, 0.8, 1.4):
        _, weight, _ = material.sample(np.zeros((n, 2)), repeated(direction(theta), n), 0.0, seed=2)
        albedo, err = mean_and_error(weight)
        assert np.all(albedo >= minimum - 4 * err) and np.all(albedo <= 1 + 4 * err + 1e-3), (theta, albedo)


CONSISTENCY_STACKS = ["coat_over_white_diffuse", "absorbing_coat_over_conductor", "flakes_and_coat_over_diffuse",
                      "sheen_over_white_diffuse"]


@pytest.mark.parametrize("name", CONSISTENCY_STACKS)
def test_sample_weights_integrate_eval(device, name):
    """The mean sample() weight (directional albedo) equals the integral of eval() over wo,
    estimated with cosine-distributed wo; and sample()'s pdf is pdf() at the sampled wo."""
    material = stack(device, name)
    rng = np.random.default_rng(6)
    n = 200000
    for theta in (0.3, 1.2):
        wi = repeated(direction(theta, 0.9), n)
        uv = np.zeros((n, 2))
        wo_s, weight, pdf_s = material.sample(uv, wi, 0.0, seed=7)
        albedo, albedo_err = mean_and_error(weight)
        wo = cosine_directions(rng, n)
        integrand = material.evaluate(uv, wi, wo, 0.0, seed=8) / (wo[:, 2:3] / np.pi)
        integral, integral_err = mean_and_error(integrand)
        tolerance = 4 * np.sqrt(albedo_err ** 2 + integral_err ** 2) + 2e-3
        assert np.all(np.abs(albedo - integral) <= tolerance), (theta, albedo, integral, tolerance)
        ok = pdf_s > 0
        np.testing.assert_allclose(material.pdf(uv[ok][:2000], wi[ok][:2000], wo_s[ok][:2000], 0.0),
                                   pdf_s[ok][:2000], rtol=1e-4)


@pytest.mark.slow
def test_five_layer_sample_weights_integrate_eval(device):
    material = stack(device, "five_layers")
    rng = np.random.default_rng(16)
    n = 2000000
    for theta in (0.3, 1.2):
        wi = repeated(direction(theta, 0.9), n)
        _, weight, _ = material.sample(np.zeros((n, 2)), wi, 0.0, seed=17)
        wo = cosine_directions(rng, n)
        integrand = material.evaluate(np.zeros((n, 2)), wi, wo, 0.0, seed=18) / (wo[:, 2:3] / np.pi)
        (a, ea), (b, eb) = mean_and_error(weight), mean_and_error(integrand)
        assert np.all(np.abs(a - b) <= 4 * np.sqrt(ea ** 2 + eb ** 2) + 1e-3), (theta, a, b)


# --- convergence, presence weights, reciprocity ---------------------------------------------------

def test_eval_variance_falls_as_one_over_walks(device):
    """The plain estimator's variance falls as 1 / walks (16 walks: a ratio of 16 up to sampling
    error); the default one stratifies its walks (Latin hypercube), so at least about as fast."""
    material = stack(device, "coat_over_white_diffuse", {(1, "alpha"): 0.3})
    wi, wo = direction(0.5), direction(0.8, 2.5)
    one = material.evaluate(np.zeros((40000, 2)), repeated(wi, 40000), repeated(wo, 40000), 0.0, n_walks=1)
    sixteen = material.evaluate(np.zeros((4000, 2)), repeated(wi, 4000), repeated(wo, 4000), 0.0, n_walks=16)
    ratio = one[:, 0].astype(np.float64).var() / sixteen[:, 0].astype(np.float64).var()
    assert ratio >= 8, ratio
    plain = ref.WalkSettings(plain=True)
    plain_one, plain_sixteen = (material.evaluate(np.zeros((n, 2)), repeated(wi, n), repeated(wo, n), 0.0,
                                             n_walks=walks, walk=plain) for n, walks in ((40000, 1), (4000, 16)))
    plain_ratio = plain_one[:, 0].astype(np.float64).var() / plain_sixteen[:, 0].astype(np.float64).var()
    assert 8 <= plain_ratio <= 32, plain_ratio
    (m1, e1), (m16, e16) = mean_and_error(one), mean_and_error(sixteen)
    assert np.all(np.abs(m1 - m16) <= 4 * np.hypot(e1, e16))
    other_seed = material.evaluate(np.zeros((40000, 2)), repeated(wi, 40000), repeated(wo, 40000), 0.0, seed=1)
    (m2, e2) = mean_and_error(other_seed)
    assert not np.array_equal(one, other_seed)
    assert np.all(np.abs(m1 - m2) <= 4 * np.hypot(e1, e2))


@pytest.mark.parametrize("name, layer", [("coat_over_white_diffuse", 1), ("flakes_and_coat_over_diffuse", 1),
                                         ("five_layers", 3)])
def test_layer_weight_blends_the_stacks_with_and_without_it(device, name, layer):
    rng = np.random.default_rng(9)
    wi, wo = upper_hemisphere(rng, 12, 0.2), upper_hemisphere(rng, 12, 0.2)
    w = 0.35
    results = {}
    for weight in (w, 1.0, 0.0):
        results[weight] = pair_means(stack(device, name, {(layer, "weight"): weight}), wi, wo, 6000, seed=3)
    (fw, ew), (f1, e1), (f0, e0) = results[w], results[1.0], results[0.0]
    blend = w * f1 + (1 - w) * f0
    z = (fw - blend) / np.sqrt(ew ** 2 + (w * e1) ** 2 + ((1 - w) * e0) ** 2 + 1e-12)
    assert np.mean(z ** 2) < 2.0 and np.abs(z).max() < 5, z


def test_absent_layer_changes_nothing(device):
    """Weight 0 removes a layer exactly: the stack is its base, without noise."""
    rng = np.random.default_rng(10)
    n = 128
    wi, wo, uv = upper_hemisphere(rng, n), upper_hemisphere(rng, n), rng.random((n, 2))
    coated = constant_stack(device, ("diffuse", "dielectric", "sheen"),
                            {(0, "albedo"): (0.7, 0.4, 0.2), (1, "weight"): 0.0, (1, "ior"): 1.5,
                             (1, "alpha"): 0.1, (2, "weight"): 0.0, (2, "color"): WHITE, (2, "alpha"): 0.3})
    np.testing.assert_allclose(coated.evaluate(uv, wi, wo, 0.0),
                               np.array([0.7, 0.4, 0.2]) * wo[:, 2:3] / np.pi, rtol=1e-5, atol=1e-7)


@pytest.mark.parametrize("name", ["coat_over_white_diffuse", "absorbing_coat_over_conductor",
                                  "sheen_over_white_diffuse", "flakes_and_coat_over_diffuse"])
def test_reciprocity(device, name):
    """f(wi, wo) = f(wo, wi) with or without absorption (exp(-sigma t / |cos|) is symmetric, and
    the sheen pass-through 1 - albedo(cos) applies on the way in and on the way out): eval / |cos wo|
    compared both ways. Layer normals are flat here: a tilted layer normal evaluates its lobe with
    its own frame's cosine, which, as with any normal map, is not reciprocal in the shading frame."""
    rng = np.random.default_rng(13)
    wi, wo = upper_hemisphere(rng, 12, 0.15), upper_hemisphere(rng, 12, 0.15)
    types, _ = STACKS[name]
    material = stack(device, name, {(i, "normal"): (0.0, 0.0, 1.0) for i in range(len(types))})
    a, ea = pair_means(material, wi, wo, 6000, seed=4)
    b, eb = pair_means(material, wo, wi, 6000, seed=5)
    a, ea = a / wo[:, 2:3], ea / wo[:, 2:3]
    b, eb = b / wi[:, 2:3], eb / wi[:, 2:3]
    z = (a - b) / np.sqrt(ea ** 2 + eb ** 2 + 1e-12)
    assert np.mean(z ** 2) < 2.0 and np.abs(z).max() < 5, z


# --- the Python API -------------------------------------------------------------------------------

def test_results_do_not_depend_on_chunking(device, monkeypatch):
    material = stack(device, "flakes_and_coat_over_diffuse")
    rng = np.random.default_rng(14)
    n = 1000
    uv, wi, wo = rng.random((n, 2)), upper_hemisphere(rng, n), upper_hemisphere(rng, n)
    lod = rng.random(n)
    whole = material.evaluate(uv, wi, wo, lod, seed=3), material.sample(uv, wi, lod, seed=3)
    monkeypatch.setattr(query, "CHUNK", 300)
    split = material.evaluate(uv, wi, wo, lod, seed=3), material.sample(uv, wi, lod, seed=3)
    np.testing.assert_array_equal(whole[0], split[0])
    for x, y in zip(whole[1], split[1]):
        np.testing.assert_array_equal(x, y)


def test_bad_shapes_are_reported(device):
    material = stack(device, "coat_over_white_diffuse")
    uv, w = np.zeros((4, 2)), np.tile([0.0, 0.0, 1.0], (4, 1))
    with pytest.raises(ValueError, match=r"wi must have shape \[4, 3\]"):
        material.evaluate(uv, w[:3], w, 0.0)
    with pytest.raises(ValueError, match="uv must have shape"):
        material.sample(np.zeros((4, 3)), w, 0.0)
    with pytest.raises(ValueError, match="lod must be a scalar or have shape"):
        material.pdf(uv, w, w, np.zeros(5))
    with pytest.raises(ValueError, match="expected \\[H, W, 17\\]"):
        ref.ReferenceMaterial(device, StackLayout(("diffuse", "dielectric")), [np.zeros((2, 2, 7))])
    with pytest.raises(ValueError, match="bottom layer must be one of"):
        ref.ReferenceMaterial(device, StackLayout(("sheen",)), [np.zeros((1, 1, 8))])
    assert material.evaluate(np.zeros((0, 2)), np.zeros((0, 3)), np.zeros((0, 3)), 0.0).shape == (0, 3)


def bundled_materials() -> list[Path]:
    return sorted((ASSET_DIR / "materials").glob("*.toml"))


@pytest.mark.parametrize("path", bundled_materials(), ids=lambda p: p.stem)
def test_bundled_material_evaluates(device, path):
    pytest.importorskip("neumat.renderer.materials.graph")
    material = ref.ReferenceMaterial.from_file(device, path, resolution=32)
    rng = np.random.default_rng(15)
    n = 2000
    uv, wi, wo = rng.random((n, 2)), upper_hemisphere(rng, n), upper_hemisphere(rng, n)
    lod = rng.uniform(0, len(material.pyramid), n)
    f = material.evaluate(uv, wi, wo, lod)
    assert np.all(np.isfinite(f)) and np.all(f >= 0) and f.max() > 0
    _, weight, pdf = material.sample(uv, wi, lod)
    assert np.all(np.isfinite(weight)) and np.all(weight >= 0) and np.all(np.isfinite(pdf))


# The flat-patch configurations of the bake report (training/report.py FLAT_PATCH_CONFIGS): view and
# light polar angles in degrees, on opposite sides.
FLAT_PATCH_ANGLES = {"front": (0.0, 30.0), "specular": (45.0, 45.0), "grazing": (80.0, 60.0)}


# Materials the estimator was not tuned on: the training tests' stress set (narrow bright lacquer over a
# dark base, partial layers, sheen over a coat, strong anisotropy, near-white albedo).
STRESS_MATERIALS = sorted((Path(__file__).parent / "materials").glob("*.toml"))


@pytest.mark.parametrize("path", bundled_materials() + STRESS_MATERIALS, ids=lambda p: p.stem)
def test_default_estimator_has_the_plain_estimators_mean(device, path):
    """Closed-form presence and stratified walks (layered.slang eval) change the variance only: on
    every bundled and stress material, in the flat-patch configurations and at random directions,
    the default estimator and the plain one (presence drawn per walk, pseudo-random numbers) agree
    on the mean over 1024 texels within 4.5 standard errors of their difference, per channel."""
    material = ref.ReferenceMaterial.from_file(device, path, resolution=64)
    rng = np.random.default_rng(21)
    n, walks = 1024, 64
    uv = rng.random((n, 2)).astype(np.float32)
    cases = {name: (repeated(direction(np.radians(v)), n), repeated(direction(np.radians(l), np.pi), n))
             for name, (v, l) in FLAT_PATCH_ANGLES.items()}
    cases["random"] = (upper_hemisphere(rng, n, 0.05), upper_hemisphere(rng, n, 0.05))
    plain = ref.WalkSettings(n_walks=walks, plain=True)
    for name, (wi, wo) in cases.items():
        default = material.evaluate(uv, wi, wo, 0.0, n_walks=walks, seed=5).astype(np.float64)
        reference = material.evaluate(uv, wi, wo, 0.0, seed=6, walk=plain).astype(np.float64)
        d = default - reference
        error = d.std(axis=0) / np.sqrt(n)
        z = d.mean(axis=0) / np.maximum(error, 1e-12 * reference.mean(axis=0) + 1e-30)
        assert np.abs(z).max() < 4.5, (name, z, default.mean(axis=0), reference.mean(axis=0))
        assert reference.mean() > 0, name


def test_closed_form_presence_removes_the_noise_of_a_partial_opaque_top(device):
    """A partial diffuse layer over a coat: with presence in closed form, the walk/no-walk choice adds
    no variance, so one walk of the default estimator is several times less noisy than the plain one
    (the presence choice alone is most of the plain estimator's variance here)."""
    material = constant_stack(device, ("diffuse", "dielectric", "diffuse"),
                              {(0, "albedo"): (0.8, 0.2, 0.1), (1, "ior"): 1.5, (1, "alpha"): 0.3,
                               (2, "weight"): 0.5, (2, "albedo"): (0.1, 0.1, 0.1)})
    wi, wo = direction(0.3), direction(0.6, 2.0)
    n = 20000
    default = material.evaluate(np.zeros((n, 2)), repeated(wi, n), repeated(wo, n), 0.0)
    plain = material.evaluate(np.zeros((n, 2)), repeated(wi, n), repeated(wo, n), 0.0,
                         walk=ref.WalkSettings(plain=True))
    ratio = plain[:, 0].astype(np.float64).var() / default[:, 0].astype(np.float64).var()
    assert ratio > 3, ratio  # measured 4.2-4.7 over four seeds


def test_glossy_coat_reflection_is_sampled_at_least_half_the_time(device):
    """sample() picks a dielectric top's reflection with probability at least TOP_REFLECTION_MIN = 0.5
    (by Fresnel alone, about 4 % at normal incidence: salt noise wherever a glossy coat reflects a
    light). With alpha 0.05, 87 % of GGX reflections stay within 15 degrees of the mirror direction
    (half vectors within 7.5 degrees: t^2 / (alpha^2 + t^2), t = tan 7.5 deg), where the diffuse base
    sends about 7 % of its samples: 0.5 * 0.87 + 0.5 * 0.07 = 0.47 expected (0.10 with Fresnel's
    choice); and the weight near the mirror direction is still what Fresnel gives (0.04 * 0.87 from
    the reflection, about 0.015 from the base: 0.05), not inflated by the more frequent choice."""
    material = constant_stack(device, ("diffuse", "dielectric"),
                              {(0, "albedo"): (0.5, 0.5, 0.5), (1, "ior"): 1.5, (1, "alpha"): 0.05})
    n = 100000
    wi = direction(0.4)
    wo, weight, _ = material.sample(np.zeros((n, 2)), repeated(wi, n), 0.0, seed=3)
    mirror = np.array([-wi[0], -wi[1], wi[2]])
    near = wo @ mirror > np.cos(np.radians(15))
    assert 0.42 <= near.mean() <= 0.52, near.mean()
    share = weight[near, 1].sum() / n
    assert 0.04 <= share <= 0.066, share


def test_stratified_walks_beat_plain_walks_on_a_partial_layer(device):
    """A flake layer present half the time under a coat: the walks of one eval() stratify its presence
    (and their first lobe samples), so 16 default walks are clearly less noisy than 16 plain ones
    (measured 1.8-1.9x over four seeds; Latin hypercube sampling is never much worse than plain)."""
    material = stack(device, "flakes_and_coat_over_diffuse", {(1, "weight"): 0.5})
    wi, wo, n = direction(0.5), direction(0.8, 2.5), 4000
    args = (np.zeros((n, 2)), repeated(wi, n), repeated(wo, n), 0.0)
    default = material.evaluate(*args, n_walks=16, seed=4)[:, 0].astype(np.float64)
    plain = material.evaluate(*args, n_walks=16, seed=4, walk=ref.WalkSettings(plain=True))[:, 0].astype(np.float64)
    assert plain.var() / default.var() > 1.4, plain.var() / default.var()
