"""Material graphs: a TOML file of texture nodes and a layer stack (docs/materials.md), parsed
and checked into a `Material`, then evaluated to the per-texel parameter vector of layout.py.

Every problem in a file is reported as one NeumatError naming the file and the key path, e.g.
`brass.toml: layers[2].alpha: must be in [0, 1], got -0.1`. Parameters that come from nodes are
range-checked after evaluation, because only then are their values known.
"""

import difflib
import hashlib
import math
import os
import re
import tomllib
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from neumat.renderer.core.errors import NeumatError
from neumat.renderer.materials.layout import BOTTOM_TYPES, LAYER_TYPES, MAX_LAYERS, StackLayout
from neumat.renderer.materials.nodes import (
    NODE_TYPES, REQUIRED, Grid, NodeRef, NodeType, SpecError, parse_input)
from neumat.renderer.core.numbers import check_number
from neumat.renderer.materials.pyramid import build_pyramid  # noqa: F401  (the evaluation API, importable from here)

DEFAULT_RESOLUTION = 512
MAX_RESOLUTION = 8192
# Node outputs may overshoot a parameter's range by float rounding (a mix of values in [0, 1]);
# beyond this they are an error, within it they are clamped.
RANGE_TOLERANCE = 1e-5
MAX_IOR = 10.0  # diamond 2.42, germanium ~4
MAX_THICKNESS = 1e4  # with absorption 1e-3 (a clear glaze) still nearly opaque
MAX_ABSORPTION = 1e4


@dataclass(frozen=True)
class ParamRule:
    """How a layer parameter is given and checked. Widths: 1 (scalar) or 3 (RGB: a scalar constant
    or node repeats over the channels; normal: an xyz node, normalised, z > 0)."""

    width: int
    lo: float = -math.inf
    hi: float = math.inf
    kind: str = "value"  # "value", "normal" or "angle" (degrees in the file, radians in the vector)


PARAM_RULES: dict[str, ParamRule] = {
    "weight": ParamRule(1, 0, 1),
    "normal": ParamRule(3, kind="normal"),
    "albedo": ParamRule(3, 0, 1),
    "f0": ParamRule(3, 0, 1),
    "edge_tint": ParamRule(3, 0, 1),
    "color": ParamRule(3, 0, 1),
    "alpha": ParamRule(1, 0, 1),
    "alpha_u": ParamRule(1, 0, 1),
    "alpha_v": ParamRule(1, 0, 1),
    "rotation": ParamRule(1, kind="angle"),
    # Upper bounds well past physical values, so that the BSDF's arithmetic stays finite in float32.
    "ior": ParamRule(1, 1, MAX_IOR),
    "thickness": ParamRule(1, 0, MAX_THICKNESS),
    "absorption": ParamRule(3, 0, MAX_ABSORPTION),
}
assert {p for t in LAYER_TYPES.values() for p, _ in t.params} <= PARAM_RULES.keys(), \
    "layout.py has a parameter without a rule in PARAM_RULES"

# Values of omitted parameters (a conductor's edge_tint defaults to its f0 instead).
PARAM_DEFAULTS: dict[str, object] = {
    "weight": 1.0, "normal": [0.0, 0.0, 1.0], "rotation": 0.0, "ior": 1.5, "thickness": 1.0, "absorption": 0.0}

_ID_PATTERN = re.compile(r"[A-Za-z0-9_-]+")

Value = NodeRef | np.ndarray  # a node's output, or a constant of shape (1,) or (3,)


@dataclass(frozen=True)
class Node:
    """A parsed node: its type, checked fields and output width."""

    id: str
    type: NodeType
    params: dict  # field -> parsed value (NodeRef or constant for input fields)
    width: int  # output channels: 1 or 3


@dataclass(frozen=True)
class Layer:
    """A parsed layer: every parameter of its type, given or defaulted."""

    type: str
    label: str  # the optional `name`, for summaries
    params: dict[str, Value]  # every parameter of the type, in layout order; normals unit, angles in degrees


@dataclass
class Material:
    """A parsed and checked material file; evaluate_parameters turns it into textures."""

    name: str
    path: Path
    description: str
    resolution: int
    layout: StackLayout
    source_hash: str  # sha256 over the TOML bytes and every referenced file's path and bytes
    nodes: dict[str, Node]
    layers: tuple[Layer, ...]
    order: tuple[str, ...]  # the nodes the layers use, each after its inputs


