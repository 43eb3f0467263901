"""Scene files, meshes and environment tables without rendering: parsing, validation messages,
procedural shapes and their uv/tangent conventions, mesh files through trimesh, and the
environment's sampling distribution. Bad input through the CLI: one message naming the file and
the field, exit code 2, nothing written."""

import numpy as np
import pytest

from neumat.cli import main
from neumat.renderer.scene.environment import build_distribution, direction_to_uv, uv_to_direction
from neumat.renderer.core.errors import NeumatError
from neumat.renderer.scene.meshes import SHAPES, load_mesh_file, procedural, write_obj
from neumat.renderer.scene.scene_file import SCENE_DIR, load_scene, resolve_materials
from scene_helpers import camera, diffuse, scene

BUILTIN = ("material_ball", "teapot", "stage")


@pytest.mark.parametrize("name", BUILTIN)
def test_builtin_scenes_load(name):
    s = load_scene(name)
    assert s.path == SCENE_DIR / f"{name}.toml"
    assignment = resolve_materials(s, "reference")
    assert assignment.files
    if name == "stage":  # all six bundled materials, near and far
        assert {f.stem for f in assignment.files} == {"brushed_metal", "car_paint", "glazed_ceramic",
                                                      "patinated_brass", "worn_plastic", "woven_fabric"}
        eye = s.camera.position
        dist = [np.linalg.norm(o.transform[:3, 3] - eye) for o in s.objects if o.material and o.name != "floor"]
        assert min(dist) < 4.5 and max(dist) > 30


@pytest.mark.parametrize("shape", SHAPES)
def test_procedural_shapes_have_consistent_attributes(shape):
    m = procedural(shape, {})
    p, i = m.positions, m.indices.astype(np.int64)
    assert m.normals.shape == p.shape and m.uvs.shape == (len(p), 2) and m.tangents.shape == (len(p), 4)
    np.testing.assert_allclose(np.linalg.norm(m.normals, axis=1), 1.0, atol=1e-5)
    np.testing.assert_allclose(np.abs((m.tangents[:, :3] * m.normals).sum(1)), 0.0, atol=1e-5)
    face = np.cross(p[i[:, 1]] - p[i[:, 0]], p[i[:, 2]] - p[i[:, 0]])
    assert np.all((face * m.normals[i].sum(1)).sum(1) > 0), "triangles wind counter-clockwise seen from outside"
    # Image rows run down the shapes (v = 1 - v_up), so (dP/du, dP/dv, n) is left-handed everywhere.
    assert np.all(m.tangents[np.unique(i), 3] == -1.0)
    # The tangent follows dP/du: along the triangle's u gradient.
    uv = m.uvs[i]
    e1, e2 = p[i[:, 1]] - p[i[:, 0]], p[i[:, 2]] - p[i[:, 0]]
    d1, d2 = uv[:, 1] - uv[:, 0], uv[:, 2] - uv[:, 0]
    det = d1[:, 0] * d2[:, 1] - d2[:, 0] * d1[:, 1]
    ok = np.abs(det) > 1e-9
    dpdu = (e1 * d2[:, 1:2] - e2 * d1[:, 1:2])[ok] / det[ok, None]
    assert np.mean((dpdu * m.tangents[i[ok, 0], :3]).sum(1) > 0) > 0.99


def test_sphere_uv_layout():
    m = procedural("sphere", {"radius": 2.0})
    north = m.positions[:, 1] > 1.999
    assert np.all(m.uvs[north, 1] == 0.0)  # image row 0 at the top
    front = (np.abs(m.positions[:, 1]) < 1e-6) & (m.positions[:, 2] > 1.999)
    np.testing.assert_allclose(m.uvs[front, 0], 0.5, atol=1e-6)  # u = 0.5 faces +z, the seam faces -z


