"""MaterialX documents as neumat material graphs: a `surfacematerial` and the `open_pbr_surface`,
`standard_surface` or `gltf_pbr` shader behind it become a layer stack (docs/materials.md), and the
node graphs feeding the shader's inputs become texture nodes. docs/materialx.md is the mapping
table; this module is its one implementation.

`translate` returns a `Translation`: the same table structure a material TOML parses into (so
graph.py checks and evaluates it like any other material), the element path each node and
parameter came from (for the comments of `neumat material import`), the files it read (for the
source hash) and one warning per input that neumat drops or approximates.

Conventions bridged here:
- MaterialX texture coordinates run v up from an image's bottom row; neumat's mesh loaders store
  1 - v (renderer/scene/meshes.py), so an image maps onto neumat's uv exactly as stored, and tangent-space
  normal maps, whose green points along MaterialX's +v, are decoded with flip_y (neumat's +v is the
  image's down).
- Shading-model roughness r is a GGX alpha of r^2. Nonlinear functions of a texture input (r^2 when
  r is textured, the coat's absorption from its colour, the specular weight folded into the IOR)
  become `remap` nodes: a power curve where exact, else piecewise linear through CURVE_POINTS samples.
"""

import hashlib
import json
import math
import os
import sys
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from neumat.renderer.core.errors import NeumatError

SHADERS = ("open_pbr_surface", "standard_surface", "gltf_pbr")
IMAGE_SUFFIXES = (".png", ".exr", ".jpg", ".jpeg")
CURVE_POINTS = 33
MIN_COAT_COLOR = 1e-3  # a black coat is an absorption of -ln(1e-3) / 2 = 3.45 per unit thickness
LINEAR_SPACES = ("", "lin_rec709", "lin_srgb", "raw", "srgb_linear", "linear")
SRGB_SPACES = ("srgb_texture", "srgb_displayp3")

# Constant colours are given in their element's colour space (MaterialX's colorspace attribute,
# inherited from the node graph or document); neumat's are linear Rec.709. Primaries -> linear
# Rec.709 (D65; AP1 through the Bradford adaptation from D60, as OpenColorIO's ACES config).
_AP1 = np.array([[1.7050509927, -0.6217921206, -0.0832588720],
                 [-0.1302564175, 1.1408047366, -0.0105483191],
                 [-0.0240033568, -0.1289689761, 1.1529723329]])
_P3 = np.array([[1.2249401763, -0.2249401763, 0.0], [-0.0420569547, 1.0420569547, 0.0],
                [-0.0196375546, -0.0786360456, 1.0982736001]])
_ADOBE = np.array([[1.3982832, -0.3982832, 0.0], [0.0, 1.0, 0.0], [0.0, -0.0429383, 1.0429383]])
_SRGB_CURVE = "srgb"
COLOR_SPACES = {  # name -> (transfer: "srgb", a gamma or None for linear; primaries matrix or None)
    "lin_rec709": (None, None), "lin_srgb": (None, None), "srgb_texture": (_SRGB_CURVE, None),
    "g22_rec709": (2.2, None), "g18_rec709": (1.8, None), "acescg": (None, _AP1), "lin_ap1": (None, _AP1),
    "g22_ap1": (2.2, _AP1), "g18_ap1": (1.8, _AP1), "lin_displayp3": (None, _P3),
    "srgb_displayp3": (_SRGB_CURVE, _P3), "lin_adobergb": (None, _ADOBE), "adobergb": (2.19921875, _ADOBE),
}


def to_rec709(rgb: np.ndarray, space: str) -> np.ndarray | None:
    """A colour in MaterialX colour space `space` as linear Rec.709; None for an unknown space."""
    if space in ("", "raw"):
        return rgb
    if space not in COLOR_SPACES:
        return None
    transfer, matrix = COLOR_SPACES[space]
    if transfer == _SRGB_CURVE:
        from neumat.renderer.images.color import srgb_decode
        rgb = srgb_decode(rgb)
    elif transfer is not None:
        rgb = np.clip(rgb, 0, None) ** transfer
    return rgb if matrix is None else matrix @ rgb


@dataclass(frozen=True)
class Ref:
    """A neumat node's output: `width` 1 (scalar) or 3 (RGB)."""

    id: str
    width: int


Value = float | tuple | Ref  # a scalar, an (r, g, b) tuple, or a node


def _const(v: Value) -> bool:
    return not isinstance(v, Ref)


def _array(v: Value) -> np.ndarray:
    return np.atleast_1d(np.asarray(v, np.float64))


def _value(a: np.ndarray) -> Value:
    a = np.asarray(a, np.float64).ravel()
    if a.size == 3 and np.all(a == a[0]):
        a = a[:1]
    return float(a[0]) if a.size == 1 else tuple(float(x) for x in a)


def _width(v: Value) -> int:
    return v.width if isinstance(v, Ref) else _array(v).size


@dataclass
class LayerSpec:
    """One neumat layer: its type, label, parameters and where each came from."""

    type: str
    name: str
    params: dict[str, Value] = field(default_factory=dict)
    sources: dict[str, str] = field(default_factory=dict)


@dataclass
class Translation:
    """One MaterialX material as a neumat material graph (module doc)."""

    file: Path
    material: str
    shader: str  # "open_pbr_surface 'SR_oak'"
    resolution: int
    nodes: dict[str, dict]  # id -> fields, in dependency order
    node_sources: dict[str, str]
    layers: list[LayerSpec]
    files: list[Path]  # the document, documents it includes, images
    warnings: list[str]

    def document(self) -> dict:
        """The material as the table structure a TOML material file parses into."""
        return {"material": {"name": self.material, "description": self.description, "resolution": self.resolution},
                "nodes": {nid: dict(fields) for nid, fields in self.nodes.items()},
                "layers": [{"type": layer.type, "name": layer.name, **{p: _toml_value(v) for p, v in layer.params.items()}}
                           for layer in self.layers]}

    @property
    def description(self) -> str:
        return f"{self.shader} from {self.file.name}"

    def source_hash_bytes(self) -> bytes:
        """What the source hash covers besides the image files graph.py hashes: the material's name
        and every MaterialX document read (the file and its includes)."""
        h = hashlib.sha256(self.material.encode())
        for path in self.files:
            if path.suffix.lower() == ".mtlx":
                h.update(path.name.encode() + b"\0" + path.read_bytes())
        return h.digest()


def _round(x: float) -> float:
    return float(f"{x:.6g}")


def _toml_value(v):
    """A value as the TOML table holds it: node ids as strings, numbers to 6 significant digits
    (so that a written TOML file and the document loaded directly give the same parameters)."""
    if isinstance(v, Ref):
        return v.id
    if isinstance(v, float):
        return _round(v)
    if isinstance(v, (tuple, list)):
        return [_toml_value(x) for x in v]
    return v


# ---------------------------------------------------------------------------------------------
# Reading the document.

_library = None


def _materialx():
    """The MaterialX module, or a NeumatError saying how to install it."""
    try:
        import MaterialX
    except ImportError:
        raise NeumatError("reading .mtlx files needs the materialx package (pip install 'materialx>=1.39,<1.40', "
                          "or rerun tools/install.sh)") from None
    return MaterialX


def _standard_library():
    """MaterialX's bundled node definitions (stdlib, pbrlib, bxdf), loaded once."""
    global _library
    mx = _materialx()
    if _library is None:
        _library = mx.createDocument()
        mx.loadLibraries(mx.getDefaultDataLibraryFolders(), mx.getDefaultDataSearchPath(), _library)
    return _library


