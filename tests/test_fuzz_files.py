"""Fuzzing material and scene files: thousands of mutated documents (a seeded generator), each of
which either loads or raises NeumatError with a one-line message: never another exception (an
OverflowError from a 400-digit integer, a KeyError, a numpy error), and nothing that loads holds a
number that is infinite as the GPU's float32 (materials that load are also evaluated, at 8 x 8).

The documents are the bundled materials and scenes, plus one scene using every feature (a map
environment, lights, a mesh file, a matrix), mutated a few times each: values replaced by
numbers at and beyond float32's limits, NaN, wrong types and other parts of the document; keys
removed or added; `type`s swapped; a tenth also garbled as text. NEUMAT_FUZZ_COUNT and
NEUMAT_FUZZ_SEED run more or other documents.
"""

import copy
import json
import math
import os
import random
import re
import tomllib
from pathlib import Path

import numpy as np
import pytest

from neumat.renderer.core.errors import NeumatError
from neumat.renderer.images.io import write_image
from neumat.renderer.materials.graph import evaluate_parameters, load_material
from neumat.renderer.materials.layout import LAYER_TYPES
from neumat.renderer.materials.nodes import NODE_TYPES, NodeRef
from neumat.renderer.scene.meshes import procedural, write_obj
from neumat.renderer.core.paths import ASSET_DIR
from neumat.renderer.scene.scene_file import load_scene

COUNT = int(os.environ.get("NEUMAT_FUZZ_COUNT", "1500"))  # per kind (materials, scenes)
SEED = int(os.environ.get("NEUMAT_FUZZ_SEED", "19"))
_BARE_KEY = re.compile(r"[A-Za-z0-9_-]+")

NASTY = [0, -1, 1, 2, 3, 7, 4096, 1 << 31, (1 << 63) - 1, -(1 << 63), 10 ** 400, 0.5, -0.5, 1e-7, 1e-45, 5e-324,
         3.4e38, 3.5e38, -3.5e38, 1e30, 1e300, -1e300, math.nan, math.inf, -math.inf, True, False, "", "x",
         "a" * 300, "../nothere.png", "nothere.toml", [], [0], [1, 2], [1, 2, 3], [0, 0, 1], [1e300, 0, 0],
         [math.nan, 1, 1], [[0, 0], [1, 1]], [[0.5, 2], [0.2, 1]], ["a", 1], {}, {"type": "fbm"}, {"a": 1}]
TYPE_NAMES = sorted({*NODE_TYPES, *LAYER_TYPES, "studio", "map", "constant", "none", "point", "reference",
                     "neural", "sphere", "plane", "box", "torus", "teapot"})


def toml_value(v) -> str:
    if isinstance(v, bool):
        return "true" if v else "false"
    if isinstance(v, int):
        return str(v)
    if isinstance(v, float):
        return "nan" if math.isnan(v) else ("inf" if v > 0 else "-inf") if math.isinf(v) else repr(v)
    if isinstance(v, str):
        return json.dumps(v)  # ASCII with \\u escapes: a TOML basic string
    if isinstance(v, list):
        return "[" + ", ".join(toml_value(x) for x in v) + "]"
    return "{" + ", ".join(f"{toml_key(k)} = {toml_value(x)}" for k, x in v.items()) + "}"


def toml_key(k: str) -> str:
    return k if _BARE_KEY.fullmatch(k) else json.dumps(k)


def toml_document(doc: dict) -> str:
    return "".join(f"{toml_key(k)} = {toml_value(v)}\n" for k, v in doc.items())


def absolute_paths(value, base: Path):
    """The document with every string that names a file relative to `base` made absolute, so that
    mutated copies load from anywhere."""
    if isinstance(value, dict):
        return {k: absolute_paths(v, base) for k, v in value.items()}
    if isinstance(value, list):
        return [absolute_paths(v, base) for v in value]
    if isinstance(value, str) and "." in value and (base / value).is_file():
        return str((base / value).resolve())
    return value