def test_obj_files_normals_and_uvs(tmp_path):
    m = procedural("torus", {"segments": 16, "sides": 8})
    write_obj(m, tmp_path / "t.obj")
    back = load_mesh_file(tmp_path / "t.obj")
    np.testing.assert_allclose(back.positions, m.positions, atol=1e-5)
    np.testing.assert_allclose(back.uvs, m.uvs, atol=1e-5)
    np.testing.assert_allclose(back.normals, m.normals, atol=1e-5)
    np.testing.assert_array_equal(back.tangents[:, 3], m.tangents[:, 3])
    # Without normals in the file they are computed, smooth across the uv seam.
    lines = [ln for ln in (tmp_path / "t.obj").read_text().splitlines() if not ln.startswith("vn")]
    (tmp_path / "nonormals.obj").write_text("\n".join(_strip_normal_refs(ln) for ln in lines))
    computed = load_mesh_file(tmp_path / "nonormals.obj")
    cos = (computed.normals * m.normals).sum(1)
    assert np.percentile(cos, 5) > 0.97


def _strip_normal_refs(line: str) -> str:
    if not line.startswith("f "):
        return line
    return "f " + " ".join("/".join(v.split("/")[:2]) for v in line.split()[1:])


def test_gltf_file_with_node_transform(tmp_path):
    import trimesh

    m = procedural("box", {})
    tm = trimesh.Trimesh(m.positions, m.indices, vertex_normals=m.normals, process=False,
                         visual=trimesh.visual.TextureVisuals(uv=np.stack([m.uvs[:, 0], 1 - m.uvs[:, 1]], 1)))
    sc = trimesh.Scene()
    sc.add_geometry(tm, node_name="box", transform=trimesh.transformations.translation_matrix([0, 2, 0]))
    (tmp_path / "b.glb").write_bytes(trimesh.exchange.gltf.export_glb(sc, include_normals=True))
    back = load_mesh_file(tmp_path / "b.glb")
    np.testing.assert_allclose(back.positions.mean(0), [0, 2, 0], atol=1e-5)
    np.testing.assert_allclose(back.uvs, m.uvs, atol=1e-5)


def test_mesh_without_uvs_needs_a_projection(tmp_path):
    (tmp_path / "tri.obj").write_text("v 0 0 0\nv 1 0 0\nv 0 1 0\nv 1 1 0\nf 1 2 3\nf 2 4 3\n")
    with pytest.raises(NeumatError, match="has no texture coordinates; set uv_projection"):
        load_mesh_file(tmp_path / "tri.obj")
    for projection in ("planar", "box", "spherical", "cylindrical"):
        m = load_mesh_file(tmp_path / "tri.obj", projection)
        assert np.all(np.isfinite(m.uvs)) and np.ptp(m.uvs, axis=0).max() > 0


def test_environment_distribution_is_a_density():
    rng = np.random.default_rng(1)
    env = rng.random((32, 64, 3)).astype(np.float32)
    env[10, 20] = 500.0  # a sun
    env[:, :5] = 0.0     # a black stripe: zero probability only where bilinear lookup stays black
    d = build_distribution(env)
    assert d.marginal[0] == 0 and d.marginal[-1] == 1 and np.all(np.diff(d.marginal) >= 0)
    np.testing.assert_allclose(d.density.mean(), 1.0, rtol=1e-5)  # integrates to 1 over [0, 1)^2
    assert d.density[10, 20] == d.density.max()
    assert np.all(d.density[:, 1:4] == 0) and np.all(d.density[:, 0] > 0) and np.all(d.density[:, 4] > 0)
    dirs = uv_to_direction(rng.random((100, 2)))
    np.testing.assert_allclose(uv_to_direction(direction_to_uv(dirs)), dirs, atol=1e-6)
    assert build_distribution(np.zeros((4, 8, 3), np.float32)) is None


# --- bad input ------------------------------------------------------------------------------------

def _run(args, capsys):
    code = main(["render", *map(str, args)])
    err = capsys.readouterr().err
    return code, err


def _bad_scene(tmp_path, objects: str, cam: str | None = None, extra: str = "") -> str:
    diffuse(tmp_path, "grey", (0.5, 0.5, 0.5))
    return scene(tmp_path, (cam or camera()) + extra + objects, "bad").name


