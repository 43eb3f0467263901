"""MaterialX import (renderer/materials/materialx.py, docs/materialx.md): each mapping row equals the
neumat layers it should become, node graphs become the nodes they should, bad documents give one
message and exit 2, and an imported textured material validates, renders and bakes.

Every .mtlx document here is written by the tests themselves."""

import math
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from neumat.renderer.core.errors import NeumatError
from neumat.renderer.materials.graph import build_pyramid, evaluate_parameters, load_material
from neumat.renderer.materials.materialx import Ref, translate
from neumat.renderer.materials.reference import ReferenceMaterial, WalkSettings


def neumat(*args, cwd=None):
    return subprocess.run([sys.executable, "-m", "neumat", *map(str, args)], capture_output=True, text=True, cwd=cwd)


def _mx_value(v) -> tuple[str, str]:
    """(MaterialX type, value string) of a test input: float, bool, (r, g, b), or (type, value)."""
    if isinstance(v, tuple) and isinstance(v[0], str):
        return v[0], v[1] if isinstance(v[1], str) else ", ".join(map(str, v[1]))
    if isinstance(v, bool):
        return "boolean", str(v).lower()
    if isinstance(v, tuple):
        return "color3", ", ".join(map(str, v))
    return "float", str(v)


def shader_document(shader: str, inputs: dict, graphs: str = "", materials: tuple[str, ...] = ("M",)) -> str:
    """A MaterialX document: `graphs` (XML) and one `shader` node per material with `inputs`; an
    input given as {"graph": G, "output": O, "type": T} connects to a node graph output."""
    lines = []
    for name, v in inputs.items():
        if isinstance(v, dict):
            lines.append(f'<input name="{name}" type="{v["type"]}" nodegraph="{v["graph"]}" output="{v["output"]}"/>')
        else:
            t, text = _mx_value(v)
            lines.append(f'<input name="{name}" type="{t}" value="{text}"/>')
    body = "\n".join(f'      {line}' for line in lines)
    shaders = "\n".join(f"""  <{shader} name="SR_{m}" type="surfaceshader">
{body}
  </{shader}>
  <surfacematerial name="{m}" type="material">
    <input name="surfaceshader" type="surfaceshader" nodename="SR_{m}"/>
  </surfacematerial>""" for m in materials)
    return f'<?xml version="1.0"?>\n<materialx version="1.39">\n{graphs}\n{shaders}\n</materialx>\n'


def write(folder: Path, name: str, text: str) -> Path:
    path = folder / name
    path.write_text(text)
    return path


def stack(*layers: str) -> str:
    return '[material]\nname = "hand"\nresolution = 1\n' + "".join(f"\n[[layers]]\n{layer}\n" for layer in layers)


def _f0(ior):
    return ((ior - 1) / (ior + 1)) ** 2


def _ior(f0):
    s = math.sqrt(f0)
    return (1 + s) / (1 - s)