def _read_document(path: Path):
    mx = _materialx()
    if not path.is_file():
        raise NeumatError(f"{path}: no such MaterialX file")
    doc = mx.createDocument()
    try:
        mx.readFromXmlFile(doc, str(path.resolve()))  # absolute: so are the source URIs it records
    except Exception as e:  # ExceptionParseError, ExceptionFileMissing (an include), ...
        raise NeumatError(f"{path.name}: cannot read the MaterialX document: {e}") from None
    doc.setDataLibrary(_standard_library())
    return doc


def _parse(type_name: str, text: str, where: str):
    """A MaterialX value string as a Python value: float, tuple of floats, int, bool or str."""
    try:
        if type_name == "float":
            return float(text)
        if type_name == "integer":
            return int(text)
        if type_name == "boolean":
            return text.strip().lower() == "true"
        if type_name in ("color3", "vector3", "vector2", "color4", "vector4"):
            return tuple(float(x) for x in text.split(","))
    except ValueError:
        raise NeumatError(f"{where}: cannot read {text!r} as a {type_name}") from None
    return text


class _Reader:
    """Turns the shader's inputs and their upstream node graphs into neumat values and nodes."""

    def __init__(self, path: Path, report: Callable[[str, str], None]):
        self.path = path
        self.report = report  # (element path, message): a dropped or approximated input
        self.nodes: dict[str, dict] = {}
        self.node_sources: dict[str, str] = {}
        self.images: list[Path] = []
        self.image_sizes: list[int] = []
        self._done: dict[str, Value] = {}
        self._active: list[str] = []

    def error(self, element, message: str) -> NeumatError:
        return NeumatError(f"{self.path.name}: {element.getNamePath()}: {message}")

    # -- building neumat nodes, with constants folded --------------------------------------------

    def add(self, hint: str, fields: dict, width: int, source: str) -> Ref:
        base = "".join(c if c.isalnum() or c in "_-" else "_" for c in hint) or "node"
        nid, n = base, 2
        while nid in self.nodes:
            nid, n = f"{base}_{n}", n + 1
        self.nodes[nid] = {k: _toml_value(v) for k, v in fields.items()}
        self.node_sources[nid] = source
        return Ref(nid, width)

    def binary(self, op: str, a: Value, b: Value, hint: str, source: str) -> Value:
        if _const(a) and _const(b):
            fn = {"multiply": np.multiply, "add": np.add, "subtract": np.subtract, "max": np.maximum,
                  "min": np.minimum}[op]
            return _value(fn(_array(a), _array(b)))
        if op == "multiply" and (a == 1.0 or b == 1.0):
            return b if a == 1.0 else a
        if op in ("add", "subtract") and b == 0.0:
            return a
        return self.add(hint, {"type": op, "a": a, "b": b}, max(_width(a), _width(b)), source)

    def mix(self, a: Value, b: Value, t: Value, hint: str, source: str) -> Value:
        """a + (b - a) t."""
        if _const(t) and _array(t).size == 1 and float(_array(t)[0]) in (0.0, 1.0):
            return b if float(_array(t)[0]) == 1.0 else a
        if _const(a) and _const(b) and _const(t):
            return _value(_array(a) + (_array(b) - _array(a)) * _array(t))
        return self.add(hint, {"type": "mix", "a": a, "b": b, "factor": t}, max(map(_width, (a, b, t))), source)

    def curve(self, x: Value, fn: Callable[[np.ndarray], np.ndarray], domain: tuple[float, float], hint: str,
              source: str, exponent: float | None = None) -> Value:
        """fn(x) per channel: exact for a constant; for a node a remap over `domain` (inputs outside it
        are clamped to it), a power curve when `exponent` says fn(x) = x^exponent on [0, 1]."""
        if _const(x):
            return _value(fn(_array(x)))
        if exponent is not None:
            return self.add(hint, {"type": "remap", "input": x, "curve": "power", "exponent": exponent}, x.width, source)
        lo, hi = domain
        s = np.linspace(0.0, 1.0, CURVE_POINTS) ** 2  # denser near lo, where the curves here bend most
        ys = fn(lo + (hi - lo) * s)
        points = [[round(float(a), 6), round(float(b), 6)] for a, b in zip(s, ys)]
        return self.add(hint, {"type": "remap", "input": x, "from": [lo, hi], "curve": "points", "points": points},
                        x.width, source)

    # -- reading MaterialX ports -------------------------------------------------------------------

    def port(self, node, name: str) -> Value | None:
        """The value of input `name` of a MaterialX node: a constant, a neumat node for a connected
        input, or the node definition's default (None for a geometric default such as Nworld)."""
        inp = node.getInput(name)
        if inp is not None and inp.getInterfaceName():
            interface = inp.getInterfaceInput()
            if interface is None:
                raise self.error(inp, f"names interface input '{inp.getInterfaceName()}', which its node graph lacks")
            inp = interface
        if inp is not None:
            upstream = inp.getConnectedNode()
            if upstream is not None:
                return self.node(upstream, inp)
            if inp.getNodeName() or inp.getNodeGraphString() or inp.getOutputString():
                raise self.error(inp, "is connected to an element the document does not hold")
            if inp.getValueString():
                return self.constant(inp.getType(), inp.getValueString(), inp)
        nodedef = node.getNodeDef()
        decl = nodedef.getActiveInput(name) if nodedef is not None else None
        if decl is None or not decl.getValueString():
            return None
        return self.constant(decl.getType(), decl.getValueString(), decl)

    def constant(self, type_name: str, text: str, element) -> Value:
        v = _parse(type_name, text, f"{self.path.name}: {element.getNamePath()}")
        if isinstance(v, bool):
            return float(v)
        if isinstance(v, (int, float)):
            return float(v)
        if isinstance(v, tuple) and len(v) == 3:
            rgb = np.array(v)
            if type_name == "color3":
                space = element.getActiveColorSpace()
                converted = to_rec709(rgb, space)
                if converted is None:
                    self.report(element.getNamePath(), f"colour space '{space}' unknown: the colour is read as "
                                                       "linear Rec.709")
                rgb = rgb if converted is None else converted
            return _value(rgb)
        return v  # strings, vector2 tuples: interpreted by the caller

    def scalar(self, node, name: str) -> float:
        """A constant scalar input (node graph connections are not allowed here)."""
        v = self.port(node, name)
        if isinstance(v, (Ref, str)) or v is None or _array(v).size != 1:
            raise self.error(node, f"input '{name}' must be a constant number here, not {v!r}")
        return float(v)

    def node(self, mx_node, consumer) -> Value:
        """A MaterialX node's output as a neumat value (memoised; cycles are one error)."""
        key = mx_node.getNamePath()
        if key in self._done:
            return self._done[key]
        if key in self._active:
            cycle = " -> ".join(self._active[self._active.index(key):] + [key])
            raise self.error(consumer, f"cycle in the node graph: {cycle}")
        self._active.append(key)
        category = mx_node.getCategory()
        handler = _NODE_HANDLERS.get(category)
        if handler is None:
            raise self.error(mx_node, f"unsupported node '{mx_node.getName()}' of type '{category}' "
                                      f"(supported: {', '.join(sorted(_NODE_HANDLERS))})")
        value = handler(self, mx_node)
        self._active.pop()
        self._done[key] = value
        return value

    def width_of(self, mx_node) -> int:
        t = mx_node.getType()
        if t == "float":
            return 1
        if t in ("color3", "vector3"):
            return 3
        raise self.error(mx_node, f"unsupported output type '{t}' of a '{mx_node.getCategory()}' node "
                                  "(neumat nodes give float, color3 or vector3)")

    # -- texture coordinates ---------------------------------------------------------------------

    def tiling(self, mx_node, name: str) -> tuple[float, float]:
        """How many times the texture coordinates feeding input `name` repeat across uv: a texcoord
        node, scaled by multiply or place2d; the default (no connection) is 1."""
        inp = mx_node.getInput(name)
        if inp is not None and inp.getInterfaceName():
            inp = inp.getInterfaceInput()
        upstream = inp.getConnectedNode() if inp is not None else None
        if upstream is None:
            if name == "position":
                self.report(mx_node.getNamePath(), "3D noise over object-space position: neumat's noise lives "
                                                   "in uv, one noise cell per uv unit")
            return (1.0, 1.0)
        category = upstream.getCategory()
        if category in ("texcoord", "position"):
            if category == "position":
                self.report(upstream.getNamePath(), "object-space position taken as uv")
            return (1.0, 1.0)
        if category == "convert":
            return self.tiling(upstream, "in")
        if category == "multiply":
            for coords, factor in (("in1", "in2"), ("in2", "in1")):
                f = self.port(upstream, factor)
                c = upstream.getInput(coords)
                if not isinstance(f, Ref) and c is not None and c.getConnectedNode() is not None:
                    f = _array(f) if not isinstance(f, str) else None
                    if f is not None:
                        base = self.tiling(upstream, coords)
                        return (base[0] * f[0], base[1] * f[min(1, f.size - 1)])
        if category == "place2d":
            scale = self.port(upstream, "scale")
            for extra, neutral in (("offset", (0.0, 0.0)), ("rotate", 0.0)):
                v = self.port(upstream, extra)
                if v is not None and tuple(np.atleast_1d(v)) != tuple(np.atleast_1d(neutral)):
                    self.report(upstream.getNamePath(), f"place2d {extra} dropped (neumat textures are not offset "
                                                        "or rotated)")
            base = self.tiling(upstream, "texcoord")
            s = np.atleast_1d(np.asarray(scale if scale is not None else (1.0, 1.0), np.float64))
            if np.any(s == 0):
                raise self.error(upstream, "scale must not be 0")
            return (base[0] / s[0], base[1] / s[min(1, s.size - 1)])
        raise self.error(upstream, f"unsupported texture coordinates: node '{upstream.getName()}' of type "
                                   f"'{category}' (supported: texcoord, scaled by multiply or place2d)")

    def repeat(self, element, tiling: tuple[float, float]) -> list[int]:
        """Integer repeats (neumat textures tile with period 1 in uv)."""
        out = []
        for t in tiling:
            r = max(1, round(abs(t)))
            if abs(abs(t) - r) > 1e-6:
                self.report(element.getNamePath(), f"tiling {t:g} rounded to {r} (neumat textures repeat a whole "
                                                   "number of times across uv)")
            out.append(r)
        return out


