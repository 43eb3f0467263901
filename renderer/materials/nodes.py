"""Texture node types of the material graph: each turns its fields (and the outputs of the nodes it
references) into a texture sampled at the texel centres of an N x N grid over uv in [0, 1)^2.

Conventions every node keeps (docs/materials.md, "Conventions" states them for users):
- Texel (i, j) is row i, column j; its centre is (u, v) = ((j + 0.5) / N, (i + 0.5) / N): u runs
  along columns (x), v along rows (y), row 0 is v near 0. An image file maps onto uv as stored:
  its first (top) row at v = 0, no flip.
- Tangent space: x along +u, y along +v, z out of the surface.
- Outputs are float32 [N, N, C] with C = 1 (scalar) or 3 (RGB, or a normal's xyz); constants are
  [1, 1, C] and broadcast. A node's width is known before evaluation (`NodeType.width`).
- Procedural nodes are periodic with period 1 in u and v (the renderer wraps uv), and are pure
  functions of uv and their seed: the same seed gives the same texture at every resolution, up to
  sampling. Periods ("scale") are therefore integers.
"""

import math
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from neumat.renderer.core.errors import NeumatError
from neumat.renderer.images.color import luminance
from neumat.renderer.images.io import read_rgba
from neumat.renderer.core.numbers import check_number

REQUIRED = object()  # marks a field without a default


class SpecError(Exception):
    """A problem at `key` (a dotted key path such as 'nodes.crackle.scale') of a material file;
    graph.py prefixes the file name and raises it as a NeumatError."""

    def __init__(self, key: str, message: str):
        super().__init__(f"{key}: {message}")
        self.key = key
        self.message = message


@dataclass(frozen=True)
class NodeRef:
    """A field value naming another node, whose output it takes."""

    id: str


@dataclass(frozen=True)
class Grid:
    """The N x N texel-centre grid a graph is evaluated on."""

    n: int

    @property
    def coords(self) -> np.ndarray:
        """Texel-centre coordinates along one axis (the same for u over columns and v over rows)."""
        return (np.arange(self.n, dtype=np.float64) + 0.5) / self.n


# ---------------------------------------------------------------------------------------------
# Field parsing. Each parser takes the raw TOML value and returns the parsed one, or raises
# ValueError with a message that completes "<key path>: ...".

def _fmt(value: object) -> str:
    return repr(value) if isinstance(value, str) else str(value)


def parse_constant(value: object, accepts: str = "a number or [r, g, b]") -> np.ndarray:
    """A number or [r, g, b] (finite in float32) as a float32 array of shape (1,) or (3,)."""
    values = value if isinstance(value, list) and len(value) == 3 else [value]
    if not all(isinstance(v, (int, float)) and not isinstance(v, bool) for v in values):
        raise ValueError(f"must be {accepts}, got {_fmt(value)}")
    for v in values:
        try:
            check_number(v)
        except ValueError as e:
            raise ValueError(f"{e} (in {_fmt(value)})" if len(values) == 3 else str(e)) from None
    return np.array(values, np.float32)


def parse_input(value: object) -> NodeRef | np.ndarray:
    """A node id (string) or a constant."""
    if isinstance(value, str):
        return NodeRef(value)
    return parse_constant(value, "a node id, a number or [r, g, b]")


@dataclass(frozen=True)
class Field:
    """One field of a node type: how to parse it and its default (REQUIRED: none)."""

    parse: Callable[[object], object]
    default: object = REQUIRED
    is_input: bool = False  # may name another node


def number(lo: float = -math.inf, hi: float = math.inf, default: object = REQUIRED) -> Field:
    return Field(lambda v: float(check_number(v, lo, hi)), default)


def integer(lo: int, hi: int, default: object = REQUIRED) -> Field:
    return Field(lambda v: int(check_number(v, lo, hi, integer=True)), default)


def boolean(default: bool) -> Field:
    def parse(v: object) -> bool:
        if not isinstance(v, bool):
            raise ValueError(f"must be true or false, got {_fmt(v)}")
        return v
    return Field(parse, default)


def choice(*options: str, default: object = REQUIRED) -> Field:
    def parse(v: object) -> str:
        if v not in options:
            raise ValueError(f"must be one of {', '.join(map(repr, options))}; got {_fmt(v)}")
        return v
    return Field(parse, default)


