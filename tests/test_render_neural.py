"""Neural materials in the path tracer (shaders/render/pathtracer.slang with a generated neural set
module): per-object and neural modes, the reference branch untouched by the neural one, the
material-id AOV over both kinds, and the errors for missing and stale assets.

Assets are untrained (random) tiny NeuralMaterials of tiny material graphs, saved to tmp_path by
training.export.save_asset; the images are 24x16 at a few samples per pixel, so the cost is the
one-time compilation of the neural variant of the pipeline."""

import subprocess
import sys

import numpy as np
import pytest

import neumat.renderer.scene.scene_file as scene_module
from neumat.renderer.core.errors import NeumatError
from neumat.renderer.pathtracer.tracer import prepare_render
from neumat.renderer.scene.scene_file import load_scene, resolve_materials
from scene_helpers import camera, diffuse, scene, tiny_asset, two_spheres

pytestmark = pytest.mark.gpu("ray_tracing", "acceleration_structure")

SPP = 4


@pytest.fixture(scope="module")
def setup(tmp_path_factory):
    root = tmp_path_factory.mktemp("render_neural")
    diffuse(root, "red", (0.8, 0.1, 0.1))
    diffuse(root, "grey", (0.5, 0.5, 0.5))
    baked = root / "baked"
    baked.mkdir()
    tiny_asset(baked / "grey.neumat", root / "grey.toml", 1)
    # Left: a reference-only object (red); right: a neural object (grey, with its graph).
    path = scene(root, SCENE_BODY)
    return {"root": root, "scene": path, "baked": baked}


SCENE_BODY = two_spheres((24, 16), '{ kind = "neural", asset = "baked/grey.neumat", file = "grey.toml" }',
                         render="max_depth = 1")


@pytest.fixture
def baked_dir(setup, monkeypatch):
    """Pre-baked assets (for objects with only a reference graph) come from setup's folder."""
    monkeypatch.setattr(scene_module, "NEURAL_ASSET_DIR", setup["baked"])
    return setup["baked"]


def _interior(ids, value):
    """Pixels of material id `value` whose 3x3 neighbourhood has that id too (no mixed pixels)."""
    m = ids == value
    out = m.copy()
    for dy in (-1, 0, 1):
        for dx in (-1, 0, 1):
            out &= np.roll(np.roll(m, dy, 0), dx, 1)
    out[0], out[-1], out[:, 0], out[:, -1] = False, False, False, False
    return out


def test_per_object_and_reference_modes(device, setup):
    s = load_scene(setup["scene"])
    a = resolve_materials(s, "per-object")
    assert a.object_kind == ["reference", "neural"] and a.object_material == [0, 0]
    assert [f.name for f in a.files] == ["red.toml"] and [p.name for p in a.assets] == ["grey.neumat"]

    tracer, _ = prepare_render(device, s, "per-object")
    r1 = tracer.render(SPP, 7)
    r2 = tracer.render(SPP, 7)
    np.testing.assert_array_equal(r1.image, r2.image)  # deterministic
    assert np.all(np.isfinite(r1.image)) and r1.dropped_samples == 0
    assert tracer.material_names == ["red", "grey"]
    ids = r1.aovs["material_id"]
    assert set(np.unique(ids).astype(int).tolist()) == {-1, 0, 1}  # reference 0, neural 1
    lod = r1.aovs["lod"]
    assert np.all(np.isfinite(lod[ids >= 0]))

    ref_tracer, _ = prepare_render(device, s, "reference")
    ref = ref_tracer.render(SPP, 7)
    ref_ids = ref.aovs["material_id"]
    assert set(np.unique(ref_ids).astype(int).tolist()) == {-1, 0, 1}  # red 0, grey 1 (both reference)
    left, right = _interior(ids, 0), _interior(ids, 1)
    assert left.sum() > 10 and right.sum() > 10
    # The reference object is shaded by the same code with the same random numbers in both modes
    # (max_depth 1: no light reaches it by way of the neural object). Bit-exact on lavapipe; the
    # NVIDIA driver compiles the two pipelines differently and differs in the last bit (seen: 1.2e-7).
    np.testing.assert_allclose(r1.image[left], ref.image[left], rtol=1e-5, atol=1e-6)
    # The untrained neural material is not the grey diffuse graph.
    assert np.abs(r1.image[right] - ref.image[right]).mean() > 1e-3


