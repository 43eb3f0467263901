"""Triangle meshes for scenes: built-in procedural shapes, OBJ/glTF files through trimesh, and the
per-vertex attributes the path tracer needs (positions, normals, uvs, tangents).

Conventions (docs/scenes.md)
- World space is y-up. Every mesh carries per-vertex normals, uvs and tangents; the tangent's w is
  the handedness: bitangent = w * cross(normal, tangent), and (tangent, bitangent, normal) follows
  (dP/du, dP/dv, n), right-handed (w = +1) wherever the uv layout is not mirrored.
- uv follows docs/materials.md, "Conventions": texel row 0 at v near 0. Files store uvs with v running up
  from the image's bottom (OBJ's convention; trimesh converts glTF to it), so loaders use 1 - v: an
  image texture then appears upright as in the modelling tool.
- Missing normals are computed (area-weighted, welded by position so uv seams do not crease the
  shading). Missing uvs are an error unless a projection is asked for (`uv_projection`).
"""

import math
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from neumat.renderer.core.errors import NeumatError

SHAPES = ("sphere", "plane", "box", "torus", "teapot")
UV_PROJECTIONS = ("none", "planar", "box", "spherical", "cylindrical")
MESH_EXTENSIONS = (".obj", ".gltf", ".glb")


@dataclass
class Mesh:
    """An indexed triangle mesh with every attribute the renderer reads."""

    positions: np.ndarray  # [N, 3] float32
    normals: np.ndarray    # [N, 3] float32, unit length
    uvs: np.ndarray        # [N, 2] float32
    tangents: np.ndarray   # [N, 4] float32: unit xyz orthogonal to the normal, w = +-1 handedness
    indices: np.ndarray    # [T, 3] uint32
    name: str = "mesh"

    @property
    def vertex_count(self) -> int:
        return int(self.positions.shape[0])

    @property
    def triangle_count(self) -> int:
        return int(self.indices.shape[0])

    def vertex_data(self) -> np.ndarray:
        """[N, 12] float32 rows as the shader reads them: (x, y, z, u), (nx, ny, nz, v), tangent."""
        return np.ascontiguousarray(np.concatenate(
            [self.positions, self.uvs[:, :1], self.normals, self.uvs[:, 1:], self.tangents], axis=1),
            dtype=np.float32)


def _normalize(v: np.ndarray, fallback: np.ndarray | None = None) -> np.ndarray:
    length = np.linalg.norm(v, axis=-1, keepdims=True)
    out = v / np.maximum(length, 1e-30)
    if fallback is not None:
        out = np.where(length > 1e-20, out, fallback)
    return out


def _any_perpendicular(n: np.ndarray) -> np.ndarray:
    """A unit vector perpendicular to each row of n."""
    a = np.where(np.abs(n[:, :1]) < 0.9, np.array([[1.0, 0.0, 0.0]]), np.array([[0.0, 1.0, 0.0]]))
    return _normalize(np.cross(n, a))


def compute_normals(positions: np.ndarray, indices: np.ndarray) -> np.ndarray:
    """Area-weighted vertex normals, shared by all vertices at the same position."""
    p = positions.astype(np.float64)
    tri = p[indices]
    face = np.cross(tri[:, 1] - tri[:, 0], tri[:, 2] - tri[:, 0])  # length = 2 * area
    _, weld = np.unique(np.round(p, 6), axis=0, return_inverse=True)
    weld = weld.ravel()
    acc = np.zeros((weld.max() + 1, 3))
    for k in range(3):
        np.add.at(acc, weld[indices[:, k]], face)
    n = acc[weld]
    return _normalize(n, np.array([0.0, 1.0, 0.0])).astype(np.float32)