# Each row: shading model, its constant inputs, and the neumat layers they must become.
ROWS = {
    "openpbr base": ("open_pbr_surface", {"base_color": (0.2, 0.4, 0.6), "base_weight": 0.5},
                     stack("type = 'diffuse'\nalbedo = [0.1, 0.2, 0.3]",
                           "type = 'dielectric'\nior = 1.5\nalpha = 0.09")),
    "openpbr roughness, ior": ("open_pbr_surface", {"specular_roughness": 0.5, "specular_ior": 1.8},
                               stack("type = 'diffuse'\nalbedo = 0.8", "type = 'dielectric'\nior = 1.8\nalpha = 0.25")),
    "openpbr specular weight": ("open_pbr_surface", {"specular_weight": 0.5},
                                stack("type = 'diffuse'\nalbedo = 0.8",
                                      f"type = 'dielectric'\nior = {_ior(0.5 * _f0(1.5))}\nalpha = 0.09")),
    "openpbr metal": ("open_pbr_surface", {"base_metalness": 1.0, "base_color": (0.9, 0.6, 0.3),
                                           "specular_color": (0.8, 0.8, 0.9), "specular_roughness": 0.4},
                      stack("type = 'conductor'\nf0 = [0.9, 0.6, 0.3]\nedge_tint = [0.8, 0.8, 0.9]\nalpha = 0.16")),
    "openpbr metalness blend": ("open_pbr_surface", {"base_metalness": 0.3, "base_color": (0.9, 0.6, 0.3)},
                                stack("type = 'diffuse'\nalbedo = [0.9, 0.6, 0.3]",
                                      "type = 'dielectric'\nior = 1.5\nalpha = 0.09",
                                      "type = 'conductor'\nweight = 0.3\nf0 = [0.9, 0.6, 0.3]\nedge_tint = 1\n"
                                      "alpha = 0.09")),
    "openpbr anisotropy": ("open_pbr_surface", {"base_metalness": 1.0, "specular_roughness": 0.5,
                                                "specular_roughness_anisotropy": 0.5},
                           stack(f"type = 'conductor'\nf0 = 0.8\nedge_tint = 1\nalpha_u = {0.25 * math.sqrt(2 / 1.25)}\n"
                                 f"alpha_v = {0.125 * math.sqrt(2 / 1.25)}")),
    "openpbr coat": ("open_pbr_surface", {"coat_weight": 0.7, "coat_color": (0.8, 0.6, 0.4), "coat_ior": 1.6,
                                          "coat_roughness": 0.2},
                     stack("type = 'diffuse'\nalbedo = 0.8",
                           f"type = 'dielectric'\nior = {1.5 + (1.6 / 1.5 - 1.5) * 0.7}\nalpha = 0.09",
                           "type = 'dielectric'\nweight = 0.7\nior = 1.6\nalpha = 0.04\nthickness = 1\n"
                           f"absorption = {[-math.log(c) / 2 for c in (0.8, 0.6, 0.4)]}")),
    "openpbr fuzz": ("open_pbr_surface", {"fuzz_weight": 0.5, "fuzz_color": (0.9, 0.7, 0.8), "fuzz_roughness": 0.4},
                     stack("type = 'diffuse'\nalbedo = 0.8", "type = 'dielectric'\nior = 1.5\nalpha = 0.09",
                           "type = 'sheen'\nweight = 0.5\ncolor = [0.9, 0.7, 0.8]\nalpha = 0.4")),
    "standard metal": ("standard_surface", {"metalness": 1.0, "base": 0.8, "base_color": (0.9, 0.6, 0.3),
                                            "specular": 0.9, "specular_color": (1.0, 0.9, 0.8),
                                            "specular_roughness": 0.3, "specular_anisotropy": 0.5,
                                            "specular_rotation": 0.25},
                       stack("type = 'conductor'\nf0 = [0.72, 0.48, 0.24]\nedge_tint = [0.9, 0.81, 0.72]\n"
                             f"alpha_u = {0.09 / math.sqrt(0.5)}\nalpha_v = {0.09 * math.sqrt(0.5)}\nrotation = 90")),
    "standard dielectric, sheen, coat": (
        "standard_surface", {"base_color": (0.5, 0.5, 0.2), "specular": 0.5, "specular_IOR": 1.4,
                             "sheen": 0.6, "sheen_color": (0.3, 0.3, 0.9), "sheen_roughness": 0.5,
                             "coat": 1.0, "coat_color": (0.9, 0.9, 0.5), "coat_roughness": 0.3, "coat_IOR": 1.5},
        stack("type = 'diffuse'\nalbedo = [0.5, 0.5, 0.2]",
              "type = 'sheen'\nweight = 0.6\ncolor = [0.3, 0.3, 0.9]\nalpha = 0.5",
              "type = 'dielectric'\nweight = 0.5\nior = 1.4\nalpha = 0.04",
              f"type = 'dielectric'\nior = 1.5\nalpha = 0.09\nthickness = 1\n"
              f"absorption = {[-math.log(c) / 2 for c in (0.9, 0.9, 0.5)]}")),
    "gltf metal, clearcoat": ("gltf_pbr", {"base_color": (0.9, 0.8, 0.5), "metallic": 1.0, "roughness": 0.5,
                                           "clearcoat": 0.5, "clearcoat_roughness": 0.1},
                              stack("type = 'conductor'\nf0 = [0.9, 0.8, 0.5]\nedge_tint = 1\nalpha = 0.25",
                                    "type = 'dielectric'\nweight = 0.5\nior = 1.5\nalpha = 0.01\nthickness = 1")),
}