def slots(value, out: list) -> list:
    """(container, key) of every value below `value`."""
    items = value.items() if isinstance(value, dict) else enumerate(value) if isinstance(value, list) else ()
    for k, v in items:
        out.append((value, k))
        slots(v, out)
    return out


def mutate(doc: dict, rng: random.Random) -> dict:
    doc = copy.deepcopy(doc)
    for _ in range(rng.choice((1, 1, 2, 3))):
        places = slots(doc, [])
        container, key = rng.choice(places)
        value = container[key]
        op = rng.random()
        if op < 0.35:
            container[key] = copy.deepcopy(rng.choice(NASTY))
        elif op < 0.5:
            other, other_key = rng.choice(places)
            container[key] = copy.deepcopy(other[other_key])  # another part of the document
        elif op < 0.6 and isinstance(value, (int, float)) and not isinstance(value, bool):
            container[key] = value * rng.choice((-1, 10, 1e10, 1e40, 1e300, 0.0, 0.5)) + rng.choice((0, 1))
        elif op < 0.7 and isinstance(key, str) and key in ("type", "kind", "shape", "mesh", "output", "curve"):
            container[key] = rng.choice(TYPE_NAMES)
        elif op < 0.8:
            if isinstance(container, dict):
                del container[key]
            else:
                container.pop(key)
        elif op < 0.9 and isinstance(container, dict):
            names = [k for c, k in places if isinstance(k, str)]
            container[rng.choice(names + ["extra"])] = copy.deepcopy(rng.choice(NASTY + [value]))
        else:
            container[key] = [value] if rng.random() < 0.5 else [value, value]
    return doc


def garble(text: str, rng: random.Random) -> bytes:
    data = bytearray(text.encode())
    for _ in range(rng.randint(1, 4)):
        i = rng.randrange(len(data) + 1)
        kind = rng.random()
        if kind < 0.4 and data:
            del data[min(i, len(data) - 1)]
        elif kind < 0.8:
            data[i:i] = rng.choice([b"=", b"[", b"]", b"\"", b"\n", b"{", b",", b"#", b"\xff", b"1e999", b"."])
        else:
            data[i:i] = data[rng.randrange(len(data) or 1):][:12]
    return bytes(data)


def finite32(values) -> bool:
    with np.errstate(over="ignore", invalid="ignore"):
        return bool(np.all(np.isfinite(np.asarray(values, np.float64).astype(np.float32))))


def check_material(path: Path) -> None:
    material = load_material(path)
    for i, layer in enumerate(material.layers):
        for name, value in layer.params.items():
            assert isinstance(value, NodeRef) or finite32(value), f"layers[{i}].{name} = {value}"
    if all(node.type.name != "scratches" or node.params["count"] <= 2000 for node in material.nodes.values()):
        assert finite32(evaluate_parameters(material, 8))  # node outputs are range-checked there


def check_scene(path: Path) -> None:
    scene = load_scene(path)
    cam = scene.camera
    assert finite32([*cam.position, *cam.target, *cam.up, cam.fov]), cam
    env = scene.environment
    assert finite32([*env.color, env.rotation, env.intensity]), env
    for light in scene.lights:
        assert finite32([*light.position, *light.intensity]), light
    for obj in scene.objects:
        assert finite32(obj.transform) and finite32(obj.emission) and finite32(obj.uv_scale), obj.key


def run_fuzz(bases: list[dict], check, folder: Path, suffix: str, count: int, seed: int) -> int:
    """Mutates the documents `count` times; returns how many loaded. Fails on the first document
    that raises anything but a one-line NeumatError, showing the document."""
    rng = random.Random(seed)
    loaded = 0
    path = folder / f"fuzzed{suffix}"
    for n in range(count):
        text = toml_document(mutate(rng.choice(bases), rng))
        data = garble(text, rng) if rng.random() < 0.1 else text.encode()
        path.write_bytes(data)
        try:
            check(path)
            loaded += 1
        except NeumatError as e:
            assert "\n" not in str(e), f"document {n}: a message of several lines: {e}"
        except Exception as e:  # noqa: BLE001 - exactly what the test is looking for
            raise AssertionError(f"document {n} (seed {seed}) raised {type(e).__name__}: {e}\n"
                                 f"{data.decode(errors='replace')}") from e
    return loaded