@pytest.mark.parametrize("case, message", [
    ("missing_material", "bad.toml: objects[1].material: no such file"),
    ("missing_mesh", "bad.toml: objects[0].mesh: no such file"),
    ("unknown_shape", "bad.toml: objects[0].mesh: 'spere' is neither a built-in shape"),
    ("up_parallel", "bad.toml: camera.up: [0.0, 1.0, 0.0] is parallel to the view direction"),
    ("fov_zero", "bad.toml: camera.fov: must be in (0, 180), got 0"),
    ("fov_large", "bad.toml: camera.fov: must be in (0, 180), got 180"),
    ("fov_tiny", "bad.toml: camera.fov: vertical field of view must be in [0.5, 170]"),
    ("unknown_field", "bad.toml: objects[0].materail: unknown field for an object (did you mean 'material'?)"),
    ("neural_object", "bad.toml: objects[0].material: object 'object0' has no baked neural asset"),
    ("no_uvs", "bad.toml: objects[0].mesh: tri.obj has no texture coordinates"),
    ("bad_env", "bad.toml: environment.file: no such file"),
    ("negative_emission", "bad.toml: objects[0].emission[1]: must be >= 0"),
])
def test_bad_scene_is_one_message_naming_file_and_field(tmp_path, capsys, case, message):
    ok = 'mesh = "sphere"\nmaterial = "grey.toml"\n'
    cam, extra = None, ""
    objects = {
        "missing_material": f"[[objects]]\n{ok}\n[[objects]]\nmesh = \"box\"\nmaterial = \"nothere.toml\"\n",
        "missing_mesh": "[[objects]]\nmesh = \"models/gone.obj\"\nmaterial = \"grey.toml\"\n",
        "unknown_shape": "[[objects]]\nmesh = \"spere\"\n",
        "unknown_field": "[[objects]]\nmesh = \"sphere\"\nmaterail = \"grey.toml\"\n",
        "neural_object": "[[objects]]\nmesh = \"sphere\"\nmaterial = { kind = \"neural\", asset = \"baked/grey\", "
                         "file = \"grey.toml\" }\n",
        "no_uvs": "[[objects]]\nmesh = \"tri.obj\"\nmaterial = \"grey.toml\"\n",
        "negative_emission": "[[objects]]\nmesh = \"sphere\"\nemission = [1, -1, 1]\n",
    }.get(case, f"[[objects]]\n{ok}")
    if case == "up_parallel":
        cam = camera(position=(0, 5, 0), target=(0, 0, 0))
    elif case.startswith("fov"):
        cam = camera(fov={"fov_zero": 0, "fov_large": 180, "fov_tiny": 0.1}[case])
    elif case == "bad_env":
        extra = "[environment]\ntype = \"map\"\nfile = \"sky.exr\"\n"
    if case == "no_uvs":
        (tmp_path / "tri.obj").write_text("v 0 0 0\nv 1 0 0\nv 0 1 0\nf 1 2 3\n")
    name = _bad_scene(tmp_path, objects, cam, extra)
    out = tmp_path / "out.png"
    before = set(tmp_path.iterdir())
    code, err = _run([tmp_path / name, "-o", out, "--spp", 1], capsys)
    assert code == 2, err
    assert message in err, err
    assert err.count("\n") == 1 and "Traceback" not in err
    assert set(tmp_path.iterdir()) == before  # nothing written


def test_bad_options(tmp_path, capsys):
    name = _bad_scene(tmp_path, '[[objects]]\nmesh = "sphere"\nmaterial = "grey.toml"\n')
    path = tmp_path / name
    before = set(tmp_path.iterdir())
    for args, message in [
        ((path, "--mode", "neural", "-o", tmp_path / "o.png"), "--mode neural: object"),
        ((path, "--spp", 0, "-o", tmp_path / "o.png"), "--spp must be >= 1"),
        ((path, "-o", tmp_path / "o.tiff"), "unknown image extension"),
        ((path, "-o", tmp_path / "no" / "o.png"), "does not exist"),
        ((tmp_path / "none.toml",), "no such scene file"),
    ]:
        code, err = _run(args, capsys)
        assert code == 2 and message in err, (args, err)
    with pytest.raises(SystemExit) as exc:  # argparse rejects an unknown mode itself
        main(["render", str(path), "--mode", "fast"])
    assert exc.value.code == 2
    assert "invalid choice: 'fast'" in capsys.readouterr().err
    with pytest.raises(NeumatError, match="unknown mode 'fast'"):
        resolve_materials(load_scene(path), "fast")
    assert set(tmp_path.iterdir()) == before


