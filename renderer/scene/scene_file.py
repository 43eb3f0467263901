"""Scene files (TOML): loading and validation; docs/scenes.md documents the format.

`load_scene` parses and checks everything that can be checked without a device: every key, value
range and referenced file (meshes, material graphs, environment maps). A mistake gives one
NeumatError naming the file and the key, e.g.
`stage.toml: objects[3].material: no such file /path/to/brass.toml`.
`resolve_materials` then decides, for a render mode, which material each object uses.
"""

import difflib
import math
import tomllib
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from neumat.renderer.core.errors import NeumatError
from neumat.renderer.materials.query import MATERIAL_KINDS
from neumat.renderer.scene.meshes import MESH_EXTENSIONS, SHAPES, UV_PROJECTIONS
from neumat.renderer.core.numbers import check_number
from neumat.renderer.core.paths import ASSET_DIR

SCENE_DIR = ASSET_DIR / "scenes"
MODES = ("per-object", "reference", "neural")
ENVIRONMENT_TYPES = ("studio", "map", "constant", "none")
LIGHT_TYPES = ("point",)
MAX_RESOLUTION = 16384

# Parameters each built-in shape accepts: name -> (kind, minimum)
SHAPE_PARAMS: dict[str, dict[str, tuple[str, float]]] = {
    "sphere": {"radius": ("number", 0.0), "segments": ("int", 3), "rings": ("int", 2)},
    "plane": {"size": ("number2", 0.0), "subdivisions": ("int", 1)},
    "box": {"size": ("number3", 0.0)},
    "torus": {"major_radius": ("number", 0.0), "minor_radius": ("number", 0.0), "segments": ("int", 3),
              "sides": ("int", 3)},
    "teapot": {"segments": ("int", 8)},
}


@dataclass
class Camera:
    position: np.ndarray
    target: np.ndarray
    up: np.ndarray
    fov: float  # vertical, degrees
    width: int
    height: int

    def basis(self) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """(forward, right, up) unit vectors; image x runs along right, image y down along -up."""
        forward = self.target - self.position
        forward = forward / np.linalg.norm(forward)
        right = np.cross(forward, self.up)
        right = right / np.linalg.norm(right)
        return forward, right, np.cross(right, forward)

    def image_size(self, width: int | None = None, height: int | None = None) -> tuple[int, int]:
        """The rendered size for optional --width / --height: one given, the other follows the
        camera's aspect ratio; neither, the camera's own resolution."""
        for flag, v in (("--width", width), ("--height", height)):
            if v is not None and not 1 <= v <= MAX_RESOLUTION:
                raise NeumatError(f"{flag} must be in [1, {MAX_RESOLUTION}], got {v}")
        if width and not height:
            height = max(1, round(width * self.height / self.width))
        elif height and not width:
            width = max(1, round(height * self.width / self.height))
        return width or self.width, height or self.height


@dataclass
class EnvironmentSpec:
    type: str = "none"
    file: Path | None = None
    color: tuple[float, float, float] = (1.0, 1.0, 1.0)
    rotation: float = 0.0   # degrees about +y
    intensity: float = 1.0
    resolution: tuple[int, int] = (1024, 512)  # studio tabulation (width, height)


@dataclass
class PointLight:
    position: np.ndarray
    intensity: np.ndarray  # radiant intensity, RGB W/sr


@dataclass
class MaterialSpec:
    kind: str              # "reference" | "neural"
    file: Path | None      # the material graph (TOML, or MaterialX as FILE.mtlx[#Material]): the reference material
    asset: Path | None     # the baked neural asset (kind = "neural")
    key: str               # "objects[3].material", for messages


@dataclass
class MeshSpec:
    shape: str | None      # a built-in shape, or None for a file
    params: dict
    file: Path | None
    uv_projection: str
    key: str


@dataclass
class SceneObject:
    name: str
    mesh: MeshSpec
    transform: np.ndarray           # 4x4 object to world
    material: MaterialSpec | None   # None: no surface (an emitter only, or black)
    uv_scale: tuple[float, float]
    emission: np.ndarray            # RGB radiance; non-zero makes the object an area light
    key: str


