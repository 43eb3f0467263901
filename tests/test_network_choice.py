"""The default network per material (training/network_choice.py): the analytic lobe goes in where a
conductor or dielectric layer has a narrow peak on enough of the texels, and only there."""

from pathlib import Path

import pytest

from neumat.renderer.materials.graph import evaluate_parameters, load_material
from neumat.training.bake import BakeSettings, bake
from neumat.training.export import load_model
from neumat.training.network_choice import NARROW_ALPHA, NARROW_SHARE, choose_network, resolve_network

ROOT = Path(__file__).resolve().parent.parent
BUNDLED = ROOT / "assets" / "materials"
STRESS = Path(__file__).parent / "materials"

# A diffuse base under one layer whose type, weight and roughness the tests fill in.
TEMPLATE = """
[material]
name = "choice_test"
resolution = 16

[nodes.half]
type = "checker"
columns = 2
rows = 2

[[layers]]
type = "diffuse"
albedo = [0.5, 0.4, 0.3]

[[layers]]
{layer}
"""


def choice_for(tmp_path: Path, layer: str):
    path = tmp_path / "choice_test.toml"
    path.write_text(TEMPLATE.format(layer=layer))
    material = load_material(path)
    return choose_network(material, evaluate_parameters(material, 16))


@pytest.mark.parametrize("name, lobe", [
    ("car_paint", True),        # clear coat alpha 0.006-0.04
    ("patinated_brass", True),  # lacquer 0.03-0.10 where present, metal from 0.07
    ("glazed_ceramic", True),   # glaze 0.006-0.022
    ("worn_plastic", True),     # gloss skin 0.02-0.07
    ("brushed_metal", False),   # anisotropic aluminium: geometric mean of alpha_u, alpha_v above 0.07
    ("woven_fabric", False),    # diffuse and sheen only
])
def test_bundled_materials(name, lobe):
    material = load_material(BUNDLED / f"{name}.toml")
    choice = choose_network(material, evaluate_parameters(material, 64))
    assert choice.spec == ("2x32+lobe" if lobe else "2x32"), choice.reason


def test_stress_materials():
    specs = {}
    for path in STRESS.glob("*.toml"):
        material = load_material(path)
        specs[material.name] = choose_network(material, evaluate_parameters(material, 32)).spec
    assert specs == {"dark_lacquer": "2x32+lobe", "amber_veneer": "2x32+lobe", "aniso_steel": "2x32+lobe",
                     "white_satin": "2x32", "gilded_varnish": "2x32+lobe"}


def test_threshold_on_alpha(tmp_path):
    below = choice_for(tmp_path, f'type = "dielectric"\nior = 1.5\nalpha = {0.9 * NARROW_ALPHA}')
    assert below.spec == "2x32+lobe" and "narrow peak" in below.reason and "100 %" in below.reason
    above = choice_for(tmp_path, f'type = "dielectric"\nior = 1.5\nalpha = {1.1 * NARROW_ALPHA}')
    assert above.spec == "2x32"


def test_a_layer_on_too_few_texels_does_not_count(tmp_path):
    """Counted by weight: a narrow coat of weight 0.05 everywhere covers 5 % of the texels."""
    assert NARROW_SHARE > 0.05
    sparse = choice_for(tmp_path, 'type = "dielectric"\nweight = 0.05\nior = 1.5\nalpha = 0.01')
    assert sparse.spec == "2x32"
    half = choice_for(tmp_path, 'type = "dielectric"\nweight = "half"\nior = 1.5\nalpha = 0.01')
    assert half.spec == "2x32+lobe" and "50 %" in half.reason


def test_anisotropic_conductor_counts_by_its_geometric_mean(tmp_path):
    """The lobe is isotropic: alpha_u 0.01 with alpha_v 0.4 (mean 0.063) is narrow, 0.05 with 0.4
    (0.14) is not."""
    narrow = choice_for(tmp_path, 'type = "conductor"\nf0 = [0.9, 0.9, 0.9]\nalpha_u = 0.01\nalpha_v = 0.4')
    wide = choice_for(tmp_path, 'type = "conductor"\nf0 = [0.9, 0.9, 0.9]\nalpha_u = 0.05\nalpha_v = 0.4')
    assert (narrow.spec, wide.spec) == ("2x32+lobe", "2x32")


def test_sheen_and_flakes_do_not_count(tmp_path):
    assert choice_for(tmp_path, 'type = "sheen"\ncolor = [0.5, 0.5, 0.5]\nalpha = 0.01').spec == "2x32"


def test_a_named_network_is_kept(tmp_path):
    material = load_material(BUNDLED / "car_paint.toml")
    params = evaluate_parameters(material, 16)
    settings, choice = resolve_network(BakeSettings(evaluator="2x16"), material, params)
    assert settings.evaluator == "2x16" and choice is None
    settings, choice = resolve_network(BakeSettings(), material, params)
    assert settings.evaluator == "2x32+lobe" and choice.spec == "2x32+lobe"


def test_a_default_bake_takes_the_lobe_where_the_material_has_a_narrow_peak(tmp_path):
    path = tmp_path / "choice_test.toml"
    path.write_text(TEMPLATE.format(layer='type = "dielectric"\nior = 1.5\nalpha = 0.02'))
    lines = []
    result = bake(path, tmp_path, BakeSettings(iterations=6, resolution=8, batch_size=256, report=False,
                                               train_overrides={"target_queries": 1}),
                  progress=False, log=lines.append)
    assert load_model(result.asset).config.evaluator == "2x32+lobe"
    assert any(line.startswith("network: 2x32 with the analytic lobe") for line in lines), lines
    assert "narrow peak" in result.training["network_choice"]