# ---------------------------------------------------------------------------------------------
# Node graph nodes: each handler returns the node's output as a neumat value.

def _image(r: _Reader, n) -> Value:
    width = r.width_of(n)
    file_input = n.getInput("file")
    if file_input is None or not file_input.getValueString():
        raise r.error(n, "an image node needs a file")
    path = (r.path.parent / file_input.getResolvedValueString()).resolve()
    if path.suffix.lower() not in IMAGE_SUFFIXES:
        raise r.error(file_input, f"unsupported image type '{path.suffix}' (neumat reads PNG, EXR and JPEG)")
    if not path.is_file():
        raise r.error(file_input, f"image file not found: {path}")
    space = file_input.getActiveColorSpace()
    srgb = space in SRGB_SPACES
    if space not in LINEAR_SPACES and not srgb:
        r.report(file_input.getNamePath(), f"colorspace '{space}' read as linear (neumat decodes srgb_texture "
                                           "and reads linear spaces as stored)")
    if srgb and n.getType() != "color3":
        srgb = False  # MaterialX colour-manages colour outputs only
    tiling = r.tiling(n, "texcoord")
    if n.getCategory() == "tiledimage":
        uvtiling = r.port(n, "uvtiling")
        t = _array(uvtiling) if uvtiling is not None else np.ones(2)
        tiling = (tiling[0] * t[0], tiling[1] * t[min(1, t.size - 1)])
        offset = r.port(n, "uvoffset")
        if offset is not None and np.any(_array(offset) != 0):
            r.report(n.getNamePath(), "uvoffset dropped (neumat textures are not offset)")
    if n.getCategory() in ("gltf_image", "gltf_normalmap"):  # glTF's texture transform
        scale = r.port(n, "scale")
        t = _array(scale) if scale is not None else np.ones(2)
        tiling = (tiling[0] * t[0], tiling[1] * t[min(1, t.size - 1)])
        for extra in ("offset", "rotate"):
            v = r.port(n, extra)
            if v is not None and np.any(_array(v) != 0):
                r.report(n.getNamePath(), f"{extra} dropped (neumat textures are not offset or rotated)")
    for mode in ("uaddressmode", "vaddressmode"):
        v = r.port(n, mode)
        if isinstance(v, str) and v not in ("periodic", ""):
            r.report(n.getNamePath(), f"{mode} '{v}' read as periodic (neumat textures repeat)")
    fields = {"type": "image", "file": str(path)}
    if srgb:
        fields["color"] = True
    if width == 1:
        fields["channel"] = "r"
    repeat = r.repeat(n, tiling)
    if repeat != [1, 1]:
        fields["repeat"] = repeat[0] if repeat[0] == repeat[1] else repeat
    r.images.append(path)
    try:
        from PIL import Image
        with Image.open(path) as im:
            r.image_sizes.append(max(im.size))
    except Exception:
        pass  # EXR or unreadable: graph.py reads it and reports problems
    image = r.add(n.getName(), fields, width, n.getNamePath())
    if n.getCategory() == "gltf_image":
        return r.binary("multiply", image, r.port(n, "factor"), f"{n.getName()}_factor", n.getNamePath())
    if n.getCategory() == "gltf_normalmap":
        return r.add(f"{n.getName()}_normal", {"type": "normal_map", "input": image, "flip_y": True}, 3,
                     n.getNamePath())
    return image


def _constant(r: _Reader, n) -> Value:
    v = r.port(n, "value")
    if v is None or isinstance(v, str) or (isinstance(v, tuple) and len(v) not in (1, 3)):
        raise r.error(n, f"unsupported constant of type '{n.getType()}'")
    return v


def _mix(r: _Reader, n) -> Value:
    fg, bg, t = (r.port(n, k) for k in ("fg", "bg", "mix"))
    return r.mix(bg, fg, t, n.getName(), n.getNamePath())


def _arithmetic(op: str):
    def handler(r: _Reader, n) -> Value:
        a, b = r.port(n, "in1"), r.port(n, "in2")
        if op == "divide":
            if isinstance(b, Ref) or np.any(_array(b) == 0):
                raise r.error(n, "divide is supported by a non-zero constant only")
            return r.binary("multiply", a, _value(1.0 / _array(b)), n.getName(), n.getNamePath())
        return r.binary(op, a, b, n.getName(), n.getNamePath())
    return handler