def _closest(name: str, known: list[str]) -> str:
    near = difflib.get_close_matches(name, known, n=1)
    return f"did you mean '{near[0]}'?" if near else f"known: {', '.join(sorted(known)) or 'none'}"


def _check_keys(table: dict, key: str, allowed: list[str], what: str) -> None:
    for k in table:
        if k not in allowed:
            raise SpecError(f"{key}.{k}" if key else k, f"unknown field for {what} (allowed: {', '.join(allowed)})")


def _table(value: object, key: str, what: str) -> dict:
    if not isinstance(value, dict):
        raise SpecError(key, f"must be a table ({what}), got {type(value).__name__}")
    return value


def _parse_node(node_id: str, raw: object, base_dir: Path) -> tuple[NodeType, dict]:
    key = f"nodes.{node_id}"
    if not _ID_PATTERN.fullmatch(node_id):
        raise SpecError(key, "node ids may use only letters, digits, '_' and '-'")
    table = _table(raw, key, "[nodes.<id>] with a type")
    known = ", ".join(NODE_TYPES)
    if "type" not in table:
        raise SpecError(f"{key}.type", f"missing (known node types: {known})")
    type_name = table["type"]
    if not isinstance(type_name, str) or type_name not in NODE_TYPES:
        raise SpecError(f"{key}.type", f"unknown node type {type_name!r} (known: {known})")
    node_type = NODE_TYPES[type_name]
    _check_keys(table, key, ["type", *node_type.fields], f"a '{type_name}' node")
    params = {}
    for name, spec in node_type.fields.items():
        if name in table:
            try:
                params[name] = spec.parse(table[name])
            except ValueError as e:
                raise SpecError(f"{key}.{name}", str(e)) from None
        elif spec.default is REQUIRED:
            required = [n for n, f in node_type.fields.items() if f.default is REQUIRED]
            raise SpecError(f"{key}.{name}", f"missing (a '{type_name}' node needs {', '.join(required)})")
        else:
            params[name] = spec.default
    try:
        node_type.check(params)
        node_type.prepare(params, base_dir)
    except SpecError as e:
        raise SpecError(f"{key}.{e.key}", e.message) from None
    return node_type, params


def _input_refs(node_type: NodeType, params: dict) -> list[tuple[str, str]]:
    """(field, referenced node id) for every input field that names a node."""
    return [(f, params[f].id) for f, spec in node_type.fields.items()
            if spec.is_input and isinstance(params[f], NodeRef)]


def _parse_nodes(raw: object, base_dir: Path) -> dict[str, Node]:
    parsed = {nid: _parse_node(nid, value, base_dir) for nid, value in _table(raw, "nodes", "[nodes.<id>]").items()}
    for nid, (node_type, params) in parsed.items():
        for field, ref in _input_refs(node_type, params):
            if ref not in parsed:
                raise SpecError(f"nodes.{nid}.{field}", f"unknown node '{ref}' ({_closest(ref, list(parsed))})")
    nodes: dict[str, Node] = {}
    for nid in _topological_order(parsed):
        node_type, params = parsed[nid]
        widths = {f: nodes[v.id].width if isinstance(v, NodeRef) else v.shape[0]
                  for f, spec in node_type.fields.items() if spec.is_input for v in (params[f],)}
        try:
            width = node_type.width(params, widths)
        except SpecError as e:
            raise SpecError(f"nodes.{nid}.{e.key}", e.message) from None
        nodes[nid] = Node(nid, node_type, params, width)
    return nodes


def _topological_order(parsed: dict[str, tuple[NodeType, dict]]) -> list[str]:
    """All node ids, each after the nodes it reads; names the cycle if there is one."""
    order: list[str] = []
    done: set[str] = set()
    path: list[str] = []

    def visit(nid: str) -> None:
        path.append(nid)
        for field, ref in _input_refs(*parsed[nid]):
            if ref in path:
                cycle = " -> ".join(path[path.index(ref):] + [ref])
                raise SpecError(f"nodes.{nid}.{field}", f"cycle in the node graph: {cycle}")
            if ref not in done:
                visit(ref)
        path.pop()
        done.add(nid)
        order.append(nid)

    for nid in parsed:
        if nid not in done:
            visit(nid)
    return order


def _format_values(values: np.ndarray) -> str:
    return f"{values[0]:g}" if values.shape[0] == 1 else "[" + ", ".join(f"{v:g}" for v in values) + "]"


def _range_text(rule: ParamRule) -> str:
    if rule.hi == math.inf:
        return f">= {rule.lo:g}"
    return f"in [{rule.lo:g}, {rule.hi:g}]"


