"""The material graph: node types on small exact cases, the bundled materials, the uv and layout
conventions of evaluate_parameters, and one clear error per kind of broken input."""

import math
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from neumat.renderer.core.errors import NeumatError
from neumat.renderer.materials import nodes as nd
from neumat.renderer.materials.graph import (
    PARAM_RULES, evaluate_parameters, load_material, validate_material)
from neumat.renderer.materials.layout import LAYER_TYPES, MAX_LAYERS
from neumat.renderer.core.paths import ASSET_DIR

BUNDLED = sorted((ASSET_DIR / "materials").glob("*.toml"))


def run_node(type_name: str, n: int = 8, **fields) -> np.ndarray:
    """Evaluates one node type on an n x n grid; input fields may be given as [n, n, C] arrays."""
    node_type = nd.NODE_TYPES[type_name]
    params = {}
    for name, spec in node_type.fields.items():
        value = fields.get(name, spec.default)
        if isinstance(value, np.ndarray):
            params[name] = value
        elif name in fields:
            params[name] = spec.parse(value)
            if spec.is_input:
                params[name] = params[name][None, None, :]
        else:
            params[name] = value
    node_type.check(params)
    out = node_type.evaluate(params, nd.Grid(n))
    return np.broadcast_to(out, (n, n, out.shape[-1]))


def centres(n: int) -> tuple[np.ndarray, np.ndarray]:
    c = (np.arange(n) + 0.5) / n
    return c[None, :], c[:, None]


# --- Node types --------------------------------------------------------------------------------------

def test_constant_fills_every_texel():
    out = run_node("constant", n=4, value=[0.1, 0.2, 0.3])
    assert out.shape == (4, 4, 3) and out.dtype == np.float32
    np.testing.assert_array_equal(out, np.broadcast_to(np.float32([0.1, 0.2, 0.3]), (4, 4, 3)))