@dataclass
class RenderSettings:
    spp: int = 64
    max_depth: int = 8             # scattering events per path (0: emitters and environment only)
    rr_depth: int = 3              # Russian roulette from this bounce on
    seed: int = 0
    material_resolution: int | None = None  # evaluate every material graph at this resolution
    material_walks: int = 1        # random walks averaged by one layered eval()


@dataclass
class Scene:
    path: Path
    name: str
    description: str
    camera: Camera
    environment: EnvironmentSpec
    lights: list[PointLight]
    objects: list[SceneObject]
    render: RenderSettings = field(default_factory=RenderSettings)


class _Ctx:
    """Error messages prefixed by the scene file's name."""

    def __init__(self, path: Path):
        self.path = path
        self.name = path.name
        self.base = path.parent

    def error(self, key: str, message: str) -> NeumatError:
        return NeumatError(f"{self.name}: {key}: {message}" if key else f"{self.name}: {message}")

    def keys(self, table: dict, key: str, allowed: list[str], what: str) -> None:
        for k in table:
            if k not in allowed:
                close = difflib.get_close_matches(k, allowed, n=1)
                hint = f" (did you mean '{close[0]}'?)" if close else f" (allowed: {', '.join(allowed)})"
                raise self.error(f"{key}.{k}" if key else k, f"unknown field for {what}{hint}")

    def table(self, value, key: str, what: str) -> dict:
        if not isinstance(value, dict):
            raise self.error(key, f"must be a table ({what}), got {type(value).__name__}")
        return value

    def number(self, value, key: str, lo: float | None = None, hi: float | None = None,
               lo_open: bool = False, hi_open: bool = False) -> float:
        try:
            return float(check_number(value, -math.inf if lo is None else lo, math.inf if hi is None else hi,
                                      lo_open=lo_open, hi_open=hi_open))
        except ValueError as e:
            raise self.error(key, str(e)) from None

    def integer(self, value, key: str, lo: int | None = None, hi: int | None = None) -> int:
        try:
            return check_number(value, -math.inf if lo is None else lo, math.inf if hi is None else hi, integer=True)
        except ValueError as e:
            raise self.error(key, str(e)) from None

    def vector(self, value, key: str, n: int, lo: float | None = None, scalar_ok: bool = False) -> np.ndarray:
        if scalar_ok and isinstance(value, (int, float)) and not isinstance(value, bool):
            return np.full(n, self.number(value, key, lo), np.float64)
        if not isinstance(value, list) or len(value) != n:
            what = f"a number or a list of {n} numbers" if scalar_ok else f"a list of {n} numbers"
            raise self.error(key, f"must be {what}, got {value!r}")
        return np.array([self.number(v, f"{key}[{i}]", lo) for i, v in enumerate(value)], np.float64)

    def choice(self, value, key: str, choices) -> str:
        if value not in choices:
            close = difflib.get_close_matches(str(value), list(choices), n=1)
            hint = f"; did you mean '{close[0]}'?" if close else ""
            raise self.error(key, f"unknown value {value!r} (known: {', '.join(choices)}){hint}")
        return value

    def file(self, value, key: str, extensions: tuple[str, ...] | None = None) -> Path:
        if not isinstance(value, str) or not value:
            raise self.error(key, f"must be a file path (a string), got {value!r}")
        p = Path(value).expanduser()
        p = (self.base / p).resolve() if not p.is_absolute() else p
        if extensions and p.suffix.lower() not in extensions:
            raise self.error(key, f"unsupported file type '{p.suffix}' for {p.name} (use {', '.join(extensions)})")
        if not p.is_file():
            raise self.error(key, f"no such file {p}")
        return p