def _affine(r: _Reader, n, x: Value, scale: float, offset: float) -> Value:
    """x * scale + offset, as at most two nodes."""
    y = r.binary("multiply", x, scale, f"{n.getName()}_scale", n.getNamePath())
    return r.binary("add", y, offset, n.getName(), n.getNamePath())


def _clamp(r: _Reader, n) -> Value:
    x, lo, hi = r.port(n, "in"), r.port(n, "low"), r.port(n, "high")
    if isinstance(lo, Ref) or isinstance(hi, Ref):
        raise r.error(n, "clamp bounds must be constants")
    if _const(x):
        return _value(np.clip(_array(x), _array(lo), _array(hi)))
    if _array(lo).size == 1 and _array(hi).size == 1 and float(lo) < float(hi):
        return r.add(n.getName(), {"type": "remap", "input": x, "from": [lo, hi], "to": [lo, hi]}, x.width,
                     n.getNamePath())
    return r.binary("min", r.binary("max", x, lo, f"{n.getName()}_low", n.getNamePath()), hi, n.getName(),
                    n.getNamePath())


def _scalars(r: _Reader, n, *names: str) -> list[float]:
    out = []
    for name in names:
        v = r.port(n, name)
        if isinstance(v, Ref) or isinstance(v, str) or (v is not None and _array(v).size != 1):
            raise r.error(n, f"input '{name}' must be a scalar constant for neumat")
        out.append(float(v))
    return out


def _remap(r: _Reader, n) -> Value:
    il, ih, ol, oh = _scalars(r, n, "inlow", "inhigh", "outlow", "outhigh")
    if il == ih:
        raise r.error(n, "inlow and inhigh must differ")
    k = (oh - ol) / (ih - il)
    return _affine(r, n, r.port(n, "in"), k, ol - il * k)


def _range(r: _Reader, n) -> Value:
    il, ih, gamma, ol, oh = _scalars(r, n, "inlow", "inhigh", "gamma", "outlow", "outhigh")
    clamp = r.port(n, "doclamp") == 1.0
    x = r.port(n, "in")
    if il == ih or gamma <= 0:
        raise r.error(n, "inlow and inhigh must differ and gamma must be > 0")
    if not clamp and gamma == 1:
        k = (oh - ol) / (ih - il)
        return _affine(r, n, x, k, ol - il * k)
    if not clamp:
        r.report(n.getNamePath(), "range with gamma: clamped to [inlow, inhigh] (neumat's power curve)")
    if ol == oh:
        return ol
    if _const(x):
        t = np.clip((_array(x) - il) / (ih - il), 0, 1) ** (1 / gamma)
        return _value(ol + (oh - ol) * t)
    fields = {"type": "remap", "input": x, "from": [il, ih], "to": [ol, oh]}
    if gamma != 1:
        fields.update(curve="power", exponent=1 / gamma)
    return r.add(n.getName(), fields, x.width, n.getNamePath())


def _invert(r: _Reader, n) -> Value:
    return r.binary("subtract", r.port(n, "amount"), r.port(n, "in"), n.getName(), n.getNamePath())


def _normalmap(r: _Reader, n) -> Value:
    x = r.port(n, "in")
    scale = r.port(n, "scale")
    s = _array(scale if scale is not None else 1.0)
    if isinstance(scale, Ref) or np.any(s != s[0]) or not 0 <= s[0] <= 10:
        raise r.error(n, "normalmap scale must be one constant in [0, 10]")
    if not isinstance(x, Ref):
        return (0.0, 0.0, 1.0)
    fields = {"type": "normal_map", "input": x, "flip_y": True}
    if s[0] != 1:
        fields["strength"] = float(s[0])
    return r.add(n.getName(), fields, 3, n.getNamePath())


def _noise_scale(r: _Reader, n) -> list[int]:
    coords = "texcoord" if n.getInput("texcoord") is not None or n.getCategory().endswith("2d") else "position"
    return r.repeat(n, r.tiling(n, coords))


def _tiling_noise_note(r: _Reader, n) -> None:
    r.report(n.getNamePath(), f"{n.getCategory()}: neumat's noise tiles over uv, a different pattern with the same "
                              "cell size and range")


def _noise(r: _Reader, n) -> Value:
    """noise2d/noise3d: amplitude * perlin + pivot, perlin in [-1, 1] -> one fbm octave."""
    amplitude, pivot = r.port(n, "amplitude"), r.port(n, "pivot")
    if isinstance(amplitude, Ref) or isinstance(pivot, Ref):
        raise r.error(n, "noise amplitude and pivot must be constants")
    _tiling_noise_note(r, n)
    scale = _noise_scale(r, n)
    noise = r.add(n.getName(), {"type": "fbm", "scale": scale, "octaves": 1}, 1, n.getNamePath())
    a, p = _array(amplitude), _array(pivot)
    return r.binary("add", r.binary("multiply", noise, _value(2 * a), f"{n.getName()}_amplitude", n.getNamePath()),
                    _value(p - a), f"{n.getName()}_pivot", n.getNamePath())


def _fractal(r: _Reader, n) -> Value:
    """fractal2d/fractal3d: the unnormalised octave sum amplitude * sum(diminish^o perlin_o)."""
    amplitude = r.port(n, "amplitude")
    octaves, lacunarity, diminish = _scalars(r, n, "octaves", "lacunarity", "diminish")
    if isinstance(amplitude, Ref):
        raise r.error(n, "fractal amplitude must be a constant")
    _tiling_noise_note(r, n)
    octaves = int(min(max(octaves, 1), 12))
    fields = {"type": "fbm", "scale": _noise_scale(r, n), "octaves": octaves, "lacunarity": lacunarity,
              "gain": diminish}
    noise = r.add(n.getName(), fields, 1, n.getNamePath())
    norm = sum(diminish ** o for o in range(octaves))
    a = _array(amplitude) * norm
    return r.binary("add", r.binary("multiply", noise, _value(2 * a), f"{n.getName()}_amplitude", n.getNamePath()),
                    _value(-a), f"{n.getName()}_centre", n.getNamePath())


def _cellnoise(r: _Reader, n) -> Value:
    _tiling_noise_note(r, n)
    return r.add(n.getName(), {"type": "worley", "scale": _noise_scale(r, n), "jitter": 0.0, "output": "cell"}, 1,
                 n.getNamePath())


def _worleynoise(r: _Reader, n) -> Value:
    _tiling_noise_note(r, n)
    (jitter,) = _scalars(r, n, "jitter")
    if r.width_of(n) != 1:
        raise r.error(n, "worley noise of type float only")
    return r.add(n.getName(), {"type": "worley", "scale": _noise_scale(r, n), "jitter": min(max(jitter, 0.0), 1.0),
                               "output": "f1"}, 1, n.getNamePath())


def _passthrough(r: _Reader, n) -> Value:
    x = r.port(n, "in")
    if n.getCategory() == "convert" and _width(x) == 3 and n.getType() == "float":
        raise r.error(n, "convert from a colour or vector to float is not supported")
    return x


def _extract(r: _Reader, n) -> Value:
    (index,) = _scalars(r, n, "index")
    x = r.port(n, "in")
    if _const(x):
        return float(_array(x)[min(int(index), _array(x).size - 1)])
    fields = r.nodes[x.id]
    if fields["type"] != "image" or "channel" in fields or not 0 <= index <= 3:
        raise r.error(n, "extract is supported on image nodes only (it picks the image's channel)")
    return r.add(n.getName(), {**fields, "channel": "rgba"[int(index)]}, 1, n.getNamePath())