def _directions(n: int, seed: int) -> np.ndarray:
    rng = np.random.default_rng(seed)
    v = rng.normal(size=(n, 3))
    v[:, 2] = np.abs(v[:, 2]) + 0.05
    return (v / np.linalg.norm(v, axis=1, keepdims=True)).astype(np.float32)


def _reference(device, material) -> ReferenceMaterial:
    return ReferenceMaterial(device, material.layout, build_pyramid(material, evaluate_parameters(material, 1)),
                             walk=WalkSettings(n_walks=4))


@pytest.mark.parametrize("row", list(ROWS))
def test_each_mapping_row_is_the_lobe_it_should_become(row, device, tmp_path):
    shader, inputs, expected = ROWS[row]
    imported = load_material(write(tmp_path, "m.mtlx", shader_document(shader, inputs)))
    hand = load_material(write(tmp_path, "hand.toml", expected))
    assert imported.layout.layer_types == hand.layout.layer_types
    np.testing.assert_allclose(evaluate_parameters(imported, 1), evaluate_parameters(hand, 1), rtol=1e-5, atol=2e-6)  # 6 digits
    n = 256
    uv = np.full((n, 2), 0.5, np.float32)
    wi, wo = _directions(n, 1), _directions(n, 2)
    a = _reference(device, imported).evaluate(uv, wi, wo, 0.0, seed=5)
    b = _reference(device, hand).evaluate(uv, wi, wo, 0.0, seed=5)
    np.testing.assert_allclose(a, b, rtol=1e-4, atol=1e-6)


@pytest.mark.parametrize("inputs, least", [
    ({"base_color": (1.0, 1.0, 1.0)}, 0.85),  # the default surface, white: a clear dielectric over white diffuse
    ({"base_color": (1.0, 1.0, 1.0), "base_metalness": 0.5, "coat_weight": 1.0, "fuzz_weight": 1.0}, 0.8),  # 5 layers
])
def test_a_white_openpbr_surface_passes_the_furnace_test(inputs, least, device, tmp_path):
    """White and otherwise default: the stack reflects at most what arrives, and loses little
    (measured 0.89-0.95 at 20000 samples)."""
    path = write(tmp_path, "white.mtlx", shader_document("open_pbr_surface", inputs))
    material = _reference(device, load_material(path))
    n = 20000
    for cos in (1.0, 0.5, 0.1):
        wi = np.tile(np.float32([math.sqrt(1 - cos * cos), 0, cos]), (n, 1))
        _, weight, _ = material.sample(np.full((n, 2), 0.5, np.float32), wi, 0.0, seed=3)
        mean = weight.mean(axis=0)
        noise = 4 * weight.std(axis=0) / math.sqrt(n)
        assert np.all(mean <= 1 + noise + 1e-3), (cos, mean, noise)
        assert np.all(mean >= least), (cos, mean)