def compute_tangents(positions: np.ndarray, normals: np.ndarray, uvs: np.ndarray, indices: np.ndarray
                     ) -> np.ndarray:
    """Per-vertex tangents [N, 4] from the uv gradients: xyz = dP/du made orthogonal to the normal,
    w = +1 where (dP/du, dP/dv, n) is right-handed, -1 where the uv layout is mirrored."""
    p = positions.astype(np.float64)
    uv = uvs.astype(np.float64)
    n = normals.astype(np.float64)
    e1 = p[indices[:, 1]] - p[indices[:, 0]]
    e2 = p[indices[:, 2]] - p[indices[:, 0]]
    d1 = uv[indices[:, 1]] - uv[indices[:, 0]]
    d2 = uv[indices[:, 2]] - uv[indices[:, 0]]
    det = d1[:, 0] * d2[:, 1] - d2[:, 0] * d1[:, 1]
    ok = np.abs(det) > 1e-12
    inv = np.where(ok, 1.0 / np.where(ok, det, 1.0), 0.0)[:, None]
    dpdu = (e1 * d2[:, 1:2] - e2 * d1[:, 1:2]) * inv
    dpdv = (e2 * d1[:, 0:1] - e1 * d2[:, 0:1]) * inv
    # Weight each triangle by its area, independent of its uv scale.
    area = np.linalg.norm(np.cross(e1, e2), axis=1)[:, None]
    dpdu = _normalize(dpdu) * area
    dpdv = _normalize(dpdv) * area
    tu = np.zeros_like(p)
    tv = np.zeros_like(p)
    for k in range(3):
        np.add.at(tu, indices[:, k], dpdu)
        np.add.at(tv, indices[:, k], dpdv)
    t = tu - n * np.sum(n * tu, axis=1, keepdims=True)
    t = _normalize(t, _any_perpendicular(n))
    w = np.where(np.sum(np.cross(n, t) * tv, axis=1) < 0.0, -1.0, 1.0)
    return np.concatenate([t, w[:, None]], axis=1).astype(np.float32)


def make_mesh(positions, indices, uvs, normals=None, name: str = "mesh") -> Mesh:
    """A Mesh from raw arrays; normals are computed when None, tangents always."""
    positions = np.ascontiguousarray(positions, dtype=np.float32)
    indices = np.ascontiguousarray(indices, dtype=np.uint32).reshape(-1, 3)
    uvs = np.ascontiguousarray(uvs, dtype=np.float32)
    normals = compute_normals(positions, indices) if normals is None else \
        _normalize(np.asarray(normals, np.float64), np.array([0.0, 1.0, 0.0])).astype(np.float32)
    tangents = compute_tangents(positions, normals, uvs, indices)
    return Mesh(positions, normals, uvs, tangents, indices, name)


# --- Procedural shapes ---------------------------------------------------------------------------

def _grid_indices(rows: int, cols: int) -> np.ndarray:
    """Two triangles per cell of a (rows + 1) x (cols + 1) vertex grid (row-major), counter-clockwise
    when rows run along +v and columns along +u of a right-handed (u, v, n) layout."""
    r, c = np.meshgrid(np.arange(rows), np.arange(cols), indexing="ij")
    a = (r * (cols + 1) + c).ravel()
    b = a + 1
    d = a + cols + 1
    e = d + 1
    return np.stack([np.stack([a, b, e], 1), np.stack([a, e, d], 1)], 1).reshape(-1, 3)


def sphere(radius: float = 1.0, segments: int = 96, rings: int = 48) -> Mesh:
    """A UV sphere around the origin: u = longitude / 2 pi around +y (0.5 on +z, growing towards
    +x; the seam u = 0 | 1 faces -z), v from the south pole (0) to the north pole (1)."""
    u = np.linspace(0.0, 1.0, segments + 1)
    v = np.linspace(0.0, 1.0, rings + 1)
    vv, uu = np.meshgrid(v, u, indexing="ij")
    phi = 2.0 * np.pi * (uu - 0.5)
    theta = np.pi * (1.0 - vv)  # polar angle from +y
    n = np.stack([np.sin(theta) * np.sin(phi), np.cos(theta), np.sin(theta) * np.cos(phi)], -1).reshape(-1, 3)
    uv = np.stack([uu, vv], -1).reshape(-1, 2)
    # Pole rows: move each vertex's u to its cell's centre, so the pole triangles are not slivers in uv.
    uv = uv.copy()
    pole = (uv[:, 1] <= 0.0) | (uv[:, 1] >= 1.0)
    uv[pole, 0] = np.minimum(uv[pole, 0] + 0.5 / segments, 1.0)
    idx = _grid_indices(rings, segments)
    tri = idx.reshape(-1, 3)
    # Drop the triangles that collapse at the poles.
    p = n * radius
    area = np.linalg.norm(np.cross(p[tri[:, 1]] - p[tri[:, 0]], p[tri[:, 2]] - p[tri[:, 0]]), axis=1)
    tri = tri[area > 1e-12 * radius * radius]
    return make_mesh(p, tri, uv, n, name="sphere")