def test_neural_mode_uses_prebaked_assets(device, setup, baked_dir):
    """--mode neural: the neural object keeps its asset; the reference-only object finds the
    pre-baked NEURAL_ASSET_DIR/<material name>.neumat. Here both are the grey asset, so the scene's
    neural set is the same as in per-object mode. With no reference material to show, the path
    tracer leaves the layered reference code out (REFERENCE_MATERIALS 0) and renders the same image
    as the full one showing every object's neural kind."""
    path = scene(setup["root"], SCENE_BODY.replace('"red.toml"', '"grey.toml"'), name="grey_scene")
    s = load_scene(path)
    a = resolve_materials(s, "neural")
    assert a.object_kind == ["neural", "neural"] and a.files == [] and a.object_material == [0, 0]
    assert [p.name for p in a.assets] == ["grey.neumat"]
    tracer, _ = prepare_render(device, s, "neural")
    r1 = tracer.render(SPP, 3)
    r2 = tracer.render(SPP, 3)
    np.testing.assert_array_equal(r1.image, r2.image)
    assert np.all(np.isfinite(r1.image)) and r1.dropped_samples == 0
    # A placeholder reference material at 0 (a material set needs one), the neural one after it.
    assert tracer.material_names == ["placeholder", "grey"]
    assert set(np.unique(r1.aovs["material_id"]).astype(int).tolist()) == {-1, 1}
    full = prepare_render(device, s, "per-object", switchable=True)[0]
    assert dict(tracer.variant[1])["REFERENCE_MATERIALS"] == "0" and "REFERENCE_MATERIALS" not in dict(full.variant[1])
    np.testing.assert_array_equal(full.render(SPP, 3, kinds=full.kinds_for("neural")).image, r1.image)
    ref = prepare_render(device, s, "reference")[0].render(SPP, 3)
    left = _interior(ref.aovs["material_id"], 0) & (np.arange(24) < 12)[None, :]
    assert left.sum() > 10
    assert np.abs(r1.image[left] - ref.image[left]).mean() > 1e-3


def test_missing_asset(setup, tmp_path, monkeypatch):
    monkeypatch.setattr(scene_module, "NEURAL_ASSET_DIR", tmp_path / "nowhere")
    s = load_scene(setup["scene"])
    with pytest.raises(NeumatError, match=r"objects\[0\]\.material: --mode neural: .*object 'left'.*no baked neural asset "
                                          r".*nowhere/red\.neumat.*neumat bake .*red\.toml"):
        resolve_materials(s, "neural")
    diffuse(tmp_path, "grey", (0.5, 0.5, 0.5))
    path = scene(tmp_path, camera() + '[[objects]]\nname = "ball"\nmesh = "sphere"\n'
                 'material = { kind = "neural", asset = "gone.neumat", file = "grey.toml" }\n')
    with pytest.raises(NeumatError, match=r"objects\[0\]\.material: .*object 'ball'.*gone\.neumat.*neumat bake"):
        resolve_materials(load_scene(path), "per-object")
    assert resolve_materials(load_scene(path), "reference").object_kind == ["reference"]


def test_stale_asset(setup, tmp_path):
    """An asset baked from another version of its material graph is refused, naming the object."""
    diffuse(tmp_path, "grey", (0.5, 0.5, 0.5))
    asset = tiny_asset(tmp_path / "grey.neumat", tmp_path / "grey.toml", 3)
    diffuse(tmp_path, "grey", (0.6, 0.5, 0.5))  # the graph changed after the bake
    path = scene(tmp_path, camera() + '[[objects]]\nname = "ball"\nmesh = "sphere"\n'
                 f'material = {{ kind = "neural", asset = "{asset.name}", file = "grey.toml" }}\n')
    with pytest.raises(NeumatError, match=r"objects\[0\]\.material: object 'ball': .*source_hash.*stale.*rebake"):
        resolve_materials(load_scene(path), "per-object")