_GEOMETRIC_DEFAULTS = {"Nworld": (0.0, 0.0, 1.0), "Nobject": (0.0, 0.0, 1.0), "Tworld": (1.0, 0.0, 0.0),
                       "Tobject": (1.0, 0.0, 0.0), "Bworld": (0.0, 1.0, 0.0), "Bobject": (0.0, 1.0, 0.0)}


def _geometric(r: _Reader, n) -> Value:
    """normal, tangent, bitangent: the surface's own frame, in tangent space a constant axis (so that
    a shader input fed by them is at its default)."""
    return {"normal": (0.0, 0.0, 1.0), "tangent": (1.0, 0.0, 0.0), "bitangent": (0.0, 1.0, 0.0)}[n.getCategory()]


_NODE_HANDLERS: dict[str, Callable] = {
    "normal": _geometric, "tangent": _geometric, "bitangent": _geometric,
    "image": _image, "tiledimage": _image, "gltf_image": _image, "gltf_normalmap": _image,
    "constant": _constant, "mix": _mix,
    "multiply": _arithmetic("multiply"), "add": _arithmetic("add"), "subtract": _arithmetic("subtract"),
    "divide": _arithmetic("divide"), "max": _arithmetic("max"), "min": _arithmetic("min"),
    "clamp": _clamp, "remap": _remap, "range": _range, "invert": _invert, "normalmap": _normalmap,
    "noise2d": _noise, "noise3d": _noise, "fractal2d": _fractal, "fractal3d": _fractal,
    "cellnoise2d": _cellnoise, "cellnoise3d": _cellnoise, "worleynoise2d": _worleynoise,
    "worleynoise3d": _worleynoise, "convert": _passthrough, "dot": _passthrough, "extract": _extract,
}


# ---------------------------------------------------------------------------------------------
# Shading models.

def _alpha(x: np.ndarray) -> np.ndarray:
    return np.clip(x, 0, 1) ** 2


def _f0_of_ior(ior: np.ndarray) -> np.ndarray:
    return ((ior - 1) / (ior + 1)) ** 2


def _ior_of_f0(f0: np.ndarray) -> np.ndarray:
    s = np.sqrt(np.clip(f0, 0.0, 0.99999))
    return (1 + s) / (1 - s)


def _coat_absorption(color: np.ndarray) -> np.ndarray:
    """A coat colour is the square of its transmittance at normal incidence (OpenPBR): the base
    seen through it is tinted by the colour. With neumat's thickness 1, absorption = -ln(c) / 2."""
    return 0.0 - 0.5 * np.log(np.clip(color, MIN_COAT_COLOR, 1.0))  # 0.0 - : no -0.0 for a white coat


class _Shader:
    """Reads one shader node's inputs (with their source paths) and checks dropped ones."""

    def __init__(self, reader: _Reader, node):
        self.r = reader
        self.node = node
        self.nodedef = node.getNodeDef()

    def source(self, name: str) -> str:
        inp = self.node.getInput(name)
        path = f"{self.node.getName()}.{name}"
        if inp is not None and inp.getConnectedNode() is not None:
            path += f" <- {inp.getConnectedNode().getNamePath()}"
        return path

    def __getitem__(self, name: str) -> Value | None:
        v = self.r.port(self.node, name)
        if isinstance(v, str):
            raise self.r.error(self.node, f"input '{name}' has the unexpected value {v!r}")
        if isinstance(v, Ref) and self.nodedef.getActiveInput(name).getType() == "float" and v.width != 1:
            raise self.r.error(self.node, f"input '{name}' is a float, but its node graph gives a colour")
        return v

    def is_default(self, name: str) -> bool:
        inp = self.node.getInput(name)
        if inp is None or (not inp.getValueString() and inp.getConnectedNode() is None and not inp.getInterfaceName()):
            return True
        v = self[name]
        decl = self.nodedef.getActiveInput(name)
        d = _GEOMETRIC_DEFAULTS.get(decl.getDefaultGeomPropString())
        if isinstance(v, Ref) or (d is None and not decl.getValueString()):
            return False
        if d is None:
            d = self.r.constant(decl.getType(), decl.getValueString(), decl)
        return np.allclose(_array(v), _array(d))

    def is_zero(self, name: str) -> bool:
        v = self[name]
        return v is not None and _const(v) and not np.any(_array(v))

    def is_one(self, name: str) -> bool:
        v = self[name]
        return v is not None and _const(v) and np.all(_array(v) == 1)

    def report_dropped(self) -> None:
        """Reports each input of DROPPED that is not at its default, unless its feature is off."""
        for name, why, unless in DROPPED[self.node.getCategory()]:
            if unless is not None and self.is_zero(unless):
                continue
            if self.nodedef.getActiveInput(name) is not None and not self.is_default(name):
                self.r.report(f"{self.node.getNamePath()}.{name}", why)

    def normal(self, name: str) -> Value | None:
        v = self[name]
        if v is not None and _const(v):
            return None if np.allclose(_array(v), (0, 0, 1)) else v
        return v


# Inputs each model has that neumat drops or approximates without a layer parameter of its own:
# (input, why, the input whose 0 switches the feature off, so that a dropped input says nothing).
_LAMBERTIAN = "the diffuse base is Lambertian"
_TANGENTS = "tangents come from the mesh's uvs"
DROPPED = {
    "open_pbr_surface": (
        ("base_diffuse_roughness", _LAMBERTIAN, None),
        ("transmission_weight", "transmission is not represented", None),
        ("transmission_dispersion_scale", "dispersion is not represented", "transmission_weight"),
        ("subsurface_weight", "subsurface scattering is not represented", None),
        ("thin_film_weight", "thin-film interference is not represented", None),
        ("emission_luminance", "emission is not represented", None),
        ("geometry_opacity", "opacity (cut-outs) is not represented", None),
        ("geometry_thin_walled", "thin-walled geometry is not represented", None),
        ("geometry_tangent", _TANGENTS, None),
        ("geometry_coat_tangent", _TANGENTS, "coat_weight"),
        ("coat_roughness_anisotropy", "the coat stays isotropic", "coat_weight"),
        ("coat_darkening", "the coat's darkening comes from the random walk (physical, as at 1)", "coat_weight"),
    ),
    "standard_surface": (
        ("diffuse_roughness", _LAMBERTIAN, None),
        ("transmission", "transmission is not represented", None),
        ("transmission_dispersion", "dispersion is not represented", "transmission"),
        ("subsurface", "subsurface scattering is not represented", None),
        ("thin_film_thickness", "thin-film interference is not represented", None),
        ("emission", "emission is not represented", None),
        ("opacity", "opacity (cut-outs) is not represented", None),
        ("thin_walled", "thin-walled geometry is not represented", None),
        ("tangent", _TANGENTS, None),
        ("coat_anisotropy", "the coat stays isotropic", "coat"),
    ),
    "gltf_pbr": (
        ("anisotropy_strength", "anisotropy is not represented for glTF materials", None),
        ("occlusion", "baked ambient occlusion is dropped (the path tracer computes occlusion)", None),
        ("transmission", "transmission is not represented", None),
        ("thickness", "volume attenuation is not represented", None),
        ("dispersion", "dispersion is not represented", None),
        ("iridescence", "thin-film interference (iridescence) is not represented", None),
        ("emissive", "emission is not represented", None),
        ("alpha", "opacity (cut-outs) is not represented", None),
        ("tangent", _TANGENTS, None),
    ),
}