def plane(size=(1.0, 1.0), subdivisions: int = 1) -> Mesh:
    """A rectangle in the xz plane facing +y, centred on the origin: u along +x, v along -z."""
    sx, sz = size
    m = max(int(subdivisions), 1)
    u = np.linspace(0.0, 1.0, m + 1)
    uu, vv = np.meshgrid(u, u, indexing="xy")  # rows along v
    pos = np.stack([(uu - 0.5) * sx, np.zeros_like(uu), (0.5 - vv) * sz], -1).reshape(-1, 3)
    uv = np.stack([uu, vv], -1).reshape(-1, 2)
    normals = np.tile([0.0, 1.0, 0.0], (pos.shape[0], 1))
    return make_mesh(pos, _grid_indices(m, m), uv, normals, name="plane")


def box(size=(1.0, 1.0, 1.0)) -> Mesh:
    """An axis-aligned box centred on the origin; each face maps uv [0, 1]^2 right-handed, with v
    up (+y) on the four sides, and u along +x on the top and bottom."""
    half = np.asarray(size, np.float64) * 0.5
    x, y, z = np.eye(3)
    faces = [(x, -z), (-x, z), (z, x), (-z, -x), (y, x), (-y, x)]  # (normal, u axis)
    pos, uv, nor, idx = [], [], [], []
    for n, t in faces:
        b = np.cross(n, t)
        base = len(pos)
        for cu, cv in [(0, 0), (1, 0), (1, 1), (0, 1)]:
            pos.append((n + (2 * cu - 1) * t + (2 * cv - 1) * b) * half)
            uv.append((cu, cv))
            nor.append(n)
        idx += [(base, base + 1, base + 2), (base, base + 2, base + 3)]
    return make_mesh(np.asarray(pos), np.asarray(idx), np.asarray(uv), np.asarray(nor), name="box")


def lathe(radius: np.ndarray, height: np.ndarray, segments: int, name: str = "lathe") -> Mesh:
    """A surface of revolution about +y of the profile (radius[i], height[i]), listed from the
    bottom up along the outside: u = angle / 2 pi (0.5 on +z, growing towards +x), v = arc length along the
    profile, normalised to [0, 1]. The seam (u = 0 | 1) faces -z, like the sphere's. Normals come
    from the profile's direction."""
    r = np.asarray(radius, np.float64)
    y = np.asarray(height, np.float64)
    seg = np.hypot(np.diff(r), np.diff(y))
    arc = np.concatenate([[0.0], np.cumsum(seg)])
    v = arc / arc[-1]
    dr = np.gradient(r, arc)
    dy = np.gradient(y, arc)
    pn = _normalize(np.stack([dy, -dr], -1))  # profile normal (radial, vertical)
    u = np.linspace(0.0, 1.0, segments + 1)
    vv, uu = np.meshgrid(v, u, indexing="ij")
    phi = 2.0 * np.pi * (uu - 0.5)
    rr = np.repeat(r[:, None], segments + 1, 1)
    yy = np.repeat(y[:, None], segments + 1, 1)
    pos = np.stack([rr * np.sin(phi), yy, rr * np.cos(phi)], -1).reshape(-1, 3)
    nr = np.repeat(pn[:, :1], segments + 1, 1)
    ny = np.repeat(pn[:, 1:], segments + 1, 1)
    nor = np.stack([nr * np.sin(phi), ny, nr * np.cos(phi)], -1).reshape(-1, 3)
    uv = np.stack([uu, vv], -1).reshape(-1, 2)
    tri = _grid_indices(len(r) - 1, segments)
    area = np.linalg.norm(np.cross(pos[tri[:, 1]] - pos[tri[:, 0]], pos[tri[:, 2]] - pos[tri[:, 0]]), axis=1)
    return make_mesh(pos, tri[area > 1e-14], uv, nor, name=name)


