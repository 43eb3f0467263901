"""The parameter mip pyramid: exact means for linear parameters, LEAN-style widening of roughness
from normal variance (isotropic and anisotropic), per-layer weighting, and the bundled materials."""

import math
from pathlib import Path

import numpy as np
import pytest

from neumat.renderer.core.errors import NeumatError
from neumat.renderer.materials.graph import PARAM_RULES, Material, evaluate_parameters, load_material
from neumat.renderer.materials.layout import LAYER_TYPES
from neumat.renderer.materials.pyramid import build_pyramid
from neumat.renderer.core.paths import ASSET_DIR

STACK = """
[material]
name = "stack"
resolution = 32

[nodes.height]
type = "fbm"
scale = 4
octaves = 4
seed = 1

[nodes.bumps]
type = "height_to_normal"
input = "height"
strength = 0.2

[nodes.tone]
type = "fbm"
scale = 8
seed = 2

[nodes.colour]
type = "mix"
a = [0.9, 0.2, 0.1]
b = [0.1, 0.5, 0.8]
factor = "tone"

[[layers]]
type = "diffuse"
albedo = "colour"
normal = "bumps"

[[layers]]
type = "dielectric"
weight = "tone"
ior = 1.5
alpha = 0.05
absorption = "colour"
normal = "bumps"

[[layers]]
type = "conductor"
weight = 0.5
f0 = 0.9
alpha_u = 0.1
alpha_v = 0.3
rotation = 30
"""


def stack(tmp_path: Path, text: str = STACK) -> Material:
    path = tmp_path / "stack.toml"
    path.write_text(text)
    return load_material(path)


def test_levels_halve_down_to_one(tmp_path):
    material = stack(tmp_path)
    params = evaluate_parameters(material)
    levels = build_pyramid(material, params)
    assert [lv.shape for lv in levels] == [(s, s, material.layout.width) for s in (32, 16, 8, 4, 2, 1)]
    assert all(lv.dtype == np.float32 for lv in levels)
    np.testing.assert_array_equal(levels[0], params)


def test_linear_means_preserved_and_normals_unit(tmp_path):
    material = stack(tmp_path)
    lay = material.layout
    levels = build_pyramid(material, evaluate_parameters(material))
    albedo0 = levels[0][..., lay.slot(0, "albedo")].mean(axis=(0, 1), dtype=np.float64)
    weight0 = levels[0][..., lay.slot(1, "weight")].mean(dtype=np.float64)
    for lv in levels:
        albedo = lv[..., lay.slot(0, "albedo")].mean(axis=(0, 1), dtype=np.float64)
        np.testing.assert_allclose(albedo, albedo0, rtol=1e-5)
        assert lv[..., lay.slot(1, "weight")].mean(dtype=np.float64) == pytest.approx(weight0, rel=1e-5)
        for i in range(len(lay.layer_types)):
            n = lv[..., lay.slot(i, "normal")]
            np.testing.assert_allclose(np.linalg.norm(n, axis=-1), 1, atol=1e-5)
            assert n[..., 2].min() > 0


def test_bumpy_normals_widen_alpha(tmp_path):
    material = stack(tmp_path)
    lay = material.layout
    levels = build_pyramid(material, evaluate_parameters(material))
    alpha = [lv[..., lay.slot(1, "alpha")].mean() for lv in levels]
    assert levels[0][..., lay.slot(1, "normal")][..., 2].min() < 0.95, "the test needs a bumpy normal map"
    assert all(a >= alpha[0] - 1e-7 for a in alpha)
    assert alpha[-1] > 2 * alpha[0]
    # The normal flattens as the bumps average out, so the lobe must widen instead.
    assert levels[-1][0, 0, lay.slot(1, "normal")][2] > 0.99


def test_flat_normals_keep_alpha(tmp_path):
    material = stack(tmp_path, STACK.replace('normal = "bumps"', "normal = [0, 0, 1]"))
    lay = material.layout
    levels = build_pyramid(material, evaluate_parameters(material))
    for lv in levels:
        np.testing.assert_allclose(lv[..., lay.slot(1, "alpha")], 0.05, rtol=1e-5)
        np.testing.assert_allclose(lv[..., lay.slot(2, "alpha_u")], 0.1, rtol=1e-5)
        np.testing.assert_allclose(lv[..., lay.slot(2, "alpha_v")], 0.3, rtol=1e-5)
        np.testing.assert_allclose(lv[..., lay.slot(2, "rotation")], math.radians(30), rtol=1e-5)


def two_by_two(material: Material, slopes_x: list[float], slopes_y: list[float]) -> np.ndarray:
    """The stack's parameters at 2 x 2 with every normal set from the given slopes."""
    lay = material.layout
    params = evaluate_parameters(material, 2)
    sx, sy = np.reshape(slopes_x, (2, 2)), np.reshape(slopes_y, (2, 2))
    n = np.stack([-sx, -sy, np.ones((2, 2))], axis=-1)
    n /= np.linalg.norm(n, axis=-1, keepdims=True)
    for i in range(len(lay.layer_types)):
        params[..., lay.slot(i, "normal")] = n
    return params