def _parse_param(raw: object, param: str, key: str, nodes: dict[str, Node]) -> Value:
    rule = PARAM_RULES[param]
    try:
        value = parse_input(raw)
    except ValueError as e:
        raise SpecError(key, str(e)) from None
    if isinstance(value, NodeRef):
        if value.id not in nodes:
            raise SpecError(key, f"unknown node '{value.id}' ({_closest(value.id, list(nodes))})")
        width = nodes[value.id].width
        if rule.width == 1 and width != 1:
            raise SpecError(key, f"node '{value.id}' gives RGB; {param} is a scalar")
        if rule.kind == "normal" and width != 3:
            raise SpecError(key, f"node '{value.id}' gives a scalar; a normal needs an xyz node "
                                 "(height_to_normal, normal_map, flakes)")
        return value
    if rule.width == 1 and value.shape[0] != 1:
        raise SpecError(key, f"must be a scalar, got {raw}")
    if rule.kind == "normal":
        if value.shape[0] != 3 or value[2] <= 0:
            raise SpecError(key, f"must be [x, y, z] with z > 0 (tangent space, z out of the surface), got {raw}")
        return value / np.linalg.norm(value)
    for v in value:
        try:
            check_number(float(v), rule.lo, rule.hi)
        except ValueError as e:
            raise SpecError(key, str(e) if value.shape[0] == 1 else f"{e} (in {_format_values(value)})") from None
    return value


def _parse_layer(index: int, raw: object, nodes: dict[str, Node]) -> Layer:
    key = f"layers[{index}]"
    table = _table(raw, key, "[[layers]]")
    known = ", ".join(LAYER_TYPES)
    if "type" not in table:
        raise SpecError(f"{key}.type", f"missing (layer types: {known})")
    type_name = table["type"]
    if not isinstance(type_name, str) or type_name not in LAYER_TYPES:
        raise SpecError(f"{key}.type", f"unknown layer type {type_name!r} (known: {known})")
    if index == 0 and type_name not in BOTTOM_TYPES:
        raise SpecError(f"{key}.type", f"the bottom layer must be opaque: one of {', '.join(BOTTOM_TYPES)}, "
                                       f"got '{type_name}'")
    names = [p for p, _ in LAYER_TYPES[type_name].params]
    shorthand = ["alpha"] if type_name == "conductor" else []
    _check_keys(table, key, ["type", "name", *names, *shorthand], f"a '{type_name}' layer")
    label = table.get("name", "")
    if not isinstance(label, str):
        raise SpecError(f"{key}.name", f"must be a string, got {label!r}")
    given = dict(table)
    if "alpha" in shorthand and "alpha" in given:
        if "alpha_u" in given or "alpha_v" in given:
            raise SpecError(f"{key}.alpha", "give either alpha (isotropic) or alpha_u and alpha_v, not both")
        given["alpha_u"] = given["alpha_v"] = given["alpha"]
    if type_name == "conductor" and "edge_tint" not in given and "f0" in given:
        given["edge_tint"] = given["f0"]
    if index == 0 and given.get("weight", 1) != 1:
        raise SpecError(f"{key}.weight", "the bottom layer is always present: leave weight out (it is 1)")
    params: dict[str, Value] = {}
    for p in names:
        if p in given:
            params[p] = _parse_param(given[p], p, f"{key}.{p}", nodes)
        elif p in PARAM_DEFAULTS:
            params[p] = _parse_param(PARAM_DEFAULTS[p], p, f"{key}.{p}", nodes)
        else:
            hint = " (or alpha for both)" if p in ("alpha_u", "alpha_v") else ""
            raise SpecError(f"{key}.{p}", f"missing: a '{type_name}' layer needs {p}{hint}")
    return Layer(type_name, label, params)


def _parse_layers(raw: object, nodes: dict[str, Node]) -> tuple[Layer, ...]:
    if raw is None:
        raise SpecError("layers", "missing: a material needs at least one [[layers]] table")
    if not isinstance(raw, list):
        raise SpecError("layers", "must be an array of tables: write each layer as [[layers]]")
    if not 1 <= len(raw) <= MAX_LAYERS:
        raise SpecError("layers", f"a stack has 1 to {MAX_LAYERS} layers, got {len(raw)}")
    return tuple(_parse_layer(i, layer, nodes) for i, layer in enumerate(raw))