def torus(major_radius: float = 1.0, minor_radius: float = 0.35, segments: int = 96, sides: int = 48) -> Mesh:
    """A torus around +y: u = angle around the axis / 2 pi (seam facing -z), v = angle around the tube / 2 pi
    (0 on the outer equator, growing upwards)."""
    u = np.linspace(0.0, 1.0, segments + 1)
    v = np.linspace(0.0, 1.0, sides + 1)
    vv, uu = np.meshgrid(v, u, indexing="ij")
    phi = 2.0 * np.pi * (uu - 0.5)
    psi = 2.0 * np.pi * vv
    ring = major_radius + minor_radius * np.cos(psi)
    pos = np.stack([ring * np.sin(phi), minor_radius * np.sin(psi), ring * np.cos(phi)], -1).reshape(-1, 3)
    nor = np.stack([np.cos(psi) * np.sin(phi), np.sin(psi), np.cos(psi) * np.cos(phi)], -1).reshape(-1, 3)
    uv = np.stack([uu, vv], -1).reshape(-1, 2)
    return make_mesh(pos, _grid_indices(sides, segments), uv, nor, name="torus")


def tube(curve: np.ndarray, radii: np.ndarray, sides: int = 32, name: str = "tube") -> Mesh:
    """A tube of varying radius swept along a polyline (parallel-transported frame), open at both
    ends: u = angle around the tube / 2 pi, v = arc length along the curve, normalised."""
    c = np.asarray(curve, np.float64)
    rad = np.asarray(radii, np.float64)
    d = np.gradient(c, axis=0)
    tan = _normalize(d)
    normal = np.zeros_like(c)
    normal[0] = _any_perpendicular(tan[:1])[0]
    for i in range(1, len(c)):  # parallel transport: remove the new tangent's component
        m = normal[i - 1] - tan[i] * np.dot(normal[i - 1], tan[i])
        normal[i] = m / np.linalg.norm(m)
    binormal = np.cross(tan, normal)
    arc = np.concatenate([[0.0], np.cumsum(np.linalg.norm(np.diff(c, axis=0), axis=1))])
    v = arc / arc[-1]
    u = np.linspace(0.0, 1.0, sides + 1)
    vv, uu = np.meshgrid(v, u, indexing="ij")
    ang = 2.0 * np.pi * uu
    # (u around, v along, n out) is right-handed when the angle turns from normal to binormal.
    out = (np.cos(ang)[..., None] * normal[:, None, :] + np.sin(ang)[..., None] * binormal[:, None, :])
    pos = (c[:, None, :] + rad[:, None, None] * out).reshape(-1, 3)
    uv = np.stack([uu, vv], -1).reshape(-1, 2)
    return make_mesh(pos, _grid_indices(len(c) - 1, sides), uv, out.reshape(-1, 3), name=name)


def _bezier(points, n: int) -> np.ndarray:
    p = np.asarray(points, np.float64)
    t = np.linspace(0.0, 1.0, n)[:, None]
    k = len(p) - 1
    return sum(math.comb(k, i) * (1 - t) ** (k - i) * t ** i * p[i] for i in range(k + 1))


def concatenate(meshes: list[Mesh], name: str) -> Mesh:
    offsets = np.cumsum([0] + [m.vertex_count for m in meshes[:-1]])
    return Mesh(np.concatenate([m.positions for m in meshes]), np.concatenate([m.normals for m in meshes]),
                np.concatenate([m.uvs for m in meshes]), np.concatenate([m.tangents for m in meshes]),
                np.concatenate([m.indices + np.uint32(o) for m, o in zip(meshes, offsets)]).astype(np.uint32),
                name)