def _camera(ctx: _Ctx, raw) -> Camera:
    key = "camera"
    if raw is None:
        raise ctx.error(key, "missing: a scene needs a [camera] table (position, target, fov, resolution)")
    t = ctx.table(raw, key, "the camera")
    ctx.keys(t, key, ["position", "target", "up", "fov", "resolution"], "the camera")
    for req in ("position", "target"):
        if req not in t:
            raise ctx.error(f"{key}.{req}", "missing")
    pos = ctx.vector(t["position"], f"{key}.position", 3)
    target = ctx.vector(t["target"], f"{key}.target", 3)
    up = ctx.vector(t.get("up", [0.0, 1.0, 0.0]), f"{key}.up", 3)
    fov = ctx.number(t.get("fov", 40.0), f"{key}.fov", 0.0, 180.0, lo_open=True, hi_open=True)
    if not 0.5 <= fov <= 170.0:
        raise ctx.error(f"{key}.fov", f"vertical field of view must be in [0.5, 170] degrees, got {fov:g}")
    res = t.get("resolution", [640, 480])
    if not isinstance(res, list) or len(res) != 2:
        raise ctx.error(f"{key}.resolution", f"must be [width, height], got {res!r}")
    w = ctx.integer(res[0], f"{key}.resolution[0]", 1, MAX_RESOLUTION)
    h = ctx.integer(res[1], f"{key}.resolution[1]", 1, MAX_RESOLUTION)
    view = target - pos
    dist = float(np.linalg.norm(view))
    if dist < 1e-9:
        raise ctx.error(f"{key}.target", "is the same point as camera.position: no view direction")
    if np.linalg.norm(up) < 1e-9:
        raise ctx.error(f"{key}.up", "must not be the zero vector")
    sin_angle = np.linalg.norm(np.cross(view / dist, up / np.linalg.norm(up)))
    if sin_angle < 1e-4:
        raise ctx.error(f"{key}.up", f"{up.tolist()} is parallel to the view direction "
                                     f"{(view / dist).round(4).tolist()}: pick an up vector across it")
    return Camera(pos, target, up / np.linalg.norm(up), fov, w, h)


def _environment(ctx: _Ctx, raw) -> EnvironmentSpec:
    key = "environment"
    if raw is None:
        return EnvironmentSpec()
    t = ctx.table(raw, key, "the environment")
    ctx.keys(t, key, ["type", "file", "color", "rotation", "intensity", "resolution"], "the environment")
    kind = ctx.choice(t.get("type", "map" if "file" in t else "studio"), f"{key}.type", ENVIRONMENT_TYPES)
    spec = EnvironmentSpec(type=kind)
    spec.rotation = ctx.number(t.get("rotation", 0.0), f"{key}.rotation")
    spec.intensity = ctx.number(t.get("intensity", 1.0), f"{key}.intensity", 0.0)
    if kind == "map":
        if "file" not in t:
            raise ctx.error(f"{key}.file", "missing: type = \"map\" needs an equirectangular image (.exr or .png)")
        spec.file = ctx.file(t["file"], f"{key}.file", (".exr", ".png"))
    elif "file" in t:
        raise ctx.error(f"{key}.file", f"only used with type = \"map\" (type is \"{kind}\")")
    if "color" in t:
        if kind != "constant":
            raise ctx.error(f"{key}.color", f"only used with type = \"constant\" (type is \"{kind}\")")
        spec.color = tuple(ctx.vector(t["color"], f"{key}.color", 3, 0.0, scalar_ok=True))
    if "resolution" in t:
        if kind != "studio":
            raise ctx.error(f"{key}.resolution", f"only used with type = \"studio\" (type is \"{kind}\")")
        res = t["resolution"]
        if not isinstance(res, list) or len(res) != 2:
            raise ctx.error(f"{key}.resolution", f"must be [width, height], got {res!r}")
        spec.resolution = (ctx.integer(res[0], f"{key}.resolution[0]", 8, 8192),
                           ctx.integer(res[1], f"{key}.resolution[1]", 4, 4096))
    return spec


def _lights(ctx: _Ctx, raw) -> list[PointLight]:
    if raw is None:
        return []
    if not isinstance(raw, list):
        raise ctx.error("lights", "must be an array of tables ([[lights]])")
    lights = []
    for i, item in enumerate(raw):
        key = f"lights[{i}]"
        t = ctx.table(item, key, "a light")
        kind = ctx.choice(t.get("type", "point"), f"{key}.type", LIGHT_TYPES)
        ctx.keys(t, key, ["type", "position", "intensity"], f"a '{kind}' light (area lights are objects "
                 "with an emission)")
        if "position" not in t:
            raise ctx.error(f"{key}.position", "missing")
        lights.append(PointLight(ctx.vector(t["position"], f"{key}.position", 3),
                                 ctx.vector(t.get("intensity", 1.0), f"{key}.intensity", 3, 0.0, scalar_ok=True)))
    return lights