def test_dropped_inputs_warn_once_each_and_strict_fails(tmp_path):
    inputs = {"transmission_weight": 0.5, "emission_luminance": 10.0, "thin_film_weight": 0.2,
              "subsurface_weight": 0.3, "geometry_opacity": 0.5, "base_diffuse_roughness": 0.4,
              "transmission_dispersion_scale": 0.5}
    path = write(tmp_path, "lossy.mtlx", shader_document("open_pbr_surface", inputs))
    t = translate(path)
    for name in inputs:
        assert sum(f"SR_M.{name}:" in w for w in t.warnings) == 1, (name, t.warnings)
    assert len(t.warnings) == len(inputs)
    quiet = translate(write(tmp_path, "plain.mtlx", shader_document("open_pbr_surface", {"transmission_color":
                                                                                         (0.5, 0.5, 0.5)})))
    assert quiet.warnings == []  # transmission is off: its colour changes nothing
    out = tmp_path / "lossy.toml"
    result = neumat("material", "import", path, "-o", out, "--strict")
    assert result.returncode == 2 and "--strict" in result.stderr and "transmission_weight" in result.stderr
    assert not out.exists()
    result = neumat("material", "import", path, "-o", out)
    assert result.returncode == 0, result.stderr
    assert result.stderr.count("warning:") == len(inputs)
    assert "# approximated: SR_M.transmission_weight" in out.read_text()


def test_geometric_frame_nodes_are_the_defaults(tmp_path):
    """A normal or tangent input fed by MaterialX's own normal/tangent nodes changes nothing."""
    graph = """  <nodegraph name="NG">
    <normal name="n" type="vector3"/>
    <tangent name="t" type="vector3"/>
    <output name="n_out" type="vector3" nodename="n"/>
    <output name="t_out" type="vector3" nodename="t"/>
  </nodegraph>"""
    inputs = {"normal": {"graph": "NG", "output": "n_out", "type": "vector3"},
              "tangent": {"graph": "NG", "output": "t_out", "type": "vector3"}}
    t = translate(write(tmp_path, "frame.mtlx", shader_document("standard_surface", inputs, graph)))
    assert t.warnings == [] and all("normal" not in layer.params for layer in t.layers)


def _png(path: Path, pixels: np.ndarray) -> Path:
    Image.fromarray(pixels).save(path)
    return path


GRAPH = """  <nodegraph name="NG">
    <texcoord name="uv" type="vector2"/>
    <multiply name="uv_tiled" type="vector2">
      <input name="in1" type="vector2" nodename="uv"/>
      <input name="in2" type="vector2" value="2, 2"/>
    </multiply>
    <image name="albedo_map" type="color3">
      <input name="file" type="filename" value="tex/albedo.jpg" colorspace="srgb_texture"/>
      <input name="texcoord" type="vector2" nodename="uv_tiled"/>
    </image>
    <tiledimage name="rough_map" type="float">
      <input name="file" type="filename" value="tex/rough.png"/>
      <input name="uvtiling" type="vector2" value="4, 4"/>
    </tiledimage>
    <range name="rough_range" type="float">
      <input name="in" type="float" nodename="rough_map"/>
      <input name="outlow" type="float" value="0.2"/>
      <input name="outhigh" type="float" value="0.6"/>
      <input name="doclamp" type="boolean" value="true"/>
    </range>
    <noise2d name="grain" type="float">
      <input name="amplitude" type="float" value="0.5"/>
      <input name="pivot" type="float" value="0.5"/>
      <input name="texcoord" type="vector2" nodename="uv_tiled"/>
    </noise2d>
    <mix name="tinted" type="color3">
      <input name="fg" type="color3" nodename="albedo_map"/>
      <input name="bg" type="color3" value="0.3, 0.2, 0.1"/>
      <input name="mix" type="float" nodename="grain"/>
    </mix>
    <remap name="darker" type="color3">
      <input name="in" type="color3" nodename="tinted"/>
      <input name="outhigh" type="float" value="0.9"/>
    </remap>
    <clamp name="coat_mask" type="float">
      <input name="in" type="float" nodename="grain"/>
      <input name="low" type="float" value="0.25"/>
      <input name="high" type="float" value="0.75"/>
    </clamp>
    <image name="normal_image" type="vector3">
      <input name="file" type="filename" value="tex/normal.png"/>
    </image>
    <normalmap name="bumps" type="vector3">
      <input name="in" type="vector3" nodename="normal_image"/>
      <input name="scale" type="float" value="0.5"/>
    </normalmap>
    <output name="base_color_out" type="color3" nodename="darker"/>
    <output name="roughness_out" type="float" nodename="rough_range"/>
    <output name="coat_out" type="float" nodename="coat_mask"/>
    <output name="normal_out" type="vector3" nodename="bumps"/>
  </nodegraph>"""