def teapot(segments: int = 96) -> Mesh:
    """A procedural teapot-like shape (not the Utah teapot): a lathed body with lid and knob, a
    swept spout on +x and a swept handle on -x. About 2 units wide, standing on y = 0, 1.5 tall.
    Each part keeps its own uv layout (body: lathe, spout and handle: tubes)."""
    # Body + lid profile from the bottom centre outwards, up the belly, over the lid to the knob.
    t = np.linspace(0.0, 1.0, 48)
    bottom_r = np.linspace(0.0, 0.62, 8)[:-1]
    belly = np.pi * t
    body_r = 0.62 + 0.38 * np.sin(belly * 0.92 + 0.12) - 0.1 * t
    body_y = 0.02 + 0.98 * t - 0.02 * np.cos(np.pi * t)
    rim_r = np.array([0.60, 0.58])
    rim_y = np.array([1.03, 1.06])
    lid_t = np.linspace(0.0, 1.0, 16)
    lid_r = 0.56 * np.cos(0.5 * np.pi * lid_t) ** 0.8 + 0.08 * lid_t
    lid_y = 1.06 + 0.18 * np.sin(0.5 * np.pi * lid_t)
    # Knob: a short stem, then a ball (centre 1.37, radius 0.09) closing on the axis.
    stem_y = np.linspace(1.24, 1.31, 4)
    ball_a = np.linspace(-np.arccos(0.07 / 0.09), 0.5 * np.pi, 16)
    knob_r = np.concatenate([[0.07], np.full(3, 0.07), 0.09 * np.cos(ball_a)])
    knob_y = np.concatenate([[1.24], stem_y[1:], 1.37 + 0.09 * np.sin(ball_a)])
    knob_r[-1] = 0.0
    r = np.concatenate([bottom_r, body_r, rim_r, lid_r, knob_r])
    y = np.concatenate([np.zeros_like(bottom_r), body_y, rim_y, lid_y, knob_y])
    keep = np.concatenate([[True], np.hypot(np.diff(r), np.diff(y)) > 1e-6])
    body = lathe(r[keep], y[keep], segments, name="teapot_body")
    spout_curve = _bezier([(0.55, 0.35, 0.0), (1.05, 0.45, 0.0), (1.05, 0.95, 0.0), (1.38, 1.08, 0.0)], 40)
    spout = tube(spout_curve, np.linspace(0.17, 0.065, 40), sides=32, name="teapot_spout")
    handle_curve = _bezier([(-0.75, 0.88, 0.0), (-1.45, 0.98, 0.0), (-1.35, 0.22, 0.0), (-0.8, 0.3, 0.0)], 40)
    handle = tube(handle_curve, np.full(40, 0.07), sides=24, name="teapot_handle")
    return concatenate([body, spout, handle], "teapot")


def procedural(shape: str, params: dict) -> Mesh:
    """A built-in shape by name with its parameters (already validated by the scene loader).

    The shape functions lay uv out with v running up (north, +y, away from the camera on the
    plane); as in files, the scene's meshes then use 1 - v, so that an image texture (row 0 at
    v = 0) appears upright and unmirrored on them. Their frames are therefore left-handed in
    (dP/du, dP/dv, n) terms (tangent w = -1), which shading handles like any mirrored layout."""
    mesh = _procedural_v_up(shape, params)
    uvs = np.stack([mesh.uvs[:, 0], 1.0 - mesh.uvs[:, 1]], 1).astype(np.float32)
    return Mesh(mesh.positions, mesh.normals, uvs, compute_tangents(mesh.positions, mesh.normals, uvs, mesh.indices),
                mesh.indices, mesh.name)


def _procedural_v_up(shape: str, params: dict) -> Mesh:
    if shape == "sphere":
        return sphere(params.get("radius", 1.0), params.get("segments", 96), params.get("rings", 48))
    if shape == "plane":
        size = params.get("size", [1.0, 1.0])
        return plane(size if isinstance(size, (list, tuple)) else (size, size), params.get("subdivisions", 1))
    if shape == "box":
        size = params.get("size", [1.0, 1.0, 1.0])
        return box(size if isinstance(size, (list, tuple)) else (size, size, size))
    if shape == "torus":
        return torus(params.get("major_radius", 1.0), params.get("minor_radius", 0.35),
                     params.get("segments", 96), params.get("sides", 48))
    if shape == "teapot":
        return teapot(params.get("segments", 96))
    raise ValueError(f"unknown shape {shape}")


# --- Files ---------------------------------------------------------------------------------------