def _mesh(ctx: _Ctx, raw, key: str) -> MeshSpec:
    if raw is None:
        raise ctx.error(key, f"missing: a built-in shape ({', '.join(SHAPES)}) or a mesh file "
                             f"({', '.join(MESH_EXTENSIONS)})")
    if isinstance(raw, str):
        if raw in SHAPES:
            return MeshSpec(raw, {}, None, "none", key)
        if Path(raw).suffix.lower() in MESH_EXTENSIONS:
            return MeshSpec(None, {}, ctx.file(raw, key, MESH_EXTENSIONS), "none", key)
        close = difflib.get_close_matches(raw, list(SHAPES), n=1)
        hint = f" (did you mean '{close[0]}'?)" if close else ""
        raise ctx.error(key, f"'{raw}' is neither a built-in shape ({', '.join(SHAPES)}) nor a mesh file "
                             f"({', '.join(MESH_EXTENSIONS)}){hint}")
    t = ctx.table(raw, key, "a mesh")
    if ("shape" in t) == ("file" in t):
        raise ctx.error(key, "give exactly one of shape (a built-in shape) or file (a mesh file)")
    if "file" in t:
        ctx.keys(t, key, ["file", "uv_projection"], "a mesh file")
        proj = ctx.choice(t.get("uv_projection", "none"), f"{key}.uv_projection", UV_PROJECTIONS)
        return MeshSpec(None, {}, ctx.file(t["file"], f"{key}.file", MESH_EXTENSIONS), proj, key)
    shape = ctx.choice(t["shape"], f"{key}.shape", SHAPES)
    rules = SHAPE_PARAMS[shape]
    ctx.keys(t, key, ["shape", *rules], f"a '{shape}' shape")
    params = {}
    for name, (kind, lo) in rules.items():
        if name not in t:
            continue
        k = f"{key}.{name}"
        if kind == "int":
            params[name] = ctx.integer(t[name], k, int(lo), 4096)
        elif kind == "number":
            params[name] = ctx.number(t[name], k, lo, lo_open=True)
        else:
            n = 2 if kind == "number2" else 3
            v = ctx.vector(t[name], k, n, scalar_ok=True)
            if np.any(v <= lo):
                raise ctx.error(k, f"every size must be > 0, got {v.tolist()}")
            params[name] = v.tolist()
    return MeshSpec(shape, params, None, "none", key)


def _rotation(deg: np.ndarray) -> np.ndarray:
    """Rotation by deg[0] about x, then deg[1] about y, then deg[2] about z (R = Rz Ry Rx)."""
    ax, ay, az = np.radians(deg)
    rx = np.array([[1, 0, 0], [0, math.cos(ax), -math.sin(ax)], [0, math.sin(ax), math.cos(ax)]])
    ry = np.array([[math.cos(ay), 0, math.sin(ay)], [0, 1, 0], [-math.sin(ay), 0, math.cos(ay)]])
    rz = np.array([[math.cos(az), -math.sin(az), 0], [math.sin(az), math.cos(az), 0], [0, 0, 1]])
    return rz @ ry @ rx


def _transform(ctx: _Ctx, t: dict, key: str) -> np.ndarray:
    m = np.eye(4)
    if "matrix" in t:
        if any(k in t for k in ("translate", "rotate", "scale")):
            raise ctx.error(f"{key}.matrix", "give either matrix or translate/rotate/scale, not both")
        rows = t["matrix"]
        if not isinstance(rows, list) or len(rows) not in (3, 4):
            raise ctx.error(f"{key}.matrix", "must be 3 or 4 rows of 4 numbers (row-major, object to world)")
        for i, row in enumerate(rows):
            m[i] = ctx.vector(row, f"{key}.matrix[{i}]", 4)
        if len(rows) == 4 and not np.allclose(m[3], [0, 0, 0, 1]):
            raise ctx.error(f"{key}.matrix", "the last row must be [0, 0, 0, 1] (no projective transforms)")
    else:
        scale = ctx.vector(t.get("scale", 1.0), f"{key}.scale", 3, scalar_ok=True)
        rot = ctx.vector(t.get("rotate", [0.0, 0.0, 0.0]), f"{key}.rotate", 3)
        m[:3, :3] = _rotation(rot) @ np.diag(scale)
        m[:3, 3] = ctx.vector(t.get("translate", [0.0, 0.0, 0.0]), f"{key}.translate", 3)
    if abs(np.linalg.det(m[:3, :3])) < 1e-12:
        raise ctx.error(f"{key}.{'matrix' if 'matrix' in t else 'scale'}",
                        "the transform is singular (a zero scale flattens the object)")
    return m