def _parse_header(raw: object, default_name: str) -> tuple[str, str, int]:
    table = _table(raw, "material", "[material]")
    _check_keys(table, "material", ["name", "description", "resolution"], "[material]")
    name = table.get("name", default_name)
    description = table.get("description", "")
    for key, value in (("name", name), ("description", description)):
        if not isinstance(value, str):
            raise SpecError(f"material.{key}", f"must be a string, got {value!r}")
    resolution = table.get("resolution", DEFAULT_RESOLUTION)
    try:
        check_number(resolution, 1, MAX_RESOLUTION, integer=True)
    except ValueError as e:
        raise SpecError("material.resolution", str(e)) from None
    if resolution & (resolution - 1):
        raise SpecError("material.resolution", f"must be a power of two, got {resolution}")
    return name, description, resolution


def _source_hash(toml_bytes: bytes, nodes: dict[str, Node], base_dir: Path) -> str:
    h = hashlib.sha256(toml_bytes)
    for nid in sorted(nodes):
        for path in nodes[nid].type.files(nodes[nid].params):
            h.update(f"{nid}\0{os.path.relpath(path, base_dir)}\0".encode())
            h.update(path.read_bytes())
    return h.hexdigest()


def load_material(path: str | Path) -> Material:
    """Parses and checks a material file: a TOML graph, or a MaterialX document (`FILE.mtlx`, or
    `FILE.mtlx#Material` to pick one of several; renderer/materials/materialx.py translates it and
    prints its dropped or approximated inputs once). Raises NeumatError naming the file and key path."""
    from neumat.renderer.materials.materialx import split_reference
    if split_reference(path)[0].suffix.lower() == ".mtlx":
        return _load_materialx(path)
    path = Path(path)
    try:
        data = path.read_bytes()
    except OSError as e:
        raise NeumatError(f"{path}: cannot read the material file ({e.strerror})") from None
    try:
        doc = tomllib.loads(data.decode("utf-8"))
    except (tomllib.TOMLDecodeError, UnicodeDecodeError) as e:
        raise NeumatError(f"{path.name}: TOML syntax error: {e}") from None
    return material_from_document(doc, path, path.parent, data)


def _load_materialx(ref: str | Path) -> Material:
    from neumat.renderer.materials.materialx import translate, warn_once

    translation = translate(ref)
    for warning in translation.warnings:
        warn_once(warning)
    return material_from_document(translation.document(), Path(ref), translation.file.parent,
                                   translation.source_hash_bytes())


def material_from_document(doc: dict, path: Path, base_dir: Path, data: bytes) -> Material:
    """A Material from a material's tables (a parsed TOML file, or a translated MaterialX material);
    `data` (the file's bytes) seeds the source hash, image paths are relative to `base_dir`."""
    try:
        _check_keys(doc, "", ["material", "nodes", "layers"], "the top level")
        if "material" not in doc:
            raise SpecError("material", "missing: a material file starts with a [material] table")
        name, description, resolution = _parse_header(doc["material"], path.stem)
        nodes = _parse_nodes(doc.get("nodes", {}), base_dir)
        layers = _parse_layers(doc.get("layers"), nodes)
    except SpecError as e:
        raise NeumatError(f"{path.name}: {e}") from None
    used = {v.id for layer in layers for v in layer.params.values() if isinstance(v, NodeRef)}
    pending = list(used)
    while pending:
        node = nodes[pending.pop()]
        for _, ref in _input_refs(node.type, node.params):
            if ref not in used:
                used.add(ref)
                pending.append(ref)
    return Material(
        name=name, path=path, description=description, resolution=resolution,
        layout=StackLayout(tuple(layer.type for layer in layers)),
        source_hash=_source_hash(data, nodes, base_dir.resolve()),
        nodes=nodes, layers=layers, order=tuple(nid for nid in nodes if nid in used))


def _node_arguments(node: Node, outputs: dict[str, np.ndarray]) -> dict:
    args = dict(node.params)
    for field, spec in node.type.fields.items():
        if spec.is_input:
            v = node.params[field]
            args[field] = outputs[v.id] if isinstance(v, NodeRef) else v[None, None, :]
    return args