TEXTURED = {"base_color": {"graph": "NG", "output": "base_color_out", "type": "color3"},
            "specular_roughness": {"graph": "NG", "output": "roughness_out", "type": "float"},
            "coat_weight": {"graph": "NG", "output": "coat_out", "type": "float"},
            "coat_color": (0.9, 0.8, 0.6),
            "geometry_normal": {"graph": "NG", "output": "normal_out", "type": "vector3"}}


def textures(folder: Path) -> None:
    (folder / "tex").mkdir(exist_ok=True)
    rng = np.random.default_rng(0)
    Image.fromarray((rng.random((16, 16, 3)) * 255).astype(np.uint8)).save(folder / "tex" / "albedo.jpg", quality=95)
    _png(folder / "tex" / "rough.png", (rng.random((8, 8)) * 255).astype(np.uint8))
    normal = np.zeros((8, 8, 3), np.uint8)
    normal[...] = (150, 100, 230)
    _png(folder / "tex" / "normal.png", normal)


HAND_TEXTURED = """[material]
name = "hand"
resolution = 16

[nodes.albedo_map]
type = "image"
file = "tex/albedo.jpg"
color = true
repeat = 2

[nodes.grain]
type = "fbm"
scale = 2
octaves = 1

[nodes.tinted]
type = "mix"
a = [0.3, 0.2, 0.1]
b = "albedo_map"
factor = "grain"

[nodes.darker]
type = "multiply"
a = "tinted"
b = 0.9

[nodes.rough_map]
type = "image"
file = "tex/rough.png"
channel = "r"
repeat = 4

[nodes.rough_range]
type = "remap"
input = "rough_map"
to = [0.2, 0.6]

[nodes.alpha]
type = "remap"
input = "rough_range"
curve = "power"
exponent = 2

[nodes.coat_mask]
type = "remap"
input = "grain"
from = [0.25, 0.75]
to = [0.25, 0.75]

[nodes.normal_image]
type = "image"
file = "tex/normal.png"

[nodes.bumps]
type = "normal_map"
input = "normal_image"
strength = 0.5
flip_y = true

[[layers]]
type = "diffuse"
albedo = "darker"
normal = "bumps"

[[layers]]
type = "dielectric"
ior = "coat_ior"
alpha = "alpha"
normal = "bumps"

[[layers]]
type = "dielectric"
weight = "coat_mask"
ior = 1.6
alpha = 0
thickness = 1
absorption = {absorption}
"""


def test_node_graphs_become_the_nodes_they_should(tmp_path):
    """image (JPEG, sRGB) and tiledimage with tiling, noise2d, mix, remap, range, clamp, normalmap."""
    textures(tmp_path)
    path = write(tmp_path, "textured.mtlx", shader_document("open_pbr_surface", TEXTURED, GRAPH))
    imported = load_material(path)
    params = evaluate_parameters(imported, 16)
    # The specular IOR under a partial coat is a curve of the coat mask: check it on its own, then
    # take it as given in the hand-built stack.
    hand_text = HAND_TEXTURED.format(absorption=[-math.log(c) / 2 for c in (0.9, 0.8, 0.6)])
    hand_text = hand_text.replace('[[layers]]', '[nodes.coat_ior]\ntype = "constant"\nvalue = 1.5\n\n[[layers]]', 1)
    hand = load_material(write(tmp_path, "hand.toml", hand_text))
    expected = evaluate_parameters(hand, 16)
    slot = imported.layout.slot(1, "ior")
    coat = params[..., imported.layout.slot(2, "weight")]
    ratio = 1.6 / 1.5
    np.testing.assert_allclose(params[..., slot], 1.5 + (ratio - 1.5) * coat, atol=2e-3)  # piecewise linear
    params[..., slot] = expected[..., slot]
    np.testing.assert_allclose(params, expected, atol=1e-5)