def test_neural_mode_without_materials_is_fine(tmp_path):
    path = scene(tmp_path, camera() + "[[objects]]\nmesh = \"plane\"\nemission = 1\n")
    assert resolve_materials(load_scene(path), "neural").files == []


def test_material_kinds_per_mode(tmp_path):
    """A neural material entry renders its reference graph under --mode reference; per-object and
    neural modes say that the asset has not been baked."""
    diffuse(tmp_path, "grey", (0.5, 0.5, 0.5))
    diffuse(tmp_path, "red", (0.8, 0.1, 0.1))
    path = scene(tmp_path, camera() + """
[[objects]]
mesh = "sphere"
material = { kind = "neural", asset = "baked/grey", file = "grey.toml" }
[[objects]]
mesh = "box"
material = "red.toml"
[[objects]]
mesh = "plane"
material = "grey.toml"
""")
    s = load_scene(path)
    a = resolve_materials(s, "reference")
    assert [f.name for f in a.files] == ["grey.toml", "red.toml"] and a.object_material == [0, 1, 0]
    for mode in ("per-object", "neural"):
        with pytest.raises(NeumatError, match=r"scene.toml: objects\[0\].material: (--mode neural: )?object 'object0' has no baked "
                                              "neural asset at .*baked.grey; bake it with"):
            resolve_materials(s, mode)


@pytest.mark.parametrize("body, key", [
    ('[[objects]]\nmesh = "sphere"\nemission = 1e300\n', "objects[0].emission"),
    ('[[objects]]\nmesh = "sphere"\nrotate = [0, 1e300, 0]\n', "objects[0].rotate[1]"),
    ('[[objects]]\nmesh = { shape = "sphere", radius = 1e39 }\n', "objects[0].mesh.radius"),
    ('[environment]\ntype = "constant"\nintensity = 1e300\n[[objects]]\nmesh = "sphere"\n', "environment.intensity"),
    ('[[lights]]\nposition = [0, 1e300, 0]\n[[objects]]\nmesh = "sphere"\n', "lights[0].position[1]"),
])
def test_numbers_that_overflow_float32_name_file_and_field(tmp_path, body, key):
    """Finite as Python floats, infinite as the GPU's float32: an error, not a black render."""
    path = scene(tmp_path, camera() + body, "big")
    with pytest.raises(NeumatError) as info:
        load_scene(path)
    assert str(info.value).startswith(f"big.toml: {key}: must be finite in 32-bit"), str(info.value)


def test_a_mesh_with_a_nan_vertex_names_the_file_and_the_vertex(tmp_path, capsys):
    """One NaN vertex used to make the whole mesh vanish silently, valid triangles too."""
    (tmp_path / "quad.obj").write_text("v 0 0 0\nv 1 0 0\nv 0 1 0\nv 1 1 nan\nvt 0 0\nvt 1 0\nvt 0 1\nvt 1 1\n"
                                       "f 1/1 2/2 3/3\nf 2/2 4/4 3/3\n")
    with pytest.raises(NeumatError, match=r"m: quad.obj: vertex 3 .*non-finite position \[1.0, 1.0, nan\]"):
        load_mesh_file(tmp_path / "quad.obj", where="m")
    name = _bad_scene(tmp_path, '[[objects]]\nmesh = "quad.obj"\nmaterial = "grey.toml"\n')
    before = set(tmp_path.iterdir())
    code, err = _run([tmp_path / name, "-o", tmp_path / "out.png", "--spp", 1], capsys)
    assert code == 2 and "bad.toml: objects[0].mesh: quad.obj: vertex 3" in err, err
    assert err.count("\n") == 1 and set(tmp_path.iterdir()) == before


def test_a_transform_that_takes_a_mesh_beyond_float32_is_an_error(tmp_path):
    from neumat.renderer.pathtracer.tracer import load_meshes

    path = scene(tmp_path, camera() + '[[objects]]\nmesh = { shape = "sphere", radius = 1e10 }\nscale = 1e30\n', "far")
    with pytest.raises(NeumatError, match=r"^far.toml: objects\[0\]: its transform takes the mesh .* beyond 32-bit"):
        load_meshes(load_scene(path))