def _checked_node_values(material: Material, key: str, param: str, node_id: str, values: np.ndarray) -> np.ndarray:
    """A node's output where it drives `param`: finite, in range (normals: unit with z > 0)."""
    rule = PARAM_RULES[param]
    where = f"{material.path.name}: {key}: node '{node_id}'"
    if not np.all(np.isfinite(values)):
        raise NeumatError(f"{where} gives non-finite values (NaN or infinity)")
    if rule.kind == "normal":
        length = np.linalg.norm(values, axis=-1, keepdims=True)
        values = values / np.maximum(length, 1e-30)
        if np.any(length < 1e-6) or np.any(values[..., 2] <= 0):
            raise NeumatError(f"{where} gives normals with z <= 0 or zero length (lowest z "
                              f"{values[..., 2].min():.3g}); normals must point out of the surface")
        return values
    lo, hi = values.min(), values.max()
    if lo < rule.lo - RANGE_TOLERANCE:
        raise NeumatError(f"{where} gives values down to {lo:.4g}; {param} must be {_range_text(rule)}")
    if hi > rule.hi + RANGE_TOLERANCE:
        raise NeumatError(f"{where} gives values up to {hi:.4g}; {param} must be {_range_text(rule)}")
    return np.clip(values, rule.lo, rule.hi)


def _check_resolution(material: Material, resolution: int) -> None:
    if not (isinstance(resolution, int) and 1 <= resolution <= MAX_RESOLUTION and resolution & (resolution - 1) == 0):
        raise NeumatError(f"{material.path.name}: resolution must be a power of two in [1, {MAX_RESOLUTION}], "
                          f"got {resolution}")


def evaluate_parameters(material: Material, resolution: int | None = None) -> np.ndarray:
    """The per-texel parameter vectors, [N, N, K] float32 with N = `resolution` (default: the
    material's) and K = material.layout.width. Texel (i, j) is sampled at uv = ((j + 0.5) / N,
    (i + 0.5) / N): u along columns, v along rows, row 0 at v near 0. Normals are unit with z > 0,
    rotations in radians. Raises NeumatError when a node drives a parameter out of its range."""
    n = material.resolution if resolution is None else resolution
    _check_resolution(material, n)
    grid = Grid(n)
    outputs: dict[str, np.ndarray] = {}
    for nid in material.order:
        node = material.nodes[nid]
        out = node.type.evaluate(_node_arguments(node, outputs), grid)
        outputs[nid] = np.broadcast_to(out.astype(np.float32, copy=False), (n, n, node.width))
    params = np.empty((n, n, material.layout.width), np.float32)
    for i, layer in enumerate(material.layers):
        for param, value in layer.params.items():
            key = f"layers[{i}].{param}"
            if isinstance(value, NodeRef):
                value = _checked_node_values(material, key, param, value.id, outputs[value.id])
            if PARAM_RULES[param].kind == "angle":
                value = np.radians(value)
            slot = material.layout.slot(i, param)
            params[..., slot] = np.broadcast_to(value, (n, n, slot.stop - slot.start))
    return params


def describe_material(material: Material, params: np.ndarray | None = None) -> str:
    """A human summary: header, then every layer parameter with its float index in the vector, its
    source (constant or node) and, given evaluated `params`, the range of its values."""
    layout = material.layout
    lines = [
        f"{material.name}: {material.description}" if material.description else material.name,
        f"  file        {material.path}",
        f"  resolution  {material.resolution} x {material.resolution}",
        f"  nodes       {len(material.nodes)} ({len(material.order)} used by the layers)",
        f"  layers      {len(material.layers)}, bottom to top; K = {layout.width} floats per texel",
        f"  hash        {material.source_hash[:16]}",
    ]
    for i, layer in enumerate(material.layers):
        label = f' "{layer.label}"' if layer.label else ""
        lines.append(f"  layers[{i}] {layer.type}{label}")
        for param, value in layer.params.items():
            slot = layout.slot(i, param)
            index = f"[{slot.start}]" if slot.stop - slot.start == 1 else f"[{slot.start}:{slot.stop}]"
            source = f"<- {value.id}" if isinstance(value, NodeRef) else _format_values(value)
            if PARAM_RULES[param].kind == "angle" and not isinstance(value, NodeRef):
                source += " deg"
            if params is not None and isinstance(value, NodeRef):
                v = params[..., slot]
                source += (f"   z >= {v[..., 2].min():.3f}" if param == "normal"
                           else f"   {v.min():.4g} .. {v.max():.4g}")
            lines.append(f"    {index:<9} {param:<11} {source}")
    return "\n".join(lines)


def validate_material(path: str | Path) -> str:
    """Loads and evaluates a material at its resolution (so node outputs are range-checked too) and
    returns describe_material's summary; raises NeumatError on any problem."""
    material = load_material(path)
    return describe_material(material, evaluate_parameters(material))