def test_gltf_texture_nodes(tmp_path):
    """gltf_image (factor, scale as tiling) and gltf_normalmap, as glTF exporters write them."""
    textures(tmp_path)
    graph = """  <nodegraph name="NG">
    <gltf_image name="base_tex" type="color3">
      <input name="file" type="filename" value="tex/albedo.jpg" colorspace="srgb_texture"/>
      <input name="factor" type="color3" value="0.5, 0.5, 0.5"/>
      <input name="scale" type="vector2" value="3, 3"/>
    </gltf_image>
    <gltf_normalmap name="bumps" type="vector3">
      <input name="file" type="filename" value="tex/normal.png"/>
    </gltf_normalmap>
    <output name="base_out" type="color3" nodename="base_tex"/>
    <output name="normal_out" type="vector3" nodename="bumps"/>
  </nodegraph>"""
    inputs = {"base_color": {"graph": "NG", "output": "base_out", "type": "color3"}, "metallic": 0.0,
              "normal": {"graph": "NG", "output": "normal_out", "type": "vector3"}}
    t = translate(write(tmp_path, "gltf.mtlx", shader_document("gltf_pbr", inputs, graph)))
    assert t.warnings == []
    assert t.nodes["base_tex"] == {"type": "image", "file": str(tmp_path / "tex" / "albedo.jpg"), "color": True,
                                   "repeat": 3}
    assert t.nodes["base_tex_factor"] == {"type": "multiply", "a": "base_tex", "b": 0.5}
    assert t.nodes["bumps_normal"] == {"type": "normal_map", "input": "bumps", "flip_y": True}
    assert t.layers[0].params == {"albedo": Ref("base_tex_factor", 3), "normal": Ref("bumps_normal", 3)}


def test_colorspace_decides_the_srgb_decoding(tmp_path):
    grey = np.full((4, 4, 3), 128, np.uint8)
    _png(tmp_path / "grey.png", grey)
    graph = """  <nodegraph name="NG">
    <image name="img" type="color3"><input name="file" type="filename" value="grey.png" colorspace="{space}"/></image>
    <output name="out" type="color3" nodename="img"/>
  </nodegraph>"""
    values = {}
    for space in ("srgb_texture", "lin_rec709"):
        doc = shader_document("open_pbr_surface", {"base_color": {"graph": "NG", "output": "out", "type": "color3"}},
                              graph.format(space=space))
        material = load_material(write(tmp_path, f"{space}.mtlx", doc))
        values[space] = evaluate_parameters(material, 4)[0, 0, material.layout.slot(0, "albedo")][0]
    assert values["lin_rec709"] == pytest.approx(128 / 255, abs=1e-4)
    assert values["srgb_texture"] == pytest.approx(((128 / 255 + 0.055) / 1.055) ** 2.4, abs=1e-4)


