"""The buffer MLP path (shaders/neural/buffer_networks.slang): one Slang module for every asset,
weights read as fp16 from the set's buffer with loops sized by each material's record. It must
compute what the torch model computes with fp16 weights (the loop path's tolerances: float32
rounding only, test_neural_slang.py's module doc), for every architecture a record describes
(frames or not, vectors or half/difference, with or without the lobe, 2x16 to 3x64), and one set
must shade each query with its own material."""

import numpy as np
import pytest

from neumat.renderer.core.errors import NeumatError
from neumat.renderer.neural import codegen
from neumat.renderer.neural import material as nm
from neumat.training.export import save_asset
from neural_parity import check_eval_and_pdf_fp16, check_sample, check_set_evaluate, random_queries
from test_neural_lobe import random_model

N = 2048


ARCHITECTURES = {  # name: random_model config
    "plain": {},
    "lobe_hd": {"evaluator": "2x32+lobe", "directions": "half_difference"},
    "small_no_frames": {"evaluator": "2x16", "directions": "half_difference", "use_frames": False},
    "wide": {"evaluator": "3x64+lobe"},
}


@pytest.fixture(scope="module")
def assets(tmp_path_factory, tiny_material):
    root = tmp_path_factory.mktemp("buffer")
    return {name: save_asset(root / f"{name}.neumat", random_model(30 + k, **config), tiny_material, {}, {}, {})
            for k, (name, config) in enumerate(ARCHITECTURES.items())}


@pytest.fixture(scope="module")
def materials(device, assets):
    return {name: nm.NeuralMaterial.from_asset(device, path, mlp="buffer") for name, path in assets.items()}


@pytest.fixture(scope="module")
def queries():
    return random_queries(8, N)


@pytest.mark.parametrize("name", list(ARCHITECTURES))
def test_eval_and_pdf_match_torch(materials, assets, queries, name):
    assert materials[name].set.mlp == "buffer"
    check_eval_and_pdf_fp16(materials[name], assets[name], queries)


def test_sample_matches_torch_and_its_pdf(materials, assets, queries):
    check_sample(materials["lobe_hd"], assets["lobe_hd"], queries, seed=3)


def test_one_module_shades_a_set_of_different_architectures(device, materials, queries):
    """Every architecture in one set, a random material per query: each query gets its own
    material's eval; and the set's module is the fixed buffer module, whatever the members."""
    members = list(materials.values())
    ids = np.random.default_rng(5).integers(0, len(members), N).astype(np.uint32)
    mset = check_set_evaluate(device, members, queries, ids, mlp="buffer")
    assert mset.module.name == codegen.BUFFER_MODULE
    assert nm.NeuralMaterialSet(device, members[:2], mlp="buffer").module.kernels_path == mset.module.kernels_path


def test_a_network_wider_than_the_buffer_path_is_named(device, assets, monkeypatch):
    """(No bake makes a layer wider than 64 yet: the limit is lowered instead.)"""
    monkeypatch.setattr(codegen, "BUFFER_MAX_WIDTH", 16)
    with pytest.raises(NeumatError, match=r"plain\.neumat: networks\.evaluator: hidden widths \[32\]"):
        nm.NeuralMaterial.from_asset(device, assets["plain"], mlp="buffer")