MATERIAL_FILE_TYPES = (".toml", ".mtlx")


def _material_file(ctx: _Ctx, raw, key: str) -> Path:
    """A material graph's path: a .toml file, or a MaterialX document with an optional '#Material'."""
    from neumat.renderer.materials.materialx import split_reference
    if not isinstance(raw, str):
        return ctx.file(raw, key, MATERIAL_FILE_TYPES)
    file, fragment = split_reference(raw)
    path = ctx.file(str(file), key, MATERIAL_FILE_TYPES)
    return Path(f"{path}#{fragment}") if fragment else path


def _material(ctx: _Ctx, raw, key: str) -> MaterialSpec:
    if isinstance(raw, str):
        return MaterialSpec("reference", _material_file(ctx, raw, key), None, key)
    t = ctx.table(raw, key, "a material")
    kind = ctx.choice(t.get("kind", "reference"), f"{key}.kind", MATERIAL_KINDS)
    if kind == "reference":
        ctx.keys(t, key, ["kind", "file"], "a reference material")
        if "file" not in t:
            raise ctx.error(f"{key}.file", "missing: a reference material needs its material graph (.toml)")
        return MaterialSpec(kind, _material_file(ctx, t["file"], f"{key}.file"), None, key)
    ctx.keys(t, key, ["kind", "asset", "file"], "a neural material")
    if "asset" not in t:
        raise ctx.error(f"{key}.asset", "missing: a neural material needs its baked asset (the folder "
                                        "`neumat bake` writes)")
    asset = t["asset"]
    if not isinstance(asset, str) or not asset:
        raise ctx.error(f"{key}.asset", f"must be a path (a string), got {asset!r}")
    asset_path = Path(asset).expanduser()
    asset_path = asset_path if asset_path.is_absolute() else (ctx.base / asset_path).resolve()
    file = _material_file(ctx, t["file"], f"{key}.file") if "file" in t else None
    return MaterialSpec(kind, file, asset_path, key)


OBJECT_KEYS = ["name", "mesh", "material", "uv_scale", "emission", "translate", "rotate", "scale", "matrix"]


def _objects(ctx: _Ctx, raw) -> list[SceneObject]:
    if raw is None:
        return []
    if not isinstance(raw, list):
        raise ctx.error("objects", "must be an array of tables ([[objects]])")
    objects = []
    for i, item in enumerate(raw):
        key = f"objects[{i}]"
        t = ctx.table(item, key, "an object")
        ctx.keys(t, key, OBJECT_KEYS, "an object")
        name = t.get("name", f"object{i}")
        if not isinstance(name, str):
            raise ctx.error(f"{key}.name", f"must be a string, got {name!r}")
        mesh = _mesh(ctx, t.get("mesh"), f"{key}.mesh")
        material = _material(ctx, t["material"], f"{key}.material") if "material" in t else None
        uv_scale = ctx.vector(t.get("uv_scale", 1.0), f"{key}.uv_scale", 2, scalar_ok=True)
        if np.any(uv_scale == 0.0):
            raise ctx.error(f"{key}.uv_scale", f"must not be 0, got {uv_scale.tolist()}")
        emission = ctx.vector(t.get("emission", 0.0), f"{key}.emission", 3, 0.0, scalar_ok=True)
        objects.append(SceneObject(name, mesh, _transform(ctx, t, key), material,
                                   (float(uv_scale[0]), float(uv_scale[1])), emission, key))
    return objects