def test_constant_colours_are_converted_from_their_colour_space(tmp_path):
    doc = shader_document("open_pbr_surface", {"base_color": (0.2, 0.5, 0.3)})
    acescg = doc.replace('<materialx version="1.39">', '<materialx version="1.39" colorspace="acescg">')
    material = load_material(write(tmp_path, "aces.mtlx", acescg))
    albedo = evaluate_parameters(material, 1)[0, 0, material.layout.slot(0, "albedo")]
    ap1_to_rec709 = np.array([[1.70505, -0.62179, -0.08326], [-0.13026, 1.14080, -0.01055],
                              [-0.02400, -0.12897, 1.15297]])
    np.testing.assert_allclose(albedo, ap1_to_rec709 @ [0.2, 0.5, 0.3], atol=1e-4)


def test_import_writes_a_commented_toml_equal_to_the_document(tmp_path):
    textures(tmp_path)
    path = write(tmp_path, "textured.mtlx", shader_document("open_pbr_surface", TEXTURED, GRAPH))
    (tmp_path / "out").mkdir()
    out = tmp_path / "out" / "wood.toml"
    result = neumat("material", "import", path, "-o", out)
    assert result.returncode == 0, result.stderr
    text = out.read_text()
    assert "# NG/albedo_map" in text and 'file = "../tex/albedo.jpg"' in text
    assert "SR_M.specular_roughness <- NG/rough_range" in text
    direct, written = load_material(path), load_material(out)
    assert direct.layout == written.layout
    np.testing.assert_allclose(evaluate_parameters(direct, 8), evaluate_parameters(written, 8), atol=1e-6)
    result = neumat("material", "validate", f"{path}#M", out)
    assert result.returncode == 0, result.stderr
    assert result.stdout.count("floats per texel") == 2


def test_the_source_hash_covers_the_document_and_its_images(tmp_path):
    textures(tmp_path)
    path = write(tmp_path, "textured.mtlx", shader_document("open_pbr_surface", TEXTURED, GRAPH))
    first = load_material(path).source_hash
    assert load_material(path).source_hash == first
    _png(tmp_path / "tex" / "rough.png", np.zeros((8, 8), np.uint8))
    second = load_material(path).source_hash
    assert second != first
    path.write_text(path.read_text().replace('value="0.9, 0.8, 0.6"', 'value="0.9, 0.8, 0.5"'))
    assert load_material(path).source_hash != second


def test_several_materials_are_picked_by_name(tmp_path):
    path = write(tmp_path, "lib.mtlx", shader_document("standard_surface", {"base_color": (0.5, 0.1, 0.1)},
                                                       materials=("Red", "Other")))
    assert load_material(f"{path}#Red").name == "Red"
    assert translate(path, "Other").material == "Other"
    with pytest.raises(NeumatError, match=r"lib.mtlx: the document has 2 materials \(Red, Other\)"):
        load_material(path)
    with pytest.raises(NeumatError, match="no surfacematerial 'Blue'"):
        load_material(f"{path}#Blue")
    result = neumat("material", "import", path, "--material", "Other")  # no -o: the TOML on standard output
    assert result.returncode == 0, result.stderr
    assert 'name = "Other"' in result.stdout and "standard_surface 'SR_Other'" in result.stdout


BAD = {
    "malformed XML": ("<materialx version='1.39'><open_pbr_surface", "cannot read the MaterialX document"),
    "no materials": ('<?xml version="1.0"?>\n<materialx version="1.39"/>\n', "has no surfacematerial"),
    "several materials": (shader_document("open_pbr_surface", {}, materials=("A", "B")), "has 2 materials"),
    "unknown shader": (shader_document("open_pbr_surface", {}).replace("open_pbr_surface", "disney_principled"),
                       "SR_M: unknown shader node 'disney_principled'"),
    "missing texture": (shader_document("open_pbr_surface", {"base_color": {"graph": "NG", "output": "o",
                                                                            "type": "color3"}},
                                        '<nodegraph name="NG"><image name="img" type="color3"><input name="file" '
                                        'type="filename" value="nothere.png"/></image>'
                                        '<output name="o" type="color3" nodename="img"/></nodegraph>'),
                        "NG/img/file: image file not found"),
    "a cycle": (shader_document("open_pbr_surface", {"base_color": {"graph": "NG", "output": "o", "type": "color3"}},
                                '<nodegraph name="NG"><add name="a" type="color3"><input name="in1" type="color3" '
                                'nodename="b"/></add><add name="b" type="color3"><input name="in1" type="color3" '
                                'nodename="a"/></add><output name="o" type="color3" nodename="a"/></nodegraph>'),
                "cycle in the node graph: NG/a -> NG/b -> NG/a"),
    "unsupported node": (shader_document("open_pbr_surface", {"base_color": {"graph": "NG", "output": "o",
                                                                             "type": "color3"}},
                                         '<nodegraph name="NG"><hsvtorgb name="hue" type="color3"/>'
                                         '<output name="o" type="color3" nodename="hue"/></nodegraph>'),
                         "NG/hue: unsupported node 'hue' of type 'hsvtorgb'"),
}