def _open_pbr(s: _Shader) -> list[LayerSpec]:
    r = s.r
    src = s.source
    layers = []
    normal = s.normal("geometry_normal")
    metalness = s["base_metalness"]
    metal_only = s.is_one("base_metalness")
    coat_w = s["coat_weight"]
    base = r.binary("multiply", s["base_weight"], s["base_color"], "base_albedo", src("base_color"))
    roughness = s["specular_roughness"]
    anisotropy = s["specular_roughness_anisotropy"]
    if not metal_only:
        layers.append(LayerSpec("diffuse", "base", {"albedo": base},
                                {"albedo": f"{src('base_weight')} * {src('base_color')}"}))
        # The base interface's IOR is relative to the coat where there is one (OpenPBR's TIR fix:
        # the larger of the two ratios), blended by coat presence like MaterialX's graph; the specular
        # weight then scales its F0 (OpenPBR's modulated IOR).
        spec_ior, coat_ior = r.scalar(s.node, "specular_ior"), r.scalar(s.node, "coat_ior")
        ratio = max(spec_ior / coat_ior, coat_ior / spec_ior) if coat_ior > 0 and spec_ior > 0 else 1.0
        spec_ior = max(spec_ior, 1 / spec_ior) if spec_ior > 0 else 1.0
        weight = s["specular_weight"]
        ior: Value
        if _const(weight):
            f0w = float(weight)
            ior = r.curve(coat_w, lambda c: _ior_of_f0(f0w * _f0_of_ior(spec_ior + (ratio - spec_ior) * c)),
                          (0.0, 1.0), "specular_ior", src("coat_weight"))
        elif _const(coat_w):
            eta = spec_ior + (ratio - spec_ior) * float(coat_w)
            ior = r.curve(weight, lambda w: _ior_of_f0(w * _f0_of_ior(eta)), (0.0, 1.0), "specular_ior",
                          src("specular_weight"))
        else:
            r.report(f"{s.node.getNamePath()}.specular_weight", "textured together with coat_weight: the "
                     "IOR follows the specular weight as if uncoated where the coat is partial")
            ior = r.curve(weight, lambda w: _ior_of_f0(w * _f0_of_ior(spec_ior)), (0.0, 1.0), "specular_ior",
                          src("specular_weight"))
        alpha = r.curve(roughness, _alpha, (0, 1), "specular_alpha", src("specular_roughness"), exponent=2)
        spec = LayerSpec("dielectric", "specular", {"ior": ior, "alpha": alpha},
                         {"ior": f"{src('specular_ior')}, F0 scaled by {src('specular_weight')}"
                                 + ("" if s.is_zero("coat_weight") else f", relative to {src('coat_ior')} under the coat"),
                          "alpha": f"{src('specular_roughness')} squared"})
        if not (_const(ior) and float(ior) <= 1.0):
            layers.append(spec)
        if not s.is_one("specular_color"):
            r.report(f"{s.node.getNamePath()}.specular_color", "tints only the metal's edge (edge_tint); the "
                     "dielectric specular stays untinted")
        if not s.is_zero("specular_roughness_anisotropy"):
            r.report(f"{s.node.getNamePath()}.specular_roughness_anisotropy", "anisotropy applies to the metal "
                     "only; the dielectric specular stays isotropic")
    if not s.is_zero("base_metalness"):
        f0 = r.binary("multiply", base, s["specular_weight"], "metal_f0", src("specular_weight"))
        if not s.is_one("specular_weight"):
            r.report(f"{s.node.getNamePath()}.specular_weight", "scales the metal's f0, not its whole Fresnel curve")
        layers.append(_metal(r, {} if metal_only else {"weight": metalness}, f0, s["specular_color"], roughness,
                             anisotropy, _openpbr_aniso, 0.0,
                             {"weight": src("base_metalness"),
                              "f0": f"{src('base_weight')} * {src('base_color')} * {src('specular_weight')}",
                              "edge_tint": f"{src('specular_color')} (F82 tint read as Gulbrandsen's edge tint)",
                              "alpha": f"{src('specular_roughness')} squared, {src('specular_roughness_anisotropy')}"}))
    if not s.is_zero("coat_weight"):
        layers.append(_coat(r, coat_w, r.scalar(s.node, "coat_ior"), s["coat_roughness"], s["coat_color"],
                            s.normal("geometry_coat_normal"),
                            {"weight": src("coat_weight"), "ior": src("coat_ior"),
                             "alpha": f"{src('coat_roughness')} squared", "absorption": f"{src('coat_color')}: "
                             "-ln(colour) / 2 (the colour is the round trip's transmittance at normal incidence)"}))
    if not s.is_zero("fuzz_weight"):
        layers.append(_sheen(s["fuzz_weight"], s["fuzz_color"], s["fuzz_roughness"],
                             {"weight": src("fuzz_weight"), "color": src("fuzz_color"),
                              "alpha": f"{src('fuzz_roughness')} (as the Charlie sheen's alpha)"}))
    _normal_everywhere(layers, normal, src("geometry_normal"), skip="coat")
    return layers