def _render(ctx: _Ctx, raw) -> RenderSettings:
    if raw is None:
        return RenderSettings()
    key = "render"
    t = ctx.table(raw, key, "render settings")
    ctx.keys(t, key, ["spp", "max_depth", "rr_depth", "seed", "material_resolution", "material_walks"],
             "render settings")
    s = RenderSettings()
    s.spp = ctx.integer(t.get("spp", s.spp), f"{key}.spp", 1, 1 << 20)
    s.max_depth = ctx.integer(t.get("max_depth", s.max_depth), f"{key}.max_depth", 0, 1024)
    s.rr_depth = ctx.integer(t.get("rr_depth", s.rr_depth), f"{key}.rr_depth", 0, 1024)
    s.seed = ctx.integer(t.get("seed", s.seed), f"{key}.seed", 0, 2**32 - 1)
    s.material_walks = ctx.integer(t.get("material_walks", s.material_walks), f"{key}.material_walks", 1, 64)
    if "material_resolution" in t:
        r = ctx.integer(t["material_resolution"], f"{key}.material_resolution", 1, 8192)
        if r & (r - 1):
            raise ctx.error(f"{key}.material_resolution", f"must be a power of two, got {r}")
        s.material_resolution = r
    return s


def find_scene(name_or_path: str | Path) -> Path:
    """A scene file path, or the name of a built-in scene in assets/scenes (with or without .toml)."""
    p = Path(name_or_path)
    if p.is_file():
        return p
    for candidate in (SCENE_DIR / p.name, SCENE_DIR / f"{p.name}.toml"):
        if p.parent == Path(".") and candidate.is_file():
            return candidate
    builtin = sorted(f.stem for f in SCENE_DIR.glob("*.toml"))
    raise NeumatError(f"{name_or_path}: no such scene file (built-in scenes: {', '.join(builtin)})")


def load_scene(path: str | Path) -> Scene:
    """Parses and validates a scene file; every referenced file must exist."""
    path = find_scene(path).resolve()
    ctx = _Ctx(path)
    try:
        data = tomllib.loads(path.read_text())
    except tomllib.TOMLDecodeError as exc:
        raise ctx.error("", f"TOML syntax error: {exc}") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise ctx.error("", f"cannot read the scene file ({exc})") from None
    ctx.keys(data, "", ["scene", "camera", "environment", "lights", "objects", "render"], "a scene file")
    header = ctx.table(data.get("scene", {}), "scene", "the scene header")
    ctx.keys(header, "scene", ["name", "description"], "the scene header")
    scene = Scene(path=path, name=str(header.get("name", path.stem)), description=str(header.get("description", "")),
                  camera=_camera(ctx, data.get("camera")), environment=_environment(ctx, data.get("environment")),
                  lights=_lights(ctx, data.get("lights")), objects=_objects(ctx, data.get("objects")),
                  render=_render(ctx, data.get("render")))
    if not scene.objects:
        raise ctx.error("objects", "a scene needs at least one [[objects]] entry")
    # Parse each material graph once now, so a broken one is reported before any device work.
    from neumat.renderer.materials.graph import load_material
    seen: set[Path] = set()
    for obj in scene.objects:
        if obj.material is not None and obj.material.file is not None and obj.material.file not in seen:
            seen.add(obj.material.file)
            try:
                load_material(obj.material.file)
            except NeumatError as exc:
                raise ctx.error(obj.material.key, str(exc)) from None
    return scene


NEURAL_ASSET_DIR = ASSET_DIR / "neural"  # where the bake pipeline puts pre-baked assets (<name>.neumat)
REFERENCE, NEURAL = "reference", "neural"


@dataclass
class MaterialAssignment:
    """Which materials a render binds: unique reference files in order, unique neural assets in
    order, and per object its kind ("reference" | "neural", None without a surface) and its index
    into `files` or `assets` by that kind (None where the object has no surface material).

    `object_choices[i]` maps each kind object i can be shown with to its index: only the kind in
    use, unless the assignment was resolved `switchable`, which binds both where both exist (the
    viewer and `neumat compare` flip objects between them without recompiling)."""

    files: list[Path]
    object_material: list[int | None]
    object_kind: list[str | None] = field(default_factory=list)
    assets: list[Path] = field(default_factory=list)
    neural_assets: list = field(default_factory=list)  # the loaded NeuralAsset of each `assets` entry
    object_choices: list[dict[str, int]] = field(default_factory=list)
    unavailable: dict[int, str] = field(default_factory=dict)  # object -> why it has no neural asset

    @property
    def has_neural(self) -> bool:
        return bool(self.assets)