@pytest.mark.parametrize("case", list(BAD))
def test_bad_documents_give_one_message_and_write_nothing(case, tmp_path):
    text, message = BAD[case]
    path = write(tmp_path, "bad.mtlx", text)
    out = tmp_path / "bad.toml"
    result = neumat("material", "import", path, "-o", out)
    assert result.returncode == 2, result.stderr
    assert "Traceback" not in result.stderr and "bad.mtlx" in result.stderr and message in result.stderr
    assert len(result.stderr.strip().splitlines()) == 1
    assert not out.exists()


def test_neumat_image_nodes_read_jpeg(tmp_path):
    Image.fromarray(np.full((4, 4, 3), 200, np.uint8)).save(tmp_path / "flat.jpg", quality=100)
    path = write(tmp_path, "j.toml", '[material]\nresolution = 4\n[nodes.img]\ntype = "image"\nfile = "flat.jpg"\n'
                                     'color = true\n[[layers]]\ntype = "diffuse"\nalbedo = "img"\n')
    value = evaluate_parameters(load_material(path))[0, 0, 4]
    assert value == pytest.approx(((200 / 255 + 0.055) / 1.055) ** 2.4, abs=2e-3)


def _scene(folder: Path, material: str) -> Path:
    return write(folder, "scene.toml", f"""[camera]
position = [0, 0, 3]
target = [0, 0, 0]
fov = 40
resolution = [24, 24]

[environment]
type = "constant"
color = 1

[[objects]]
mesh = "sphere"
material = {material}
""")


def test_a_textured_import_renders_in_a_scene(tmp_path):
    textures(tmp_path)
    write(tmp_path, "textured.mtlx", shader_document("open_pbr_surface", TEXTURED, GRAPH, materials=("Wood", "Other")))
    scene = _scene(tmp_path, '"textured.mtlx#Wood"')
    out = tmp_path / "wood.exr"
    result = neumat("render", scene, "-o", out, "--spp", "2", "--mode", "reference")
    assert result.returncode == 0, result.stderr
    from neumat.renderer.images.io import read_image
    image = read_image(out)
    assert np.isfinite(image).all() and image.mean() > 0.05


@pytest.mark.slow
def test_a_textured_import_bakes_and_renders_neural(tmp_path):
    textures(tmp_path)
    mtlx = write(tmp_path, "textured.mtlx", shader_document("open_pbr_surface", TEXTURED, GRAPH,
                                                            materials=("Wood", "Other")))
    result = neumat("bake", f"{mtlx}#Wood", "-o", tmp_path / "wood.neumat", "--iterations", "20", "--resolution", "16",
                    "--batch-size", "1024", "--no-report", "-q")
    assert result.returncode == 0, result.stderr
    scene = _scene(tmp_path, '{ kind = "neural", asset = "wood.neumat", file = "textured.mtlx#Wood" }')
    result = neumat("render", scene, "-o", tmp_path / "neural.exr", "--spp", "2")
    assert result.returncode == 0, result.stderr