def period(default: object = REQUIRED) -> Field:
    """Cells (or lattice periods) across the texture: an integer, or [along u, along v]."""
    def parse(v: object) -> tuple[int, int]:
        if isinstance(v, list):
            if len(v) != 2:
                raise ValueError(f"must be an integer or [along u, along v], got {v}")
            return tuple(int(check_number(x, 1, 4096, integer=True)) for x in v)
        n = int(check_number(v, 1, 4096, integer=True))
        return (n, n)
    return Field(parse, default)


def interval(default: object = REQUIRED) -> Field:
    """[lo, hi], two different numbers (hi < lo reverses)."""
    def parse(v: object) -> tuple[float, float]:
        if not (isinstance(v, list) and len(v) == 2):
            raise ValueError(f"must be [lo, hi], got {_fmt(v)}")
        lo, hi = (float(check_number(x)) for x in v)
        if lo == hi:
            raise ValueError(f"must be two different numbers, got {v}")
        return lo, hi
    return Field(parse, default)


def curve_points(default: object = REQUIRED) -> Field:
    """[[x, y], ...]: at least two points, x strictly increasing within [0, 1]."""
    def parse(v: object) -> tuple[np.ndarray, np.ndarray]:
        if not (isinstance(v, list) and len(v) >= 2 and all(isinstance(p, list) and len(p) == 2 for p in v)):
            raise ValueError(f"must be a list of at least two [x, y] pairs, got {_fmt(v)}")
        xs = np.array([check_number(p[0], 0, 1) for p in v])
        ys = np.array([check_number(p[1]) for p in v])
        if np.any(np.diff(xs) <= 0):
            raise ValueError(f"x must increase strictly, got {xs.tolist()}")
        return xs, ys
    return Field(parse, default)


def text(default: object = REQUIRED) -> Field:
    def parse(v: object) -> str:
        if not isinstance(v, str) or not v:
            raise ValueError(f"must be a non-empty string, got {_fmt(v)}")
        return v
    return Field(parse, default)


def input_field(default: object = REQUIRED) -> Field:
    return Field(parse_input, default, is_input=True)


# ---------------------------------------------------------------------------------------------
# Hashing: a 32-bit integer hash (Wellons' "lowbias32" constants) chained over lattice indices,
# so that every random value is a pure function of (seed, stream, cell).

_STREAM_SALT = 0x9E3779B9


def _mix32(x: np.ndarray) -> np.ndarray:
    x = x ^ (x >> np.uint32(16))
    x = x * np.uint32(0x7FEB352D)
    x = x ^ (x >> np.uint32(15))
    x = x * np.uint32(0x846CA68B)
    return x ^ (x >> np.uint32(16))


def hash_cells(ix: np.ndarray, iy: np.ndarray, seed: int, stream: int) -> np.ndarray:
    """uint32 hash of integer lattice cells for one (seed, stream)."""
    with np.errstate(over="ignore"):
        h = _mix32(np.atleast_1d(np.uint32(seed & 0xFFFFFFFF)) ^ np.uint32((stream * _STREAM_SALT) & 0xFFFFFFFF))
        h = _mix32(h ^ np.asarray(ix).astype(np.uint32))
        return _mix32(h ^ np.asarray(iy).astype(np.uint32))


def random01(ix: np.ndarray, iy: np.ndarray, seed: int, stream: int) -> np.ndarray:
    """Uniform float64 in [0, 1) per lattice cell."""
    return (hash_cells(ix, iy, seed, stream) >> np.uint32(8)).astype(np.float64) * (1.0 / (1 << 24))


def _cell_table(nx: int, ny: int, seed: int, stream: int) -> np.ndarray:
    """[ny, nx] uniforms, one per cell of an nx x ny lattice."""
    iy, ix = np.meshgrid(np.arange(ny), np.arange(nx), indexing="ij")
    return random01(ix, iy, seed, stream)


def _scalar(a: np.ndarray) -> np.ndarray:
    return a.astype(np.float32)[..., None]


# ---------------------------------------------------------------------------------------------
# Node types.