def _bake_hint(m: MaterialSpec, target: Path | None = None) -> str:
    """How to bake the asset an object needs: `neumat bake FILE -o TARGET` (an OUT ending in .neumat
    is the asset itself)."""
    graph = str(m.file) if m.file is not None else "MATERIAL.toml"
    if target is not None and target.suffix == ".neumat":
        return f"`neumat bake {graph} -o {target}`"
    return f"`neumat bake {graph}` (and point asset at the .neumat folder it writes)"


def _neural_asset_for(ctx: _Ctx, obj: SceneObject, mode: str, cache: dict):
    """The asset path of an object's neural material under `mode` and the loaded asset, checked
    against the material graph's source hash when the graph is known."""
    from neumat.renderer.materials.graph import load_material
    from neumat.renderer.neural.asset import load_asset

    m = obj.material
    where = f"--mode {mode}: " if mode == NEURAL else ""
    material = None
    if m.file is not None:
        try:
            material = load_material(m.file)
        except NeumatError as exc:
            raise ctx.error(m.key, str(exc)) from None
    if m.asset is not None:
        path = m.asset
    else:
        path = (NEURAL_ASSET_DIR / f"{material.name}.neumat").resolve()
    if not path.exists():
        default = "" if m.asset is not None else " (the default location of pre-baked assets)"
        raise ctx.error(m.key, f"{where}object '{obj.name}' has no baked neural "
                               f"asset at {path}{default}; bake it with {_bake_hint(m, path)}, or render it "
                               "with --mode reference")
    expect = material.source_hash if material is not None else None
    key = (path, expect)
    if key not in cache:
        try:
            cache[key] = load_asset(path, expect_source_hash=expect)
        except NeumatError as exc:
            stale = "source_hash" in str(exc) and expect is not None
            hint = (f"stale asset: rebake it with {_bake_hint(m, path)}" if stale
                    else f"bake it again with {_bake_hint(m, path)}")
            raise ctx.error(m.key, f"object '{obj.name}': {exc}; {hint}") from None
    return path, cache[key]


def resolve_materials(scene: Scene, mode: str, switchable: bool = False) -> MaterialAssignment:
    """Picks each object's material for `mode`: per-object (each material's kind), reference (every
    object's material graph) or neural (every object's baked asset: `asset`, else the pre-baked
    NEURAL_ASSET_DIR/<material name>.neumat). Neural assets are loaded and checked here (missing,
    unreadable, or baked from another version of the material graph: NeumatError naming the object).

    `switchable` also binds each object's other kind where it exists: its material graph, and its
    neural asset when that loads and matches (else `unavailable` says why, and the object stays
    reference-only)."""
    if mode not in MODES:
        raise NeumatError(f"unknown mode '{mode}' (known: {', '.join(MODES)})")
    ctx = _Ctx(scene.path)
    a = MaterialAssignment([], [])
    cache: dict = {}

    def bind_file(m: MaterialSpec) -> int:
        if m.file not in a.files:
            a.files.append(m.file)
        return a.files.index(m.file)

    def bind_asset(obj: SceneObject) -> int:
        path, asset = _neural_asset_for(ctx, obj, mode, cache)
        if path not in a.assets:
            a.assets.append(path)
            a.neural_assets.append(asset)
        return a.assets.index(path)

    for i, obj in enumerate(scene.objects):
        m = obj.material
        choices: dict[str, int] = {}
        a.object_choices.append(choices)
        if m is None:
            a.object_material.append(None)
            a.object_kind.append(None)
            continue
        kind = NEURAL if mode == NEURAL or (mode == "per-object" and m.kind == NEURAL) else REFERENCE
        if kind == NEURAL:
            choices[NEURAL] = bind_asset(obj)
        elif m.file is None:
            raise ctx.error(f"{m.key}.file", "missing: --mode reference needs the reference material graph "
                                             "(.toml) of this neural material")
        if switchable or kind == REFERENCE:
            if m.file is not None:
                choices[REFERENCE] = bind_file(m)
            if kind == REFERENCE and switchable:
                try:
                    choices[NEURAL] = bind_asset(obj)
                except NeumatError as exc:
                    a.unavailable[i] = str(exc)
        a.object_material.append(choices[kind])
        a.object_kind.append(kind)
    return a