def test_lean_formula_on_two_by_two(tmp_path):
    text = STACK.replace('weight = "tone"', "weight = 1").replace("weight = 0.5", "weight = 1").replace("rotation = 30", "")
    text = text.replace("alpha_u = 0.1\nalpha_v = 0.3", "alpha = 0.1")
    material = stack(tmp_path, text)
    lay = material.layout
    t = 0.2
    # Slopes +-t along u: variance t^2 along x.
    top = build_pyramid(material, two_by_two(material, [t, -t, t, -t], [0, 0, 0, 0]))[1][0, 0]
    np.testing.assert_allclose(top[lay.slot(0, "normal")], [0, 0, 1], atol=1e-6)
    assert top[lay.slot(1, "alpha")][0] == pytest.approx(math.sqrt(0.05**2 + t * t), rel=1e-5)
    assert top[lay.slot(2, "alpha_u")][0] == pytest.approx(math.sqrt(0.1**2 + 2 * t * t), rel=1e-5)
    assert top[lay.slot(2, "alpha_v")][0] == pytest.approx(0.1, rel=1e-5)
    assert top[lay.slot(2, "rotation")][0] == pytest.approx(0, abs=1e-6)
    # The same bumps along v widen alpha_v and keep the rotation (rather than turning it by 90 degrees).
    top = build_pyramid(material, two_by_two(material, [0, 0, 0, 0], [t, t, -t, -t]))[1][0, 0]
    assert top[lay.slot(2, "alpha_u")][0] == pytest.approx(0.1, rel=1e-5)
    assert top[lay.slot(2, "alpha_v")][0] == pytest.approx(math.sqrt(0.1**2 + 2 * t * t), rel=1e-5)
    assert top[lay.slot(2, "rotation")][0] == pytest.approx(0, abs=1e-6)
    # A common tilt moves the normal and adds no variance.
    top = build_pyramid(material, two_by_two(material, [t] * 4, [0] * 4))[1][0, 0]
    np.testing.assert_allclose(top[lay.slot(1, "normal")], np.array([-t, 0, 1]) / math.hypot(t, 1), atol=1e-6)
    assert top[lay.slot(1, "alpha")][0] == pytest.approx(0.05, rel=1e-5)


def test_diagonal_bumps_rotate_anisotropy(tmp_path):
    text = STACK.replace("alpha_u = 0.1\nalpha_v = 0.3", "alpha = 0.1").replace("rotation = 30", "rotation = 40")
    material = stack(tmp_path, text)
    lay = material.layout
    t = 0.3 / math.sqrt(2)
    top = build_pyramid(material, two_by_two(material, [t, -t, t, -t], [t, -t, t, -t]))[1][0, 0]
    # Variance along (1, 1): the wide axis is at 45 degrees, the closest choice to the 40 given.
    assert top[lay.slot(2, "rotation")][0] == pytest.approx(math.radians(45), abs=1e-5)
    assert top[lay.slot(2, "alpha_u")][0] > top[lay.slot(2, "alpha_v")][0] == pytest.approx(0.1, rel=1e-5)


def test_layer_parameters_are_weighted_by_presence(tmp_path):
    material = stack(tmp_path)
    lay = material.layout
    params = evaluate_parameters(material, 8)
    present = (np.indices((8, 8)).sum(axis=0) % 2 == 0)
    params[..., lay.slot(1, "weight")] = present[..., None]
    params[..., lay.slot(1, "absorption")] = np.where(present[..., None], 0.2, 5.0)
    for lv in build_pyramid(material, params)[1:]:
        np.testing.assert_allclose(lv[..., lay.slot(1, "weight")], 0.5, atol=1e-6)
        np.testing.assert_allclose(lv[..., lay.slot(1, "absorption")], 0.2, atol=1e-4)
    # A layer absent from a whole footprint falls back to the plain average.
    params[..., lay.slot(1, "weight")] = 0
    np.testing.assert_allclose(build_pyramid(material, params)[-1][0, 0, lay.slot(1, "absorption")], 2.6, rtol=1e-5)


def test_bad_shape_is_rejected(tmp_path):
    material = stack(tmp_path)
    with pytest.raises(NeumatError, match="power of two"):
        build_pyramid(material, np.zeros((12, 12, material.layout.width), np.float32))
    with pytest.raises(NeumatError, match="stack.toml"):
        build_pyramid(material, np.zeros((8, 8, 3), np.float32))


@pytest.mark.parametrize("path", sorted((ASSET_DIR / "materials").glob("*.toml")), ids=lambda p: p.stem)
def test_bundled_pyramids_stay_in_range(path):
    material = load_material(path)
    levels = build_pyramid(material, evaluate_parameters(material, 64))
    for lv in levels:
        assert np.all(np.isfinite(lv))
        for i, type_name in enumerate(material.layout.layer_types):
            for p, _ in LAYER_TYPES[type_name].params:
                v = lv[..., material.layout.slot(i, p)]
                rule = PARAM_RULES[p]
                if p == "normal":
                    np.testing.assert_allclose(np.linalg.norm(v, axis=-1), 1, atol=1e-5)
                    assert v[..., 2].min() > 0
                elif rule.kind == "value":
                    assert rule.lo - 1e-6 <= v.min() and v.max() <= rule.hi + 1e-6, f"layers[{i}].{p}"