@pytest.fixture(scope="module")
def feature_scene(tmp_path_factory) -> dict:
    """A scene with every kind of entry the bundled ones lack: map environment, lights, a mesh
    file, a matrix transform, an emitter, a neural material, render settings."""
    folder = tmp_path_factory.mktemp("features")
    write_image(folder / "sky.exr", np.full((8, 16, 3), 0.5, np.float32))
    write_obj(procedural("box", {}), folder / "box.obj")
    material = str(ASSET_DIR / "materials" / "car_paint.toml")
    return {
        "scene": {"name": "features", "description": "fuzz base"},
        "camera": {"position": [0.0, 1.0, 4.0], "target": [0.0, 0.0, 0.0], "up": [0.0, 1.0, 0.0], "fov": 40.0,
                   "resolution": [32, 24]},
        "environment": {"type": "map", "file": str(folder / "sky.exr"), "rotation": 30.0, "intensity": 2.0},
        "lights": [{"type": "point", "position": [1.0, 3.0, 1.0], "intensity": [5.0, 5.0, 5.0]}],
        "objects": [
            {"name": "box", "mesh": {"file": str(folder / "box.obj"), "uv_projection": "box"},
             "material": {"kind": "neural", "asset": str(ASSET_DIR / "neural" / "car_paint.neumat"), "file": material},
             "matrix": [[1.0, 0.0, 0.0, 0.0], [0.0, 1.0, 0.0, 0.5], [0.0, 0.0, 1.0, 0.0]], "uv_scale": [2.0, 1.0]},
            {"name": "lamp", "mesh": {"shape": "sphere", "radius": 0.2, "segments": 8, "rings": 4},
             "emission": [4.0, 4.0, 3.0], "translate": [0.0, 2.0, 0.0], "rotate": [0.0, 45.0, 0.0], "scale": 0.5},
        ],
        "render": {"spp": 4, "max_depth": 3, "rr_depth": 2, "seed": 1, "material_resolution": 64,
                   "material_walks": 2},
    }


def _load_bases(folder: Path) -> list[dict]:
    return [absolute_paths(tomllib.loads(p.read_text()), p.parent) for p in sorted(folder.glob("*.toml"))]


def test_fuzzed_material_files_load_or_give_one_clear_error(tmp_path):
    bases = _load_bases(ASSET_DIR / "materials")
    loaded = run_fuzz(bases, check_material, tmp_path, ".toml", COUNT, SEED)
    assert 0.02 * COUNT < loaded < 0.9 * COUNT, loaded  # the mutations are neither all fatal nor all harmless


def test_fuzzed_scene_files_load_or_give_one_clear_error(tmp_path, feature_scene):
    bases = _load_bases(ASSET_DIR / "scenes") + [feature_scene] * 3
    loaded = run_fuzz(bases, check_scene, tmp_path, ".toml", COUNT, SEED + 1)
    assert 0.02 * COUNT < loaded < 0.9 * COUNT, loaded


def test_the_generator_writes_what_toml_reads():
    """The fuzzer's own serialiser: every kind of value survives a round trip."""
    rng = random.Random(SEED)
    doc = {"a": NASTY[:10] + [1.5, -0.0, 1e-300], "b c": {"x.y": "q\"\\", "t": True}, "n": [[1, 2], {"k": []}]}
    assert tomllib.loads(toml_document(doc)) == doc
    for _ in range(200):
        mutated = mutate(doc, rng)
        text = toml_document(mutated)
        again = tomllib.loads(text)
        assert toml_document(again) == text
