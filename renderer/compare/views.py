"""The fixed views on which `neumat compare --material` measures a neural material against its
reference, after the paper's fidelity table: a ball and a flat tile under the studio environment,
seen whole, in close-up (latent level 0 magnified), from far away (coarse latent levels) and at a
grazing angle.

Each view shows one shape alone in its own scene, so no shape reflects or shadows another. The
floor repeats the material every FLOOR_REPEAT units, as on the `stage` scene. `View.key()` is part
of the reference cache's key: any change to a view's geometry renders its reference again."""

import math
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np

FLOOR_REPEAT = 2.0  # world units per repeat of the material's texture on the floor


@dataclass(frozen=True)
class Shape:
    """One object, alone in the scene of the views that show it."""
    name: str
    mesh: str                        # a built-in shape (renderer/scene/meshes.py procedural)
    params: tuple                    # ((name, value), ...) of the mesh
    uv_scale: tuple[float, float]
    rotate_y: float = 0.0            # degrees about +y


@dataclass(frozen=True)
class View:
    name: str
    shape: str                       # a SHAPES key
    position: tuple[float, float, float]
    target: tuple[float, float, float]
    fov: float                       # vertical, degrees
    shows: str                       # what the view is for, for the report

    def key(self) -> dict:
        return {**asdict(self), "shape": asdict(SHAPES[self.shape])}


SHAPES = {
    # uv_scale (2, 1) keeps texels square around the equator (as on the material_ball scene).
    "ball": Shape("ball", "sphere", (("radius", 1.0), ("segments", 192), ("rings", 96)), (2.0, 1.0), 20.0),
    "floor": Shape("floor", "plane", (("size", [120.0, 120.0]),), (120.0 / FLOOR_REPEAT, 120.0 / FLOOR_REPEAT)),
}

# In the order --views N takes them: the first views give the broadest picture.
VIEWS = (
    View("ball", "ball", (0.0, 0.9, 3.7), (0.0, 0.0, 0.0), 36.0,
         "the whole ball: every angle between the surface and the view at once"),
    View("tile_closeup", "floor", (0.0, 0.55, 0.38), (0.0, 0.0, 0.0), 30.0,
         "a close-up of the tile: latent level 0, magnified"),
    View("tile_far", "floor", (0.0, 30.0, 30.0), (0.0, 0.0, 0.0), 30.0,
         "the tiled floor from far away: coarse latent levels"),
    View("tile_grazing", "floor", (0.0, 0.35, 3.0), (0.0, 0.0, 0.0), 30.0,
         "the floor at grazing angles (about 80-88 degrees from the normal)"),
    View("ball_closeup", "ball", (0.35, 0.75, 2.1), (0.15, 0.3, 0.9), 28.0,
         "a close-up of the ball's upper front: latent level 0 on a curved surface"),
)


def _rotation_y(degrees: float) -> np.ndarray:
    a = math.radians(degrees)
    m = np.eye(4)
    m[0, 0], m[0, 2], m[2, 0], m[2, 2] = math.cos(a), math.sin(a), -math.sin(a), math.cos(a)
    return m


def shape_scene(shape: Shape, material_file: Path, asset: Path, size: int):
    """A scene (renderer.scene.scene_file.Scene) of one shape under the studio environment, its material
    bound both ways (reference graph and neural asset); the camera is set per view (view_camera)."""
    from neumat.renderer.scene.scene_file import EnvironmentSpec, MaterialSpec, MeshSpec, RenderSettings, Scene, SceneObject

    obj = SceneObject(name=shape.name, mesh=MeshSpec(shape.mesh, dict(shape.params), None, "none", "objects[0].mesh"),
                      transform=_rotation_y(shape.rotate_y), uv_scale=shape.uv_scale, emission=np.zeros(3),
                      material=MaterialSpec("reference", material_file, asset, "objects[0].material"),
                      key="objects[0]")
    return Scene(path=asset, name=shape.name, description=f"neumat compare --material: {shape.name}",
                 camera=view_camera(next(v for v in VIEWS if v.shape == shape.name), size),
                 environment=EnvironmentSpec(type="studio"), lights=[], objects=[obj], render=RenderSettings())


def view_camera(view: View, size: int):
    """The view's camera, `size` pixels square."""
    from neumat.renderer.scene.scene_file import Camera

    return Camera(np.array(view.position, float), np.array(view.target, float), np.array([0.0, 1.0, 0.0]),
                  view.fov, size, size)