def _openpbr_aniso(a: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """OpenPBR's anisotropy: alpha_t = r^2 sqrt(2 / (1 + (1 - a)^2)), alpha_b = (1 - a) alpha_t."""
    k = np.sqrt(2 / (1 + (1 - np.clip(a, 0, 1)) ** 2))
    return k, (1 - np.clip(a, 0, 1)) * k


def _standard_aniso(a: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Standard Surface's anisotropy: aspect = sqrt(1 - min(a, 0.98)), alpha_x = r^2 / aspect, alpha_y = r^2 aspect."""
    aspect = np.sqrt(1 - np.clip(a, 0, 0.98))
    return 1 / aspect, aspect


def _metal(r: _Reader, weight: dict, f0: Value, edge: Value, roughness: Value, anisotropy: Value,
           aniso: Callable, rotation: Value, sources: dict) -> LayerSpec:
    alpha = r.curve(roughness, _alpha, (0, 1), "metal_alpha", sources["alpha"], exponent=2)
    params = {**weight, "f0": f0, "edge_tint": edge}
    if _const(anisotropy) and not np.any(_array(anisotropy)):
        params["alpha_u"] = params["alpha_v"] = alpha
    else:
        ku = r.curve(anisotropy, lambda a: aniso(a)[0], (0, 1), "metal_aniso_u", sources["alpha"])
        kv = r.curve(anisotropy, lambda a: aniso(a)[1], (0, 1), "metal_aniso_v", sources["alpha"])
        params["alpha_u"] = r.binary("min", r.binary("multiply", alpha, ku, "metal_alpha_u_raw", sources["alpha"]),
                                     1.0, "metal_alpha_u", sources["alpha"])
        params["alpha_v"] = r.binary("min", r.binary("multiply", alpha, kv, "metal_alpha_v_raw", sources["alpha"]),
                                     1.0, "metal_alpha_v", sources["alpha"])
        if not (_const(rotation) and float(rotation) == 0):
            params["rotation"] = rotation
    srcs = {k: v for k, v in sources.items() if k in params or k == "alpha"}
    return LayerSpec("conductor", "metal", params, srcs)


def _coat(r: _Reader, weight: Value, ior: float, roughness: Value, color: Value, normal, sources: dict) -> LayerSpec:
    params = {"weight": weight, "ior": max(ior, 1 / ior) if ior > 0 else 1.0,
              "alpha": r.curve(roughness, _alpha, (0, 1), "coat_alpha", sources["alpha"], exponent=2),
              "thickness": 1.0,
              "absorption": r.curve(color, _coat_absorption, (0, 1), "coat_absorption", sources["absorption"])}
    if _const(weight) and float(weight) == 1:
        del params["weight"]
    if _const(params["absorption"]) and not np.any(_array(params["absorption"])):
        del params["absorption"], params["thickness"]  # a clear coat: its thickness does not matter
    if normal is not None:
        params["normal"] = normal
        sources = {**sources, "normal": "coat normal"}
    return LayerSpec("dielectric", "coat", params, sources)


def _sheen(weight: Value, color: Value, roughness: Value, sources: dict) -> LayerSpec:
    params = {"weight": weight, "color": color, "alpha": roughness}
    if _const(weight) and float(weight) == 1:
        del params["weight"]
    return LayerSpec("sheen", "sheen", params, sources)


def _normal_everywhere(layers: list[LayerSpec], normal, source: str, skip: str) -> None:
    """The shader's normal on every layer but the one named `skip` (the coat has its own)."""
    if normal is None:
        return
    for layer in layers:
        if layer.name != skip:
            layer.params["normal"] = normal
            layer.sources["normal"] = source


def _standard_surface(s: _Shader) -> list[LayerSpec]:
    r = s.r
    src = s.source
    layers = []
    normal = s.normal("normal")
    metal_only = s.is_one("metalness")
    roughness = s["specular_roughness"]
    coat = s["coat"]
    affect = r.binary("multiply", r.binary("multiply", coat, s["coat_affect_roughness"], "coat_affect", ""),
                      s["coat_roughness"], "coat_affect_roughness", src("coat_affect_roughness"))
    roughness = r.mix(roughness, 1.0, affect, "specular_roughness", src("coat_affect_roughness"))
    color = s["base_color"]
    gamma = r.binary("add", r.binary("multiply", coat, s["coat_affect_color"], "coat_gamma_raw", ""), 1.0,
                     "coat_gamma", src("coat_affect_color"))
    if not _const(gamma):
        r.report(f"{s.node.getNamePath()}.coat_affect_color", "dropped under a textured coat (neumat applies it "
                 "for a constant coat only)")
    elif float(gamma) != 1:
        g = float(gamma)
        color = r.curve(color, lambda c: np.clip(c, 0, 1) ** g, (0, 1), "coat_affected_color",
                        src("coat_affect_color"), exponent=g)
    if not metal_only:
        layers.append(LayerSpec("diffuse", "base", {"albedo": r.binary("multiply", s["base"], color, "base_albedo",
                                                                         src("base_color"))},
                                {"albedo": f"{src('base')} * {src('base_color')}"}))
        if not s.is_zero("sheen"):
            layers.append(_sheen(s["sheen"], s["sheen_color"], s["sheen_roughness"],
                                 {"weight": src("sheen"), "color": src("sheen_color"), "alpha": src("sheen_roughness")}))
        if not s.is_zero("specular"):
            spec = {"weight": s["specular"], "ior": max(r.scalar(s.node, "specular_IOR"), 1.0),
                    "alpha": r.curve(roughness, _alpha, (0, 1), "specular_alpha", src("specular_roughness"),
                                     exponent=2)}
            if s.is_one("specular"):
                del spec["weight"]
            layers.append(LayerSpec("dielectric", "specular", spec,
                                    {"weight": src("specular"), "ior": src("specular_IOR"),
                                     "alpha": f"{src('specular_roughness')} squared"}))
        if not s.is_one("specular_color"):
            r.report(f"{s.node.getNamePath()}.specular_color", "tints only the metal's edge (edge_tint); the "
                     "dielectric specular stays untinted")
        if not s.is_zero("specular_anisotropy"):
            r.report(f"{s.node.getNamePath()}.specular_anisotropy", "anisotropy applies to the metal only; the "
                     "dielectric specular stays isotropic")
    if not s.is_zero("metalness"):
        f0 = r.binary("multiply", s["base"], s["base_color"], "metal_f0", src("base_color"))
        edge = r.binary("multiply", s["specular"], s["specular_color"], "metal_edge_tint", src("specular_color"))
        rotation = r.binary("multiply", s["specular_rotation"], 360.0, "metal_rotation", src("specular_rotation"))
        layers.append(_metal(r, {} if metal_only else {"weight": s["metalness"]}, f0, edge, roughness,
                             s["specular_anisotropy"], _standard_aniso, rotation,
                             {"weight": src("metalness"), "f0": f"{src('base')} * {src('base_color')}",
                              "edge_tint": f"{src('specular')} * {src('specular_color')}",
                              "alpha": f"{src('specular_roughness')} squared, {src('specular_anisotropy')}",
                              "rotation": f"{src('specular_rotation')} * 360 degrees"}))
    if not s.is_zero("coat"):
        layers.append(_coat(r, coat, r.scalar(s.node, "coat_IOR"), s["coat_roughness"], s["coat_color"],
                            s.normal("coat_normal"),
                            {"weight": src("coat"), "ior": src("coat_IOR"), "alpha": f"{src('coat_roughness')} squared",
                             "absorption": f"{src('coat_color')}: -ln(colour) / 2"}))
    _normal_everywhere(layers, normal, src("normal"), skip="coat")
    return layers


def _gltf_pbr(s: _Shader) -> list[LayerSpec]:
    r = s.r
    src = s.source
    layers = []
    normal = s.normal("normal")
    metal_only = s.is_one("metallic")
    roughness = s["roughness"]
    color = s["base_color"]
    if not metal_only:
        layers.append(LayerSpec("diffuse", "base", {"albedo": color}, {"albedo": src("base_color")}))
        if not s.is_zero("specular"):
            spec = {"weight": s["specular"], "ior": max(r.scalar(s.node, "ior"), 1.0),
                    "alpha": r.curve(roughness, _alpha, (0, 1), "specular_alpha", src("roughness"), exponent=2)}
            if s.is_one("specular"):
                del spec["weight"]
            layers.append(LayerSpec("dielectric", "specular", spec,
                                    {"weight": src("specular"), "ior": src("ior"), "alpha": f"{src('roughness')} squared"}))
        if not s.is_one("specular_color"):
            r.report(f"{s.node.getNamePath()}.specular_color", "the dielectric specular stays untinted")
    if not s.is_zero("metallic"):
        layer = _metal(r, {} if metal_only else {"weight": s["metallic"]}, color, (1.0, 1.0, 1.0), roughness, 0.0,
                       _standard_aniso, 0.0,
                       {"weight": src("metallic"), "f0": src("base_color"),
                        "edge_tint": "white (glTF's Schlick Fresnel)", "alpha": f"{src('roughness')} squared"})
        layers.append(layer)
    if not s.is_zero("sheen_color"):
        layers.append(_sheen(1.0, s["sheen_color"], s["sheen_roughness"],
                             {"color": src("sheen_color"), "alpha": src("sheen_roughness")}))
    if not s.is_zero("clearcoat"):
        layers.append(_coat(r, s["clearcoat"], 1.5, s["clearcoat_roughness"], 1.0, s.normal("clearcoat_normal"),
                            {"weight": src("clearcoat"), "ior": "1.5 (glTF)",
                             "alpha": f"{src('clearcoat_roughness')} squared", "absorption": "clear"}))
    _normal_everywhere(layers, normal, src("normal"), skip="coat")
    return layers


_MODELS = {"open_pbr_surface": _open_pbr, "standard_surface": _standard_surface, "gltf_pbr": _gltf_pbr}


# ---------------------------------------------------------------------------------------------
# Entry points.

def split_reference(ref: str | Path) -> tuple[Path, str | None]:
    """'wood.mtlx#Oak' -> (Path('wood.mtlx'), 'Oak'); anything else -> (path, None)."""
    text = str(ref)
    if "#" in text:
        file, name = text.rsplit("#", 1)
        if file.lower().endswith(".mtlx"):
            return Path(file), name or None
    return Path(text), None


def _materials(doc) -> list:
    return [m for m in doc.getMaterialNodes() if m.getCategory() == "surfacematerial"]


def _pick_material(doc, path: Path, name: str | None):
    materials = _materials(doc)
    names = [m.getName() for m in materials]
    if not materials:
        raise NeumatError(f"{path.name}: the document has no surfacematerial")
    if name is None:
        if len(materials) > 1:
            raise NeumatError(f"{path.name}: the document has {len(materials)} materials ({', '.join(names)}); "
                              f"pick one with --material NAME or {path.name}#NAME")
        return materials[0]
    if name not in names:
        raise NeumatError(f"{path.name}: no surfacematerial '{name}' (the document has {', '.join(names)})")
    return materials[names.index(name)]


def list_materials(path: str | Path) -> list[str]:
    """The names of a document's surfacematerials."""
    return [m.getName() for m in _materials(_read_document(Path(path)))]


def _resolution(sizes: list[int]) -> int:
    """The largest image's side rounded up to a power of two, within [256, 2048]; 512 without images."""
    if not sizes:
        return 512
    return int(min(2048, max(256, 1 << math.ceil(math.log2(max(sizes))))))


def translate(ref: str | Path, material: str | None = None) -> Translation:
    """Reads a MaterialX document and translates one of its materials (`material`, or the name after
    '#' in `ref`, or the only one). Raises NeumatError naming the file and element path on bad input;
    dropped or approximated inputs are in `warnings`, one per input."""
    path, fragment = split_reference(ref)
    name = material or fragment
    doc = _read_document(path)
    mat = _pick_material(doc, path, name)
    warnings: list[str] = []

    def report(where: str, message: str) -> None:
        text = f"{path.name}: {where}: {message}"
        if text not in warnings:
            warnings.append(text)

    shaders = _materialx().getShaderNodes(mat)
    if not shaders:
        raise NeumatError(f"{path.name}: {mat.getNamePath()}: the material has no surface shader connected")
    shader = shaders[0]
    category = shader.getCategory()
    if category not in _MODELS:
        raise NeumatError(f"{path.name}: {shader.getNamePath()}: unknown shader node '{category}' "
                          f"(neumat imports {', '.join(SHADERS)})")
    if shader.getNodeDef() is None:
        raise NeumatError(f"{path.name}: {shader.getNamePath()}: no node definition of '{category}' matches its "
                          "version or type")
    for inp in shader.getInputs():
        if shader.getNodeDef().getActiveInput(inp.getName()) is None:
            raise NeumatError(f"{path.name}: {inp.getNamePath()}: '{category}' has no input '{inp.getName()}'")
    reader = _Reader(path, report)
    model = _Shader(reader, shader)
    layers = _MODELS[category](model)
    model.report_dropped()
    _clamp_constants(layers, report)
    used = _used_nodes(reader.nodes, layers)
    files = sorted({path.resolve(), *(Path(uri).resolve() for uri in doc.getReferencedSourceUris())})
    return Translation(file=path, material=mat.getName(), shader=f"{category} '{shader.getName()}'",
                       resolution=_resolution(reader.image_sizes),
                       nodes={k: reader.nodes[k] for k in used},
                       node_sources=reader.node_sources, layers=layers,
                       files=files + [p for p in reader.images], warnings=warnings)


def _clamp_constants(layers: list[LayerSpec], report: Callable[[str, str], None]) -> None:
    """Constants outside a parameter's range (MaterialX's colour ranges are soft: a base colour of
    1.2 is allowed) are clamped into it, with a warning."""
    from neumat.renderer.materials.graph import PARAM_RULES
    for layer in layers:
        for param, v in layer.params.items():
            rule = PARAM_RULES[param]
            if not _const(v) or rule.kind != "value":
                continue
            a = _array(v)
            clamped = np.clip(a, rule.lo, rule.hi)
            if np.any(clamped != a):
                where = layer.sources.get(param, param).split(" (")[0]
                report(where, f"{layer.name} {param} {_toml_value(v)} clamped to {_toml_value(_value(clamped))}")
                layer.params[param] = _value(clamped)


def _used_nodes(nodes: dict[str, dict], layers: list[LayerSpec]) -> list[str]:
    """Ids of the nodes the layers read, directly or through other nodes (folding leaves some
    unused), each after its inputs, in the order the layers' parameters first need them."""
    order: list[str] = []

    def visit(nid: str) -> None:
        if nid in order:
            return
        for key in ("a", "b", "factor", "input"):
            if isinstance(nodes[nid].get(key), str) and nodes[nid][key] in nodes:
                visit(nodes[nid][key])
        order.append(nid)

    for layer in layers:
        for v in layer.params.values():
            if isinstance(v, Ref):
                visit(v.id)
    return order


_reported: set[str] = set()


def warn_once(message: str) -> None:
    """Prints a dropped or approximated input to stderr the first time this process meets it."""
    if message not in _reported:
        _reported.add(message)
        print(f"neumat: warning: {message}", file=sys.stderr)


# ---------------------------------------------------------------------------------------------
# Writing a translation as a neumat material file.

def _toml_literal(v) -> str:
    if isinstance(v, bool):
        return "true" if v else "false"
    if isinstance(v, str):
        return json.dumps(v)  # TOML basic strings share JSON's escapes
    if isinstance(v, list):
        return "[" + ", ".join(_toml_literal(x) for x in v) + "]"
    return repr(v)


def to_toml(t: Translation, out_dir: Path) -> str:
    """The translation as a readable material TOML whose image paths are relative to `out_dir`:
    every node and layer parameter commented with the MaterialX element it came from."""
    doc = t.document()
    lines = [f"# {t.material}: {t.shader} in {t.file.name}, imported by `neumat material import`.",
             "# The comments name the MaterialX elements each value comes from; docs/materialx.md has the mapping."]
    lines += [f"# approximated: {w.split(': ', 1)[1]}" for w in t.warnings]
    lines += ["", "[material]"] + [f"{k} = {_toml_literal(v)}" for k, v in doc["material"].items()]
    for nid, fields in doc["nodes"].items():
        lines += ["", f"[nodes.{nid}]  # {t.node_sources[nid]}"]
        for k, v in fields.items():
            if k == "file":
                v = Path(os.path.relpath(v, out_dir.resolve())).as_posix()
            lines.append(f"{k} = {_toml_literal(v)}")
    for spec, layer in zip(t.layers, doc["layers"]):
        lines += ["", "[[layers]]"]
        for k, v in layer.items():
            note = spec.sources.get(k) or ("alpha" in k and spec.sources.get("alpha"))
            lines.append(f"{k} = {_toml_literal(v)}" + (f"  # {note}" if note else ""))
    return "\n".join(lines) + "\n"