def test_switchable_objects_flip_between_kinds_without_recompiling(device, setup, baked_dir):
    """A switchable render binds both kinds where they exist: the red object has no pre-baked asset
    (it stays reference-only and says why); flipping the grey object changes its pixels only, and
    flipping it back gives the first image again."""
    s = load_scene(setup["scene"])
    a = resolve_materials(s, "per-object", switchable=True)
    assert a.object_choices == [{"reference": 0}, {"neural": 0, "reference": 1}]
    assert "red.neumat" in a.unavailable[0]
    tracer, _ = prepare_render(device, s, "per-object", switchable=True)
    assert tracer.kinds_available(0) == ("reference",) and set(tracer.kinds_available(1)) == {"reference", "neural"}
    with pytest.raises(NeumatError, match="'left' has no neural material"):
        tracer.set_object_kind(0, "neural")
    neural = tracer.render(SPP, 5)
    tracer.set_object_kind(1, "reference")
    reference = tracer.render(SPP, 5)
    ids = reference.aovs["material_id"]
    left, right = _interior(ids, 0), _interior(ids, 1)
    np.testing.assert_array_equal(neural.image[left], reference.image[left])
    assert np.abs(neural.image[right] - reference.image[right]).mean() > 1e-3
    assert tracer.kinds_for("neural") == ["reference", "neural"]
    again = tracer.render(SPP, 5, kinds=tracer.kinds_for("neural"))
    np.testing.assert_array_equal(again.image, neural.image)


def _relative_difference_to_loop(device, setup, mlp: str, spp: int) -> float:
    """Mean |difference| / mean over the neural object's pixels between a frame on MLP path `mlp` and
    one on the loop path, same seed (the material ids must agree exactly)."""
    s = load_scene(setup["scene"])
    loop = prepare_render(device, s, "per-object", mlp="loop")[0]
    other = prepare_render(device, s, "per-object", mlp=mlp)[0]
    assert (loop.neural_set.mlp, other.neural_set.mlp) == ("loop", mlp)
    a, b = loop.render(spp, 5), other.render(spp, 5)
    neural = _interior(a.aovs["material_id"], 1)
    assert neural.sum() > 10
    np.testing.assert_array_equal(a.aovs["material_id"], b.aovs["material_id"])
    return float(np.abs(a.image[neural] - b.image[neural]).mean() / a.image[neural].mean())


@pytest.mark.gpu("cooperative_vector")
def test_coopvec_and_loop_paths_render_the_same_image(device, setup):
    """The tensor-core (CoopVec) decoders and the plain-loop ones are two codings of one fp16
    network: a whole path-traced frame with either matches to fp16 rounding, with the same random
    numbers (the loop path accumulates in fp32, CoopVec in the matrix unit's precision)."""
    assert _relative_difference_to_loop(device, setup, "coopvec", 64) < 0.01


def test_buffer_and_loop_paths_render_the_same_image(device, setup):
    """The buffer path (weights read from the weight buffer by one module for every asset) and the
    loop path (weights inlined) compute the same fp32 arithmetic on the same fp16 weights in another
    order: with the same random numbers a frame matches to float rounding, which a path can amplify
    only where a sampled direction flips across a decision (a few pixels, not the mean)."""
    assert _relative_difference_to_loop(device, setup, "buffer", 16) < 1e-3


def test_coopvec_without_the_feature_is_one_clear_error(device, setup, tmp_path):
    """In the API a NeumatError naming the object's asset, the feature and the way out; on the command
    line exit 2 with that message and no image."""
    from neumat.renderer.core.device import REPORTED_FEATURES

    if device.has_feature(REPORTED_FEATURES["cooperative_vector"]):
        pytest.skip("this device has cooperative vectors")
    with pytest.raises(NeumatError, match="grey.neumat.*cooperative_vector.*loop"):
        prepare_render(device, load_scene(setup["scene"]), "per-object", mlp="coopvec")
    out = tmp_path / "x.png"
    r = subprocess.run([sys.executable, "-m", "neumat", "render", str(setup["scene"]), "--mlp", "coopvec",
                        "--spp", "1", "-o", str(out)], capture_output=True, text=True)
    assert r.returncode == 2 and "cooperative_vector" in r.stderr and "Traceback" not in r.stderr, r.stderr
    assert not out.exists()


def test_render_cli_offers_every_mlp_path(capsys):
    from neumat.cli import main
    from neumat.renderer.neural.material import MLP_PATHS

    with pytest.raises(SystemExit):
        main(["render", "--help"])
    assert "{" + ",".join(MLP_PATHS) + "}" in capsys.readouterr().out