def project_uvs(positions: np.ndarray, indices: np.ndarray, normals: np.ndarray, projection: str
                ) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """uvs by a projection in the mesh's own space, in units of its bounding box's largest side
    (planar: along y onto xz; box: per triangle onto the plane its normal faces most; spherical
    and cylindrical: around the box centre, about +y). Returns (positions, indices, normals, uvs);
    `box` unshares vertices between triangles that project differently."""
    lo, hi = positions.min(0), positions.max(0)
    centre = 0.5 * (lo + hi)
    extent = max(float((hi - lo).max()), 1e-12)
    q = (positions - centre) / extent
    if projection == "planar":
        return positions, indices, normals, np.stack([q[:, 0] + 0.5, 0.5 - q[:, 2]], 1)
    if projection in ("spherical", "cylindrical"):
        u = np.arctan2(q[:, 0], q[:, 2]) / (2 * np.pi) + 0.5
        if projection == "spherical":
            v = 1.0 - np.arccos(np.clip(q[:, 1] / np.maximum(np.linalg.norm(q, axis=1), 1e-12), -1, 1)) / np.pi
        else:
            v = q[:, 1] + 0.5
        return positions, indices, normals, np.stack([u, v], 1)
    # box: per-triangle dominant axis of the face normal
    tri = positions[indices]
    fn = np.cross(tri[:, 1] - tri[:, 0], tri[:, 2] - tri[:, 0])
    axis = np.argmax(np.abs(fn), axis=1)
    sign = np.sign(fn[np.arange(len(fn)), axis])
    flat = indices.ravel()
    qp = q[flat]
    ax = np.repeat(axis, 3)
    sg = np.repeat(sign, 3)
    # (u, v) per face so that (dP/du, dP/dv, normal) is right-handed; v runs up (+y) on the sides.
    u = np.select([ax == 0, ax == 1], [-sg * qp[:, 2], qp[:, 0]], sg * qp[:, 0])
    v = np.select([ax == 0, ax == 1], [qp[:, 1], -sg * qp[:, 2]], qp[:, 1])
    uv = np.stack([u + 0.5, v + 0.5], 1)
    return positions[flat], np.arange(len(flat), dtype=np.uint32).reshape(-1, 3), normals[flat], uv


def _trimesh_parts(path: Path) -> list[tuple[dict, np.ndarray]]:
    """(geometry kwargs, 4x4 world transform) per mesh in the file, read without trimesh's
    processing so file normals and uvs survive as stored."""
    import trimesh
    from trimesh.exchange.obj import load_obj

    suffix = path.suffix.lower()
    if suffix == ".obj":
        with open(path) as f:
            kw = load_obj(f, resolver=trimesh.resolvers.FilePathResolver(path.parent), skip_materials=True)
        geoms = kw.get("geometry", {}) if "geometry" in kw else {path.stem: kw}
        return [(g, np.eye(4)) for g in geoms.values()]
    from trimesh.exchange.gltf import load_glb, load_gltf
    if suffix == ".glb":
        with open(path, "rb") as f:
            kw = load_glb(f)
    else:
        with open(path, "rb") as f:
            kw = load_gltf(f, resolver=trimesh.resolvers.FilePathResolver(path.parent))
    scene = trimesh.load(path, force="scene", process=False)  # for the node transforms
    parts = []
    if isinstance(scene, trimesh.Scene):
        for node in scene.graph.nodes_geometry:
            matrix, name = scene.graph[node]
            if name in kw["geometry"]:
                parts.append((kw["geometry"][name], np.asarray(matrix, np.float64)))
    else:
        parts = [(g, np.eye(4)) for g in kw["geometry"].values()]
    return parts