def test_checker_exact_and_u_along_columns():
    out = run_node("checker", n=8, columns=4, rows=2)[..., 0]
    i, j = np.mgrid[0:8, 0:8]
    np.testing.assert_array_equal(out, ((i // 4 + j // 2) % 2 == 0).astype(np.float32))


def test_checker_odd_count_is_rejected():
    with pytest.raises(nd.SpecError, match="even"):
        run_node("checker", columns=3, rows=2)


def test_remap_curves_exact():
    x = np.array([-1.0, 0.0, 0.25, 0.5, 1.0, 2.0], np.float32).reshape(1, 6, 1)

    def remap(**fields):
        return run_node("remap", n=6, input=x, **fields)[0, :, 0]

    linear = remap(to=[2.0, 4.0])
    np.testing.assert_allclose(linear, [2, 2, 2.5, 3, 4, 4], atol=1e-6)
    smooth = remap(curve="smoothstep")
    np.testing.assert_allclose(smooth, [0, 0, 0.15625, 0.5, 1, 1], atol=1e-6)
    power = remap(curve="power", exponent=2.0, to=[1.0, 0.0])
    np.testing.assert_allclose(power, [1, 1, 0.9375, 0.75, 0, 0], atol=1e-6)
    points = remap(curve="points", points=[[0, 0], [0.5, 1], [1, 0]])
    np.testing.assert_allclose(points, [0, 0, 0.5, 1, 0, 0], atol=1e-6)
    ranged = remap(**{"from": [0.0, 0.5]})
    np.testing.assert_allclose(ranged, [0, 0, 0.5, 1, 1, 1], atol=1e-6)


def test_mix_and_arithmetic_exact():
    a = np.float32([0.0, 0.5, 1.0])[None, None, :]
    b = np.float32([1.0, 2.0, 3.0])[None, None, :]
    np.testing.assert_allclose(run_node("mix", n=2, a=a, b=b, factor=0.25), np.broadcast_to([0.25, 0.875, 1.5], (2, 2, 3)))
    np.testing.assert_allclose(run_node("multiply", n=2, a=a, b=2.0), np.broadcast_to([0, 1, 2], (2, 2, 3)))
    np.testing.assert_allclose(run_node("add", n=2, a=a, b=b), np.broadcast_to([1, 2.5, 4], (2, 2, 3)))
    np.testing.assert_allclose(run_node("subtract", n=2, a=a, b=b), np.broadcast_to([-1, -1.5, -2], (2, 2, 3)))
    np.testing.assert_allclose(run_node("max", n=2, a=a, b=0.7), np.broadcast_to([0.7, 0.7, 1], (2, 2, 3)))
    np.testing.assert_allclose(run_node("min", n=2, a=a, b=0.7), np.broadcast_to([0, 0.5, 0.7], (2, 2, 3)))


def test_height_to_normal_of_ramps():
    n, slope, strength = 16, 3.0, 0.05
    u, v = centres(n)
    ramp_u = np.broadcast_to(slope * u, (n, n))[..., None]
    out = run_node("height_to_normal", n=n, input=ramp_u, strength=strength)
    expected = np.array([-strength * slope, 0, 1]) / math.hypot(strength * slope, 1)
    # Interior columns only: the ramp itself does not wrap.
    np.testing.assert_allclose(out[:, 1:-1], np.broadcast_to(expected, (n, n - 2, 3)), atol=1e-6)
    ramp_v = np.broadcast_to(slope * v, (n, n))[..., None]
    out = run_node("height_to_normal", n=n, input=ramp_v, strength=strength)
    np.testing.assert_allclose(out[1:-1], np.broadcast_to(expected[[1, 0, 2]], (n - 2, n, 3)), atol=1e-6)


def test_normal_map_decodes_and_flips():
    rgb = np.float32([0.75, 0.25, 1.0])[None, None, :]
    n = run_node("normal_map", n=1, input=rgb)[0, 0]
    np.testing.assert_allclose(n, np.array([0.5, -0.5, 1.0]) / math.sqrt(1.5), atol=1e-6)
    flipped = run_node("normal_map", n=1, input=rgb, flip_y=True)[0, 0]
    np.testing.assert_allclose(flipped, n * [1, -1, 1], atol=1e-6)


@pytest.mark.parametrize("basis", ["gradient", "value"])
def test_fbm_range_determinism_and_tiling(basis):
    out = run_node("fbm", n=128, scale=[3, 5], octaves=4, seed=9, basis=basis)[..., 0]
    assert 0 <= out.min() and out.max() <= 1 and abs(out.mean() - 0.5) < 0.1 and out.std() > 0.05
    np.testing.assert_array_equal(out, run_node("fbm", n=128, scale=[3, 5], octaves=4, seed=9, basis=basis)[..., 0])
    assert np.abs(out - run_node("fbm", n=128, scale=[3, 5], octaves=4, seed=10, basis=basis)[..., 0]).max() > 0.1
    # Across the wrap, neighbouring texels differ no more than interior neighbours do.
    for axis in (0, 1):
        interior = np.abs(np.diff(out, axis=axis)).max()
        seam = np.abs(out.take(0, axis) - out.take(-1, axis)).max()
        assert seam <= 1.1 * interior
    # And the function itself has period 1 in u and v.
    u, v = centres(32)
    a = nd.fbm(u, v, (3, 5), 4, 2.0, 0.5, 9, basis)
    b = nd.fbm(u + 1.0, v - 2.0, (3, 5), 4, 2.0, 0.5, 9, basis)
    np.testing.assert_allclose(a, b, atol=1e-9)


def test_warp_keeps_tiling():
    out = run_node("fbm", n=128, scale=4, seed=2, warp=0.1)[..., 0]
    plain = run_node("fbm", n=128, scale=4, seed=2)[..., 0]
    assert np.abs(out - plain).max() > 0.05
    for axis in (0, 1):
        assert np.abs(out.take(0, axis) - out.take(-1, axis)).max() <= 1.1 * np.abs(np.diff(out, axis=axis)).max()


def test_worley_against_brute_force():
    n, (nx, ny), seed, jitter = 32, (3, 4), 5, 0.8
    px = 0.5 + jitter * (nd._cell_table(nx, ny, seed, 0) - 0.5)
    py = 0.5 + jitter * (nd._cell_table(nx, ny, seed, 1) - 0.5)
    cy, cx = np.mgrid[0:ny, 0:nx]
    points = np.stack([(cx + px).ravel(), (cy + py).ravel()], axis=1)  # in cell units
    u, v = centres(n)
    x = np.broadcast_to(u * nx, (n, n)).ravel()
    y = np.broadcast_to(v * ny, (n, n)).ravel()
    dists = []
    for ox in (-nx, 0, nx):  # every periodic image
        for oy in (-ny, 0, ny):
            dists.append(np.hypot(x[:, None] - points[None, :, 0] - ox, y[:, None] - points[None, :, 1] - oy))
    d = np.concatenate(dists, axis=1)
    order = np.sort(d, axis=1)
    nearest_cell = np.argmin(d, axis=1) % (nx * ny)
    got = {out: run_node("worley", n=n, scale=[nx, ny], seed=seed, jitter=jitter, output=out)[..., 0].ravel()
           for out in ("f1", "f2", "edge", "cell")}
    np.testing.assert_allclose(got["f1"], order[:, 0], atol=1e-5)
    np.testing.assert_allclose(got["f2"], order[:, 1], atol=1e-5)
    np.testing.assert_allclose(got["edge"], order[:, 1] - order[:, 0], atol=1e-5)
    np.testing.assert_allclose(got["cell"], nd._cell_table(nx, ny, seed, 2).ravel()[nearest_cell], atol=1e-6)


def test_worley_period_one():
    u, v = centres(16)
    a = nd.worley_cells(u, v, (5, 5), 3, 1.0)
    b = nd.worley_cells(u + 1.0, v + 1.0, (5, 5), 3, 1.0)
    np.testing.assert_allclose(a.f1, b.f1, atol=1e-5)
    np.testing.assert_array_equal(a.cell, b.cell)


def test_tiles_mask_value_and_offset_check():
    mask = run_node("tiles", n=16, columns=2, rows=2, gap=0.125)[..., 0]
    # A gap of 2 texels centred on each border (the borders wrap): texels 0, 7, 8, 15 lie in it.
    gap = np.zeros(16, bool)
    gap[[0, 7, 8, 15]] = True
    np.testing.assert_array_equal(mask, (~(gap[:, None] | gap[None, :])).astype(np.float32))
    value = run_node("tiles", n=16, columns=2, rows=2, seed=4, output="value")[..., 0]
    assert len(np.unique(value[:8, :8])) == 1 and len(np.unique(value)) == 4
    run_node("tiles", columns=2, rows=2, offset=0.5)
    with pytest.raises(nd.SpecError, match="rows \\* offset"):
        run_node("tiles", columns=2, rows=3, offset=0.5)


def test_scratches_range_angle_and_prefilter():
    kwargs = dict(count=150, length=0.3, width=0.0005, angle=30, angle_spread=10, seed=3)
    fine = run_node("scratches", n=512, **kwargs)[..., 0]
    coarse = run_node("scratches", n=128, **kwargs)[..., 0]
    assert 0 <= fine.min() and fine.max() <= 1 and (fine > 0).mean() < 0.5
    # Sub-texel scratches are widened with their depth reduced: the mean depth does not depend on
    # the resolution, and there are no dashes (aliasing would drop most of the scratch).
    assert coarse.mean() == pytest.approx(fine.mean(), rel=0.15)
    angle = run_node("scratches", n=128, output="angle", **kwargs)[..., 0]
    assert np.all(angle[coarse == 0] == 30) and np.all(np.abs(angle[coarse > 0] - 30) <= 10 + 1e-4)
    assert run_node("scratches", n=16, count=0, length=0.1, width=0.01).max() == 0


def test_scratches_cover_what_brute_force_covers_across_the_wrap():
    n, count, length, width, seed = 64, 12, 0.5, 0.05, 6
    out = run_node("scratches", n=n, count=count, length=length, width=width, angle=20, angle_spread=40,
                   profile="flat", seed=seed)[..., 0]
    k = np.arange(count)
    r = [nd.random01(k, np.zeros_like(k), seed, stream) for stream in range(4)]
    angles = np.radians(20 + 40 * (2 * r[2] - 1))
    lengths = length * (1 + 0.5 * (2 * r[3] - 1))
    u, v = centres(n)
    covered = np.zeros((n, n), bool)
    for cx, cy, a, L in zip(r[0], r[1], angles, lengths):
        d = np.array([math.cos(a), math.sin(a)])
        for ox in (-1, 0, 1):  # every periodic image of the segment
            for oy in (-1, 0, 1):
                qx, qy = u - (cx + ox - 0.5 * L * d[0]), v - (cy + oy - 0.5 * L * d[1])
                along = qx * d[0] + qy * d[1]
                across = np.abs(qx * d[1] - qy * d[0])
                covered |= (along > 0) & (along < L) & (across < 0.5 * width)
    assert covered[:, 0].any() and covered[0, :].any(), "the test needs scratches across the seams"
    assert ((out > 0) != covered).sum() <= 4


def test_flakes_normals_and_density():
    normal = run_node("flakes", n=128, scale=32, seed=8, spread=20, density=0.6)
    mask = run_node("flakes", n=128, scale=32, seed=8, density=0.6, output="mask")[..., 0]
    np.testing.assert_allclose(np.linalg.norm(normal, axis=-1), 1, atol=1e-6)
    assert normal[..., 2].min() >= math.cos(math.radians(20)) - 1e-6
    np.testing.assert_array_equal(normal[mask == 0], np.broadcast_to([0, 0, 1], ((mask == 0).sum(), 3)))
    assert 0.5 < mask.mean() < 0.7
    # Flakes differ from one another.
    assert len(np.unique(normal[mask == 1][:, 0])) > 100


def write_material(tmp_path: Path, body: str, name: str = "test.toml") -> Path:
    path = tmp_path / name
    path.write_text(body)
    return path


def test_image_node_reads_png_and_exr(tmp_path):
    import OpenEXR
    rgba = np.array([[[255, 0, 0, 255], [0, 255, 0, 128]], [[0, 0, 255, 0], [255, 255, 255, 255]]], np.uint8)
    Image.fromarray(rgba, "RGBA").save(tmp_path / "tex.png")
    exr = np.arange(12, dtype=np.float32).reshape(2, 2, 3) * 0.25
    with OpenEXR.File({"compression": OpenEXR.ZIP_COMPRESSION, "type": OpenEXR.scanlineimage}, {"RGB": exr}) as f:
        f.write(str(tmp_path / "tex.exr"))
    path = write_material(tmp_path, """
[material]
name = "img"
resolution = 2
[nodes.colour]
type = "image"
file = "tex.png"
color = true
[nodes.raw]
type = "image"
file = "tex.png"
channel = "a"
[nodes.lum]
type = "image"
file = "tex.png"
channel = "luminance"
[nodes.hdr]
type = "image"
file = "tex.exr"
[[layers]]
type = "diffuse"
albedo = "colour"
[[layers]]
type = "dielectric"
weight = "raw"
alpha = "lum"
absorption = "hdr"
""")
    material = load_material(path)
    params = evaluate_parameters(material)
    lay = material.layout
    # The image maps onto uv as stored: its first row at v near 0 (row 0), first column at u near 0.
    np.testing.assert_allclose(params[..., lay.slot(0, "albedo")], rgba[..., :3] / 255.0, atol=1e-6)
    np.testing.assert_allclose(params[..., lay.slot(1, "weight")][..., 0], rgba[..., 3] / 255.0, atol=1e-6)
    np.testing.assert_allclose(params[..., lay.slot(1, "alpha")][..., 0],
                               rgba[..., :3] / 255.0 @ [0.2126, 0.7152, 0.0722], atol=1e-6)
    np.testing.assert_allclose(params[..., lay.slot(1, "absorption")], exr, atol=1e-6)
    # sRGB decoding where marked as colour: mid grey 128 -> 0.2158.
    Image.fromarray(np.full((2, 2, 3), 128, np.uint8)).save(tmp_path / "tex.png")
    params = evaluate_parameters(load_material(path))
    assert params[0, 0, lay.slot(0, "albedo")][0] == pytest.approx(0.21586, abs=1e-4)


def test_image_repeat_and_downsampling(tmp_path):
    stripes = np.zeros((8, 8), np.uint8)
    stripes[:, 1::2] = 255
    Image.fromarray(stripes).save(tmp_path / "s.png")
    path = write_material(tmp_path, """
[material]
resolution = 4
[nodes.s]
type = "image"
file = "s.png"
channel = "r"
[[layers]]
type = "diffuse"
albedo = "s"
""")
    # 8 texels squeezed into 4: averaged, not aliased into one of the two values.
    np.testing.assert_allclose(evaluate_parameters(load_material(path))[..., 4], 0.5, atol=1e-6)


# --- Bundled materials ---------------------------------------------------------------------------------

def test_five_or_more_bundled_materials():
    names = {p.stem for p in BUNDLED}
    assert {"glazed_ceramic", "patinated_brass", "brushed_metal", "worn_plastic", "car_paint"} <= names


@pytest.mark.parametrize("path", BUNDLED, ids=lambda p: p.stem)
def test_bundled_material_evaluates_in_range(path):
    material = load_material(path)
    assert material.resolution == 512
    assert 2 <= len(material.layers) <= MAX_LAYERS and len(material.nodes) >= 18
    assert len(material.order) == len(material.nodes), "every node should be used"
    params = evaluate_parameters(material, 128)
    assert params.shape == (128, 128, material.layout.width) and params.dtype == np.float32
    assert np.all(np.isfinite(params))
    normal_maps = 0
    for i, layer in enumerate(material.layers):
        for p, _ in LAYER_TYPES[layer.type].params:
            v = params[..., material.layout.slot(i, p)]
            rule = PARAM_RULES[p]
            if p == "normal":
                np.testing.assert_allclose(np.linalg.norm(v, axis=-1), 1, atol=1e-5)
                assert v[..., 2].min() > 0
                normal_maps += v[..., 2].min() < 0.9999
            elif rule.kind == "value":
                assert rule.lo <= v.min() and v.max() <= rule.hi, f"layers[{i}].{p}"
        assert params[..., material.layout.slot(0, "weight")].min() == 1
    assert normal_maps >= 1
    # Spatial variation: a material worth baking is not a constant.
    assert (params.std(axis=(0, 1)) > 1e-3).sum() >= 6


def test_validate_summary_lists_layout():
    summary = validate_material(ASSET_DIR / "materials" / "car_paint.toml")
    material = load_material(ASSET_DIR / "materials" / "car_paint.toml")
    assert "car_paint" in summary and f"K = {material.layout.width}" in summary
    assert "layers[1] flakes" in summary and "[7]" in summary and "z >=" in summary


def test_evaluation_conventions(tmp_path):
    path = write_material(tmp_path, """
[material]
name = "conv"
resolution = 8
[nodes.c]
type = "checker"
columns = 2
rows = 4
[[layers]]
type = "conductor"
f0 = "c"
alpha_u = 0.1
alpha_v = 0.2
rotation = 90
""")
    material = load_material(path)
    params = evaluate_parameters(material)
    lay = material.layout
    assert material.layout.layer_types == ("conductor",)
    i, j = np.mgrid[0:8, 0:8]
    expected = ((i // 2 + j // 4) % 2 == 0).astype(np.float32)
    # A scalar node drives all three channels of an RGB parameter; edge_tint defaults to f0.
    for p in ("f0", "edge_tint"):
        np.testing.assert_array_equal(params[..., lay.slot(0, p)], np.repeat(expected[..., None], 3, axis=2))
    assert params[0, 0, lay.slot(0, "rotation")][0] == pytest.approx(math.pi / 2)
    np.testing.assert_array_equal(params[..., lay.slot(0, "normal")], np.broadcast_to([0, 0, 1], (8, 8, 3)))
    assert evaluate_parameters(material, 2).shape == (2, 2, lay.width)
    with pytest.raises(NeumatError, match="power of two"):
        evaluate_parameters(material, 6)


def test_source_hash_follows_referenced_files(tmp_path):
    Image.fromarray(np.zeros((2, 2), np.uint8)).save(tmp_path / "h.png")
    path = write_material(tmp_path, """
[material]
name = "hash"
[nodes.h]
type = "image"
file = "h.png"
[[layers]]
type = "diffuse"
albedo = "h"
""")
    first = load_material(path).source_hash
    assert load_material(path).source_hash == first
    Image.fromarray(np.ones((2, 2), np.uint8)).save(tmp_path / "h.png")
    assert load_material(path).source_hash != first
    path.write_text(path.read_text() + "\n# comment\n")
    assert len({first, load_material(path).source_hash}) == 2


# --- Errors --------------------------------------------------------------------------------------------

VALID = """
[material]
name = "broken"
resolution = 16

[nodes.noise]
type = "fbm"
scale = 4

[nodes.bump]
type = "height_to_normal"
input = "noise"
strength = 0.01

[[layers]]
type = "diffuse"
albedo = [0.5, 0.4, 0.3]
normal = "bump"

[[layers]]
type = "dielectric"
ior = 1.5
alpha = 0.1
"""

LAYERS_TEXT = VALID[VALID.index("[[layers]]"):]

NODE_BAD_IOR = """
[nodes.bad_ior]
type = "remap"
input = "noise"
to = [0.8, 1.2]
"""

BROKEN = [
    # (id, replace (old, new) in VALID or None, text appended, expected substrings)
    ("toml-syntax", ("scale = 4", "scale = = 4"), "", ["TOML syntax error", "line 8"]),
    ("unknown-node-type", ('type = "fbm"', 'type = "worly"'), "", ["nodes.noise.type", "unknown node type 'worly'", "worley"]),
    ("unknown-node-field", ("scale = 4", "scale = 4\ncolour = 1"), "", ["nodes.noise.colour", "allowed: type, scale"]),
    ("wrong-field-type", ("scale = 4", 'scale = "big"'), "", ["nodes.noise.scale", "integer", "'big'"]),
    ("non-integer-scale", ("scale = 4", "scale = 2.5"), "", ["nodes.noise.scale", "integer"]),
    ("missing-field", ("scale = 4", ""), "", ["nodes.noise.scale", "missing"]),
    ("missing-image", None, '[nodes.img]\ntype = "image"\nfile = "nothere.png"\n', ["nodes.img.file", "not found", "nothere.png"]),
    ("cycle", ('input = "noise"', 'input = "loop"'), '[nodes.loop]\ntype = "add"\na = "bump"\nb = 1\n',
     ["cycle in the node graph", "bump -> loop -> bump"]),
    ("unknown-ref-in-node", ('input = "noise"', 'input = "nosie"'), "", ["nodes.bump.input", "unknown node 'nosie'", "noise"]),
    ("unknown-ref-in-layer", ("albedo = [0.5, 0.4, 0.3]", 'albedo = "colour"'), "", ["layers[0].albedo", "unknown node 'colour'"]),
    ("negative-alpha", ("alpha = 0.1", "alpha = -0.1"), "", ["layers[1].alpha", "must be in [0, 1], got -0.1"]),
    ("ior-below-one", ("ior = 1.5", "ior = 0.9"), "", ["layers[1].ior", "must be in [1, 10], got 0.9"]),
    ("nan", ("alpha = 0.1", "alpha = nan"), "", ["layers[1].alpha", "finite"]),
    ("inf-in-node", ("scale = 4", "scale = 4\nlacunarity = inf"), "", ["nodes.noise.lacunarity", "finite"]),
    # Finite in float64, inf once cast to the float32 the GPU gets.
    ("ior-overflows-float32", ("ior = 1.5", "ior = 1e300"), "", ["layers[1].ior", "finite in 32-bit", "1e+300"]),
    ("ior-too-large", ("ior = 1.5", "ior = 1e30"), "", ["layers[1].ior", "must be in [1, 10]"]),
    ("absorption-overflows-float32", ("alpha = 0.1", "alpha = 0.1\nabsorption = [0, 1e39, 0]"), "",
     ["layers[1].absorption", "finite in 32-bit"]),
    ("node-constant-overflows-float32", None, '[nodes.big]\ntype = "constant"\nvalue = [1, 1e300, 1]\n',
     ["nodes.big.value", "finite in 32-bit"]),
    ("huge-integer", ("resolution = 16", "resolution = 1" + "0" * 400), "",
     ["material.resolution"]),
    ("albedo-above-one", ("albedo = [0.5, 0.4, 0.3]", "albedo = [0.5, 1.4, 0.3]"), "", ["layers[0].albedo", "[0, 1]", "1.4"]),
    ("weight-out-of-range", ("alpha = 0.1", "alpha = 0.1\nweight = 1.5"), "", ["layers[1].weight", "[0, 1]"]),
    ("negative-thickness", ("alpha = 0.1", "alpha = 0.1\nthickness = -1"), "", ["layers[1].thickness", "[0, 10000]"]),
    ("negative-absorption", ("alpha = 0.1", "alpha = 0.1\nabsorption = [0, -1, 0]"), "", ["layers[1].absorption", "[0, 10000]"]),
    ("rgb-into-scalar", ("alpha = 0.1", "alpha = [0.1, 0.1, 0.1]"), "", ["layers[1].alpha", "scalar"]),
    ("rgb-node-into-scalar", ("alpha = 0.1", 'alpha = "bump"'), "", ["layers[1].alpha", "node 'bump' gives RGB"]),
    ("scalar-node-as-normal", ('normal = "bump"', 'normal = "noise"'), "", ["layers[0].normal", "xyz"]),
    ("normal-below-horizon", ('normal = "bump"', "normal = [0, 1, -0.5]"), "", ["layers[0].normal", "z > 0"]),
    ("unknown-layer-field", ("ior = 1.5", "ior = 1.5\nroughness = 0.2"), "", ["layers[1].roughness", "allowed:", "alpha"]),
    ("unknown-layer-type", ('type = "dielectric"', 'type = "glass"'), "", ["layers[1].type", "unknown layer type 'glass'"]),
    ("transparent-bottom", ('type = "diffuse"', 'type = "dielectric"\nior = 1.5\nalpha = 0.1'), "",
     ["layers[0].type", "bottom layer", "diffuse, conductor"]),
    ("bottom-weight", ("albedo = [0.5, 0.4, 0.3]", "albedo = [0.5, 0.4, 0.3]\nweight = 0.5"), "", ["layers[0].weight", "always present"]),
    ("missing-param", ("alpha = 0.1", ""), "", ["layers[1].alpha", "missing"]),
    ("too-many-layers", None, "".join('\n[[layers]]\ntype = "dielectric"\nior = 1.5\nalpha = 0.1\n' for _ in range(4)),
     ["layers:", "1 to 5 layers, got 6"]),
    ("layers-not-array", (LAYERS_TEXT, '[layers]\ntype = "diffuse"\nalbedo = 0.5\n'), "", ["layers:", "[[layers]]"]),
    ("resolution-not-power-of-two", ("resolution = 16", "resolution = 100"), "", ["material.resolution", "power of two"]),
    ("unknown-top-level", None, "[textures]\na = 1\n", ["textures", "allowed: material, nodes, layers"]),
    ("conductor-alpha-twice", ('type = "diffuse"\nalbedo = [0.5, 0.4, 0.3]',
                               'type = "conductor"\nf0 = 0.9\nalpha = 0.1\nalpha_u = 0.2\nalpha_v = 0.2'), "",
     ["layers[0].alpha", "either"]),
    ("tiles-offset-no-wrap", None, '[nodes.t]\ntype = "tiles"\ncolumns = 4\nrows = 3\noffset = 0.5\n', ["nodes.t.offset", "integer"]),
    ("remap-exponent-without-power", None, '[nodes.r]\ntype = "remap"\ninput = "noise"\nexponent = 2\n',
     ["nodes.r.exponent", "only with curve = 'power'"]),
    ("bad-choice", ("scale = 4", 'scale = 4\nbasis = "simplex"'), "", ["nodes.noise.basis", "'gradient', 'value'"]),
    ("normal-map-of-scalar", None, '[nodes.nm]\ntype = "normal_map"\ninput = "noise"\n', ["nodes.nm.input", "RGB"]),
    ("node-output-out-of-range", ("ior = 1.5", 'ior = "bad_ior"'), NODE_BAD_IOR,
     ["layers[1].ior", "node 'bad_ior'", "down to 0.9", "[1, 10]"]),
    ("node-output-normal-flipped", ('normal = "bump"', 'normal = "down_mix"'),
     '[nodes.down]\ntype = "constant"\nvalue = [0, 0, -1]\n[nodes.down_mix]\ntype = "mix"\na = "down"\nb = "bump"\nfactor = 0\n',
     ["layers[0].normal", "node 'down_mix'", "z <= 0"]),
]


@pytest.mark.parametrize("case", BROKEN, ids=[c[0] for c in BROKEN])
def test_broken_material_names_file_and_key(tmp_path, case):
    _, replace, append, expected = case
    text = VALID
    if replace:
        assert replace[0] in text
        text = text.replace(replace[0], replace[1], 1)
    text += append  # TOML allows [nodes.x] tables after the [[layers]] entries
    path = write_material(tmp_path, text, name="broken.toml")
    with pytest.raises(NeumatError) as info:
        evaluate_parameters(load_material(path), 16)
    message = str(info.value)
    assert message.startswith("broken.toml: "), message
    for part in expected:
        assert part in message, f"{part!r} not in {message!r}"
    assert message.count("\n") == 0


def test_missing_file_is_a_neumat_error(tmp_path):
    with pytest.raises(NeumatError, match="nothing.toml"):
        load_material(tmp_path / "nothing.toml")