class NodeType:
    """One kind of node: its fields, its output width and its evaluation."""

    name: str = ""
    fields: dict[str, Field] = {}

    def check(self, params: dict) -> None:
        """Checks between fields; raises SpecError(field name, message)."""

    def width(self, params: dict, widths: dict[str, int]) -> int:
        """Output channels (1 or 3) given the widths of the input fields; raises SpecError(field,
        message) when an input has the wrong width."""
        return 1

    def prepare(self, params: dict, base_dir: Path) -> None:
        """Loads what the node needs from disk (paths relative to the material file)."""

    def files(self, params: dict) -> list[Path]:
        """Files the node reads: they enter the material's source hash."""
        return []

    def evaluate(self, args: dict, grid: Grid) -> np.ndarray:
        raise NotImplementedError


class Constant(NodeType):
    """A uniform value: scalar or RGB."""

    name = "constant"
    fields = {"value": Field(parse_constant)}

    def width(self, params, widths):
        return params["value"].shape[0]

    def evaluate(self, args, grid):
        return args["value"][None, None, :]




def _resample_wrapped(img: np.ndarray, n: int, repeat: tuple[int, int]) -> np.ndarray:
    """Samples an [h, w, C] image, repeated (along u, along v) times over uv, at the n x n texel
    centres, bilinear with wrap. An image with at least twice the texels it gets is first halved by
    2x2 averages (while its size is even) so that it does not alias."""
    ru, rv = repeat
    while (img.shape[0] % 2 == 0 and img.shape[1] % 2 == 0
           and img.shape[0] * rv >= 2 * n and img.shape[1] * ru >= 2 * n):
        img = 0.25 * (img[0::2, 0::2] + img[1::2, 0::2] + img[0::2, 1::2] + img[1::2, 1::2])
    h, w = img.shape[:2]
    t = (np.arange(n) + 0.5) / n

    def axis(size: int, reps: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        x = t * reps * size - 0.5
        i0 = np.floor(x)
        return i0.astype(np.int64) % size, (i0.astype(np.int64) + 1) % size, x - i0

    r0, r1, fy = axis(h, rv)
    c0, c1, fx = axis(w, ru)
    fx = fx[None, :, None]
    top = img[r0][:, c0] * (1 - fx) + img[r0][:, c1] * fx
    bottom = img[r1][:, c0] * (1 - fx) + img[r1][:, c1] * fx
    return top * (1 - fy[:, None, None]) + bottom * fy[:, None, None]


class ImageFile(NodeType):
    """A PNG (8 or 16 bit), JPEG (both via Pillow) or EXR (via OpenEXR) file, sampled bilinearly with wrap.
    `color = true` marks colour data: PNG and JPEG values are then sRGB-decoded (EXR is linear already).
    Without `channel` the output is RGB (a grey file repeats its value); with it, a scalar.
    `repeat` tiles the image that many times across u and v."""

    name = "image"
    fields = {
        "file": text(),
        "color": boolean(False),
        "channel": choice("r", "g", "b", "a", "luminance", default=None),
        "repeat": period((1, 1)),
    }

    def width(self, params, widths):
        return 1 if params["channel"] else 3

    def prepare(self, params, base_dir):
        path = (base_dir / params["file"]).resolve()
        if not path.is_file():
            raise SpecError("file", f"image file not found: {path}")
        try:
            pixels = read_rgba(path, srgb=params["color"]).astype(np.float64)
        except NeumatError as e:
            raise SpecError("file", str(e)) from None
        if not np.all(np.isfinite(pixels)):
            raise SpecError("file", f"{path} has non-finite pixels")
        params["path"] = path
        params["pixels"] = pixels

    def files(self, params):
        return [params["path"]]

    def evaluate(self, args, grid):
        px = args["pixels"]
        channel = args["channel"]
        if channel == "luminance":
            px = luminance(px[..., :3])
            px = px[..., None]
        elif channel:
            px = px[..., "rgba".index(channel), None]
        else:
            px = px[..., :3]
        return _resample_wrapped(px, grid.n, args["repeat"]).astype(np.float32)


def _fade(t: np.ndarray) -> np.ndarray:
    return t * t * t * (t * (t * 6 - 15) + 10)


def _cells_along(freq: int, x: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Lattice cell index (not wrapped) and fraction within the cell of coordinates x * freq."""
    x = x * freq
    i = np.floor(x)
    return i.astype(np.int64), x - i


def lattice_noise(u: np.ndarray, v: np.ndarray, freq: tuple[int, int], seed: int, stream: int,
                  basis: str) -> np.ndarray:
    """One octave of periodic noise in [-1, 1] at coordinates (u, v) (broadcastable arrays):
    `freq` lattice cells across u and v, random values ('value') or random unit gradients
    ('gradient', Perlin) at lattice points, interpolated with the quintic fade."""
    fx, fy = freq
    ix, tx = _cells_along(fx, u)
    iy, ty = _cells_along(fy, v)
    cols = (ix % fx, (ix + 1) % fx)
    rows = ((iy % fy) * fx, ((iy + 1) % fy) * fx)  # flat offsets of the lattice rows
    table = _cell_table(fx, fy, seed, stream).ravel()
    if basis == "value":
        value = 2 * table - 1
        corner = [[value.take(r + c) for c in cols] for r in rows]
    else:
        gx, gy = np.cos(2 * np.pi * table), np.sin(2 * np.pi * table)
        corner = [[gx.take(r + c) * (tx - dx) + gy.take(r + c) * (ty - dy) for dx, c in enumerate(cols)]
                  for dy, r in enumerate(rows)]
    sx, sy = _fade(tx), _fade(ty)
    top = corner[0][0] + sx * (corner[0][1] - corner[0][0])
    bottom = corner[1][0] + sx * (corner[1][1] - corner[1][0])
    out = top + sy * (bottom - top)
    # Unit-gradient 2D Perlin noise stays within +-sqrt(2)/2.
    return out if basis == "value" else out * math.sqrt(2.0)


def fbm(u: np.ndarray, v: np.ndarray, scale: tuple[int, int], octaves: int, lacunarity: float, gain: float,
        seed: int, basis: str = "gradient", turbulence: bool = False, first_stream: int = 0) -> np.ndarray:
    """Fractal sum of lattice_noise octaves, normalised to [0, 1] (see Fbm)."""
    total = 0.0
    norm = 0.0
    for o in range(octaves):
        freq = tuple(max(1, round(s * lacunarity ** o)) for s in scale)
        n = lattice_noise(u, v, freq, seed, first_stream + o, basis)
        total = total + gain ** o * (np.abs(n) if turbulence else n)
        norm += gain ** o
    total = total / norm
    return np.clip(total if turbulence else 0.5 + 0.5 * total, 0, 1)


# Domain warping, shared by the noise nodes: coordinates displaced by a smooth periodic field.
WARP_FIELDS = {"warp": number(0, 1, 0.0), "warp_scale": period((4, 4))}


def warped_uv(args: dict, grid: Grid) -> tuple[np.ndarray, np.ndarray]:
    """Texel-centre coordinates u [1, N], v [N, 1]; with `warp` > 0, both [N, N] and displaced by
    warp * (2 fbm - 1) (3 octaves at `warp_scale`, its own streams of the node's seed). The
    displacement is periodic, so the warped texture still tiles."""
    u, v = grid.coords[None, :], grid.coords[:, None]
    if args["warp"] == 0:
        return u, v
    du = 2 * fbm(u, v, args["warp_scale"], 3, 2.0, 0.5, args["seed"], first_stream=100) - 1
    dv = 2 * fbm(u, v, args["warp_scale"], 3, 2.0, 0.5, args["seed"], first_stream=200) - 1
    return u + args["warp"] * du, v + args["warp"] * dv


class Fbm(NodeType):
    """Fractal sum of lattice noise, scalar in [0, 1] (0.5 on average). Octave o has
    round(scale * lacunarity^o) cells per axis (rounded so that it tiles) and amplitude gain^o.
    `turbulence` sums |noise| instead (dark creases at the noise's zeros)."""

    name = "fbm"
    fields = {
        "scale": period(),
        "octaves": integer(1, 12, 5),
        "lacunarity": number(1, 8, 2.0),
        "gain": number(0, 1, 0.5),
        "seed": integer(0, 2**32 - 1, 0),
        "basis": choice("gradient", "value", default="gradient"),
        "turbulence": boolean(False),
        **WARP_FIELDS,
    }

    def evaluate(self, args, grid):
        u, v = warped_uv(args, grid)
        out = fbm(u, v, args["scale"], args["octaves"], args["lacunarity"], args["gain"], args["seed"],
                  args["basis"], args["turbulence"])
        return _scalar(np.broadcast_to(out, (grid.n, grid.n)))


@dataclass
class Cells:
    """Nearest and second-nearest feature points of a jittered periodic lattice, per texel."""

    f1: np.ndarray  # [N, N] distance to the nearest point, in cell units
    f2: np.ndarray  # second nearest
    cell: np.ndarray  # [N, N] flat index (row * nx + column) of the nearest point's cell


def worley_cells(u: np.ndarray, v: np.ndarray, scale: tuple[int, int], seed: int, jitter: float) -> Cells:
    """One feature point per cell, at 0.5 + jitter * (uniform - 0.5) within it. Distances are
    measured in cell units (cells stretch with unequal scales). Searching the 5 x 5 cells around a
    texel is exact for F1 and F2: F2 < 1.81 cells, and a point two cells away is >= 2 away."""
    nx, ny = scale
    px = 0.5 + jitter * (_cell_table(nx, ny, seed, 0) - 0.5)
    py = 0.5 + jitter * (_cell_table(nx, ny, seed, 1) - 0.5)
    px, py = px.astype(np.float32).ravel(), py.astype(np.float32).ravel()
    ix, fx = _cells_along(nx, u)
    iy, fy = _cells_along(ny, v)
    fx, fy = fx.astype(np.float32), fy.astype(np.float32)
    shape = np.broadcast_shapes(fx.shape, fy.shape)
    f1 = np.full(shape, np.inf, np.float32)
    f2 = f1.copy()
    cell = np.zeros(shape, np.int64)
    for oy in range(-2, 3):
        row_index = ((iy + oy) % ny) * nx
        for ox in range(-2, 3):
            flat = row_index + (ix + ox) % nx
            dx = (ox + px.take(flat)) - fx
            dy = (oy + py.take(flat)) - fy
            d2 = dx * dx + dy * dy
            nearer = d2 < f1
            f2 = np.where(nearer, f1, np.minimum(f2, d2))
            cell = np.where(nearer, flat, cell)
            f1 = np.where(nearer, d2, f1)
    return Cells(np.sqrt(f1), np.sqrt(f2), cell)


class Worley(NodeType):
    """Cellular (Worley/Voronoi) noise, scalar: 'f1' distance to the nearest feature point,
    'f2' to the second nearest, 'edge' = f2 - f1 (0 on cell borders: crackle), 'cell' a uniform
    random value in [0, 1) per cell. Distances are in cell units (f1 < 1.42, edge < 1.81)."""

    name = "worley"
    fields = {
        "scale": period(),
        "seed": integer(0, 2**32 - 1, 0),
        "jitter": number(0, 1, 1.0),
        "output": choice("f1", "f2", "edge", "cell", default="f1"),
        **WARP_FIELDS,
    }

    def evaluate(self, args, grid):
        cells = worley_cells(*warped_uv(args, grid), args["scale"], args["seed"], args["jitter"])
        out = args["output"]
        if out == "cell":
            nx, ny = args["scale"]
            return _scalar(_cell_table(nx, ny, args["seed"], 2).ravel()[cells.cell])
        return _scalar({"f1": cells.f1, "f2": cells.f2, "edge": cells.f2 - cells.f1}[out])


class Flakes(NodeType):
    """Metallic flakes: one flake per Worley cell (a fraction `density` of the cells hold one).
    'normal' (RGB = xyz) is the flake's normal, uniform over the cone of half-angle `spread`
    (degrees) around z, and (0, 0, 1) where there is no flake; 'mask' is 1 on flakes, else 0."""

    name = "flakes"
    fields = {
        "scale": period(),
        "seed": integer(0, 2**32 - 1, 0),
        "jitter": number(0, 1, 1.0),
        "spread": number(0, 89, 20.0),
        "density": number(0, 1, 1.0),
        "output": choice("normal", "mask", default="normal"),
        **WARP_FIELDS,
    }

    def width(self, params, widths):
        return 3 if params["output"] == "normal" else 1

    def evaluate(self, args, grid):
        nx, ny = args["scale"]
        seed = args["seed"]
        cells = worley_cells(*warped_uv(args, grid), args["scale"], seed, args["jitter"])
        present = (_cell_table(nx, ny, seed, 3) < args["density"]).ravel()[cells.cell]
        if args["output"] == "mask":
            return _scalar(present)
        cos_max = math.cos(math.radians(args["spread"]))
        cos_t = 1 - _cell_table(nx, ny, seed, 4) * (1 - cos_max)
        phi = 2 * np.pi * _cell_table(nx, ny, seed, 5)
        sin_t = np.sqrt(np.maximum(0, 1 - cos_t * cos_t))
        normals = np.stack([sin_t * np.cos(phi), sin_t * np.sin(phi), cos_t], axis=-1).reshape(-1, 3)
        n = normals[cells.cell]
        n[~present] = (0.0, 0.0, 1.0)
        return n.astype(np.float32)


def _fold_wrapped(values: np.ndarray, index: np.ndarray, n: int, axis: int) -> tuple[np.ndarray, np.ndarray]:
    """Wraps a window's unwrapped texel `index` along `axis`; where a window is wider than the
    texture, texels seen twice keep the larger value (values are >= 0)."""
    wrapped = index % n
    if len(index) <= n:
        return values, wrapped
    unique, inverse = np.unique(wrapped, return_inverse=True)
    shape = list(values.shape)
    shape[axis] = len(unique)
    out = np.zeros(shape, values.dtype)
    np.maximum.at(np.moveaxis(out, axis, 0), inverse, np.moveaxis(values, axis, 0))
    return out, unique


class Scratches(NodeType):
    """Thin straight scratches: `count` segments at uniform random centres, directions
    `angle` +- `angle_spread` degrees (0 = along +u, 90 = along +v), lengths
    `length` * (1 +- length_jitter) and width `width` (both in uv units), each with a depth of
    1 - depth_jitter * uniform, tapered over the last 15 % of its length at both ends. The cross
    section `profile` is 'v' (linear), 'round' (half ellipse) or 'flat'. Scratches narrower than
    two texels at the evaluation resolution are widened to two texels and made shallower in
    proportion, so that they do not alias into dashes.
    'depth' (scalar in [0, 1], 1 = deepest) is the deepest scratch at a texel; 'angle' is that
    scratch's direction in degrees, and `angle` where there is none (for the anisotropy rotation)."""

    name = "scratches"
    fields = {
        "count": integer(0, 100_000),
        "length": number(1e-4, 1),
        "length_jitter": number(0, 1, 0.5),
        "width": number(1e-5, 0.25),
        "angle": number(-360, 360, 0.0),
        "angle_spread": number(0, 180, 180.0),
        "depth_jitter": number(0, 1, 0.5),
        "profile": choice("v", "round", "flat", default="v"),
        "seed": integer(0, 2**32 - 1, 0),
        "output": choice("depth", "angle", default="depth"),
    }

    def evaluate(self, args, grid):
        n = grid.n
        k = np.arange(args["count"])
        r = [random01(k, np.zeros_like(k), args["seed"], stream) for stream in range(6)]
        centres = np.stack([r[0], r[1]], axis=1)
        angles = args["angle"] + args["angle_spread"] * (2 * r[2] - 1)
        lengths = args["length"] * (1 + args["length_jitter"] * (2 * r[3] - 1))
        # A scratch narrower than a texel would alias into dashes: widen it to one texel and make
        # it shallower in proportion, keeping its cross-section area (a box prefilter).
        half_w = max(0.5 * args["width"], 1.0 / n)
        depths = (1 - args["depth_jitter"] * r[4]) * (0.5 * args["width"] / half_w)
        depth = np.zeros((n, n), np.float32)
        angle = np.full((n, n), args["angle"], np.float32)
        for c, a, length, d in zip(centres, np.radians(angles), lengths, depths):
            direction = np.array([math.cos(a), math.sin(a)])
            p0 = c - 0.5 * length * direction
            p1 = c + 0.5 * length * direction
            lo = np.minimum(p0, p1) - half_w
            hi = np.maximum(p0, p1) + half_w
            # Texels whose centres may lie within the scratch, unwrapped, then wrapped for indexing.
            j = np.arange(math.floor(lo[0] * n - 0.5), math.ceil(hi[0] * n - 0.5) + 1)
            i = np.arange(math.floor(lo[1] * n - 0.5), math.ceil(hi[1] * n - 0.5) + 1)
            qx = (j + 0.5) / n - p0[0]
            qy = (i + 0.5) / n - p0[1]
            along = np.clip(qx[None, :] * direction[0] + qy[:, None] * direction[1], 0, length)
            across = np.hypot(qx[None, :] - along * direction[0], qy[:, None] - along * direction[1]) / half_w
            if args["profile"] == "v":
                profile = np.maximum(0, 1 - across)
            elif args["profile"] == "round":
                profile = np.sqrt(np.maximum(0, 1 - across * across))
            else:
                profile = (across < 1).astype(np.float64)
            taper = np.minimum(1, np.minimum(along, length - along) / (0.15 * length))
            value = (d * profile * taper).astype(np.float32)
            value, i = _fold_wrapped(value, i, n, axis=0)
            value, j = _fold_wrapped(value, j, n, axis=1)
            rows, cols = np.ix_(i, j)
            deeper = value > depth[rows, cols]
            depth[rows, cols] = np.where(deeper, value, depth[rows, cols])
            angle[rows, cols] = np.where(deeper, np.float32(math.degrees(a)), angle[rows, cols])
        return (depth if args["output"] == "depth" else angle)[..., None]


class Tiles(NodeType):
    """Rectangular tiles, `columns` x `rows`, each row shifted by `offset` tile widths (0.5: running
    bond; rows * offset must be an integer so that it tiles). 'mask' is 0 in the gap (mortar,
    `gap` wide in uv units) and rises to 1 over `bevel` uv units into the tile (smoothstep);
    'value' is a uniform random value in [0, 1) per tile."""

    name = "tiles"
    fields = {
        "columns": integer(1, 4096),
        "rows": integer(1, 4096),
        "gap": number(0, 0.5, 0.0),
        "bevel": number(0, 0.5, 0.0),
        "offset": number(0, 1, 0.0),
        "seed": integer(0, 2**32 - 1, 0),
        "output": choice("mask", "value", default="mask"),
    }

    def check(self, params):
        shift = params["rows"] * params["offset"]
        if abs(shift - round(shift)) > 1e-9:
            raise SpecError("offset", f"rows * offset must be an integer for the tiles to wrap, "
                                      f"got {params['rows']} * {params['offset']:g}")

    def evaluate(self, args, grid):
        nc, nr = args["columns"], args["rows"]
        y = grid.coords * nr
        row = np.floor(y)
        x = grid.coords[None, :] * nc + row[:, None] * args["offset"]
        col = np.floor(x)
        if args["output"] == "value":
            return _scalar(random01(col.astype(np.int64) % nc, row.astype(np.int64)[:, None] % nr, args["seed"], 0))
        fx, fy = x - col, (y - row)[:, None]
        dist = np.minimum(np.minimum(fx, 1 - fx) / nc, np.minimum(fy, 1 - fy) / nr)  # uv units to the border
        edge = 0.5 * args["gap"]
        if args["bevel"] > 0:
            t = np.clip((dist - edge) / args["bevel"], 0, 1)
            return _scalar(t * t * (3 - 2 * t))
        return _scalar(dist >= edge)


class Checker(NodeType):
    """A checkerboard of `columns` x `rows` squares (both even, so that it wraps), scalar:
    1 on the square at (u, v) = (0, 0), 0 on its neighbours."""

    name = "checker"
    fields = {"columns": integer(2, 4096), "rows": integer(2, 4096)}

    def check(self, params):
        for key in ("columns", "rows"):
            if params[key] % 2:
                raise SpecError(key, f"must be even so that the checkerboard wraps, got {params[key]}")

    def evaluate(self, args, grid):
        col = np.floor(grid.coords * args["columns"]).astype(np.int64)
        row = np.floor(grid.coords * args["rows"]).astype(np.int64)
        return _scalar((row[:, None] + col[None, :]) % 2 == 0)


class Mix(NodeType):
    """a * (1 - factor) + b * factor, per channel (scalars broadcast to RGB)."""

    name = "mix"
    fields = {"a": input_field(), "b": input_field(), "factor": input_field()}

    def width(self, params, widths):
        return max(widths.values())

    def evaluate(self, args, grid):
        return args["a"] + (args["b"] - args["a"]) * args["factor"]


def _arithmetic(op_name: str, op: Callable[[np.ndarray, np.ndarray], np.ndarray], doc: str) -> type[NodeType]:
    class Arithmetic(NodeType):
        __doc__ = doc
        name = op_name
        fields = {"a": input_field(), "b": input_field()}

        def width(self, params, widths):
            return max(widths.values())

        def evaluate(self, args, grid):
            return op(args["a"], args["b"]).astype(np.float32)
    return Arithmetic


Multiply = _arithmetic("multiply", np.multiply, "a * b per channel (scalars broadcast to RGB).")
Add = _arithmetic("add", np.add, "a + b per channel (scalars broadcast to RGB).")
Subtract = _arithmetic("subtract", np.subtract, "a - b per channel (scalars broadcast to RGB).")
Maximum = _arithmetic("max", np.maximum, "max(a, b) per channel (scalars broadcast to RGB).")
Minimum = _arithmetic("min", np.minimum, "min(a, b) per channel (scalars broadcast to RGB).")


class Remap(NodeType):
    """Per channel: t = clamp((input - from[0]) / (from[1] - from[0]), 0, 1), shaped by `curve`
    ('linear'; 'smoothstep' 3t^2 - 2t^3; 'power' t^exponent; 'points' piecewise linear through
    [[x, y], ...] with x in [0, 1]), then to[0] + (to[1] - to[0]) * t. Reversed ranges invert."""

    name = "remap"
    fields = {
        "input": input_field(),
        "from": interval((0.0, 1.0)),
        "to": interval((0.0, 1.0)),
        "curve": choice("linear", "smoothstep", "power", "points", default="linear"),
        "exponent": number(1e-3, 1e3, None),
        "points": curve_points(None),
    }

    def check(self, params):
        for key, curve in (("exponent", "power"), ("points", "points")):
            if params[key] is None and params["curve"] == curve:
                raise SpecError(key, f"missing (curve = '{curve}' needs it)")
            if params[key] is not None and params["curve"] != curve:
                raise SpecError(key, f"allowed only with curve = '{curve}'")

    def width(self, params, widths):
        return widths["input"]

    def evaluate(self, args, grid):
        (f0, f1), (t0, t1) = args["from"], args["to"]
        with np.errstate(over="ignore"):  # from = [0, 5e-324]: a step, inf before the clamp
            t = np.clip((args["input"].astype(np.float64) - f0) / (f1 - f0), 0, 1)
        curve = args["curve"]
        if curve == "smoothstep":
            t = t * t * (3 - 2 * t)
        elif curve == "power":
            t = t ** args["exponent"]
        elif curve == "points":
            t = np.interp(t, *args["points"])
        return (t0 + (t1 - t0) * t).astype(np.float32)


def _unit(v: np.ndarray) -> np.ndarray:
    return v / np.linalg.norm(v, axis=-1, keepdims=True)


class HeightToNormal(NodeType):
    """The tangent-space normal of a height field: normalize(-strength dh/du, -strength dh/dv, 1),
    with central differences (wrapped) at the evaluation resolution. `strength` is the height, in
    uv units, that a height value of 1 stands for (a 10 cm tile with 1 mm relief: 0.01); negative
    values invert the relief."""

    name = "height_to_normal"
    fields = {"input": input_field(), "strength": number(-10, 10)}

    def width(self, params, widths):
        if widths["input"] != 1:
            raise SpecError("input", "must be a scalar height, got an RGB node")
        return 3

    def evaluate(self, args, grid):
        h = np.broadcast_to(args["input"][..., 0], (grid.n, grid.n)).astype(np.float64)
        scale = -args["strength"] * grid.n / 2
        dhdu = (np.roll(h, -1, axis=1) - np.roll(h, 1, axis=1)) * scale
        dhdv = (np.roll(h, -1, axis=0) - np.roll(h, 1, axis=0)) * scale
        return _unit(np.stack([dhdu, dhdv, np.ones_like(h)], axis=-1)).astype(np.float32)


class NormalMap(NodeType):
    """Decodes an RGB normal map (an `image` without `color`): n = 2 rgb - 1, xy scaled by
    `strength`, y negated with `flip_y` (maps whose green points towards -v), normalised."""

    name = "normal_map"
    fields = {"input": input_field(), "strength": number(0, 10, 1.0), "flip_y": boolean(False)}

    def width(self, params, widths):
        if widths["input"] != 3:
            raise SpecError("input", "must be an RGB node")
        return 3

    def evaluate(self, args, grid):
        n = 2 * np.broadcast_to(args["input"], (grid.n, grid.n, 3)).astype(np.float64) - 1
        n[..., :2] *= args["strength"]
        if args["flip_y"]:
            n[..., 1] *= -1
        return _unit(n).astype(np.float32)


NODE_TYPES: dict[str, NodeType] = {t.name: t() for t in (
    Constant, ImageFile, Fbm, Worley, Flakes, Scratches, Tiles, Checker,
    Mix, Multiply, Add, Subtract, Maximum, Minimum, Remap, HeightToNormal, NormalMap)}