def _check_finite(positions: np.ndarray, faces: np.ndarray, normals, uvs, where: str) -> None:
    """Vertices that triangles use must be finite in float32 (a NaN or inf vertex makes the
    acceleration structure drop the whole mesh, valid triangles too). Unused vertices may be anything."""
    if faces.size and (faces.min() < 0 or faces.max() >= len(positions)):
        raise NeumatError(f"{where}: a face refers to vertex {int(faces.max())}, but there are {len(positions)}")
    used = np.unique(faces)
    for what, values in (("position", positions), ("normal", normals), ("texture coordinate", uvs)):
        if values is None or len(values) != len(positions):
            continue
        v = np.asarray(values, np.float64)[used]
        bad = ~np.all(np.isfinite(v.astype(np.float32)), axis=1)
        if np.any(bad):
            first = int(used[np.argmax(bad)])
            raise NeumatError(f"{where}: vertex {first} (counting from 0) has a non-finite {what} "
                              f"{np.asarray(values, np.float64)[first].tolist()} ({int(bad.sum())} such vertices "
                              "in all); fix or remove them in the modelling tool")


def load_mesh_file(path: str | Path, uv_projection: str = "none", where: str = "mesh") -> Mesh:
    """An OBJ, glTF or GLB file as one Mesh (all its parts, node transforms applied).
    Raises NeumatError (prefixed by `where`) for unreadable files and missing uvs."""
    path = Path(path)
    if not path.is_file():
        raise NeumatError(f"{where}: no such file {path}")
    if path.suffix.lower() not in MESH_EXTENSIONS:
        raise NeumatError(f"{where}: unknown mesh format '{path.suffix}' (use .obj, .gltf or .glb)")
    try:
        parts = _trimesh_parts(path)
    except Exception as exc:  # trimesh raises many kinds on malformed files
        raise NeumatError(f"{where}: cannot read {path.name} ({type(exc).__name__}: {exc})") from None
    meshes = []
    for geom, matrix in parts:
        pos = np.asarray(geom.get("vertices", np.zeros((0, 3))), np.float64)
        faces = np.asarray(geom.get("faces", np.zeros((0, 3))), np.int64)
        if pos.size == 0 or faces.size == 0:
            continue
        if faces.ndim != 2 or faces.shape[1] != 3:
            raise NeumatError(f"{where}: {path.name} has non-triangle faces that were not triangulated")
        normals = geom.get("vertex_normals")
        normals = None if normals is None or len(normals) != len(pos) else np.asarray(normals, np.float64)
        visual = geom.get("visual")
        uv = getattr(visual, "uv", None) if visual is not None else None
        _check_finite(pos, faces, normals, uv, f"{where}: {path.name}")
        pos = pos @ matrix[:3, :3].T + matrix[:3, 3]
        _check_finite(pos, faces, None, None, f"{where}: {path.name} (with its node transforms)")
        if normals is not None:
            normals = normals @ np.linalg.inv(matrix[:3, :3])  # inverse transpose, applied to rows
        if normals is None:
            normals = compute_normals(pos.astype(np.float32), faces.astype(np.uint32))
        if uv is None or len(uv) != len(pos):
            if uv_projection == "none":
                raise NeumatError(
                    f"{where}: {path.name} has no texture coordinates; set uv_projection to one of "
                    f"{', '.join(p for p in UV_PROJECTIONS if p != 'none')} to generate them")
            pos, faces, normals, uv = project_uvs(pos, faces.astype(np.uint32), normals, uv_projection)
        else:
            uv = np.stack([uv[:, 0], 1.0 - uv[:, 1]], 1)
        meshes.append(make_mesh(pos, faces, uv, normals, name=path.stem))
    if not meshes:
        raise NeumatError(f"{where}: {path.name} contains no triangles")
    return meshes[0] if len(meshes) == 1 else concatenate(meshes, path.stem)


def write_obj(mesh: Mesh, path: str | Path) -> Path:
    """Writes positions, uvs (v flipped back to the file convention) and normals as OBJ."""
    path = Path(path)
    with open(path, "w") as f:
        f.write(f"# {mesh.name}, written by neumat\n")
        np.savetxt(f, mesh.positions, fmt="v %.7g %.7g %.7g")
        np.savetxt(f, np.stack([mesh.uvs[:, 0], 1.0 - mesh.uvs[:, 1]], 1), fmt="vt %.7g %.7g")
        np.savetxt(f, mesh.normals, fmt="vn %.7g %.7g %.7g")
        i = mesh.indices.astype(np.int64) + 1
        np.savetxt(f, np.repeat(i, 3, axis=1), fmt="f %d/%d/%d %d/%d/%d %d/%d/%d")
    return path
