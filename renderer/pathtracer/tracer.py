"""The device side of `neumat render`: acceleration structures, scene buffers, the path tracer of
shaders/render/pathtracer.slang and progressive accumulation.

The path tracer runs as a ray-tracing pipeline or, on software devices with ray queries, as a
compute shader that casts its rays inline (`default_ray_casting`; the same shading code, the same
images: on lavapipe the compute shader is faster).

`prepare_render(device, scene, mode)` loads everything a scene references (meshes, material
graphs evaluated into parameter pyramids, the environment) and returns a `PathTracer`;
`PathTracer.render(...)` accumulates samples over several dispatches and returns the image and
the AOVs. Geometry: one BLAS per distinct mesh, one TLAS instance per object (InstanceID() is
the object's index). Materials: every reference material of the scene in one MaterialSet
(ReferenceMaterialSet on the device), every neural material in one NeuralMaterialSet; each instance
carries its material index and kind (reference 0, neural 1).

Neural materials: the scene's assets become one generated set module (renderer/neural/codegen.py,
`neural_set_<hash>`, a switch over the members' networks). The ray-tracing program is compiled
with NEURAL_MATERIALS=1, NEURAL_SET_MODULE / NEURAL_SET_NETWORKS naming that module and its type,
the MLP path's defines, and the generated modules' folder on the include path: once per device
and set (the set's name is stable for the same assets in the same order). A scene without neural
materials compiles the path tracer exactly as before, with no neural code.
"""

import math
import time
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import slangpy as spy

from neumat.renderer.scene.environment import EnvironmentMap, load_environment
from neumat.renderer.core.errors import NeumatError
from neumat.renderer.core.device import is_software_device
from neumat.renderer.core.device_state import device_state
from neumat.renderer.core.kernels import COMPILE_STATS, load_program
from neumat.renderer.scene.meshes import Mesh, load_mesh_file, procedural
from neumat.renderer.core.numbers import FLOAT32_MAX
from neumat.renderer.images.color import luminance
from neumat.renderer.materials.query import MATERIAL_KINDS
from neumat.renderer.scene.scene_file import MaterialAssignment, Scene, resolve_materials

SHADER = "render/pathtracer.slang"
RAY_GEN, MISS_RADIANCE, MISS_SHADOW, CLOSEST_HIT = "rayGen", "missRadiance", "missShadow", "closestHit"
COMPUTE_MAIN = "computeMain"  # the same path tracer as a compute shader with inline ray queries
# Its persistent lanes (threads taking pixels from a queue): 1024 and 4096 measured the same on
# lavapipe, 256 less; a multiple of its [numthreads] (64).
COMPUTE_LANES = 4096
# How rays are cast: "pipeline" (the ray-tracing pipeline, rayGen) or "inline" (ray queries in a
# compute shader, computeMain). default_ray_casting() picks one per device.
RAY_CASTING = ("pipeline", "inline")
HIT_GROUP = "surface"
PAYLOAD_BYTES = 24
NO_MATERIAL = 0xFFFFFFFF
LIGHT_ENVIRONMENT, LIGHT_POINT, LIGHT_AREA = 0, 1, 2
STRATEGIES = {"mis": 0, "bsdf": 1, "light": 2}
AOVS = ("albedo", "normal", "material_id", "lod")
# Paths per dispatch: short dispatches keep the progress bar moving and lavapipe responsive.
PATHS_PER_DISPATCH_SOFTWARE = 1 << 17
PATHS_PER_DISPATCH_GPU = 1 << 22
# Share of next-event samples that go to the environment when the scene also has other lights.
ENVIRONMENT_SHARE = 0.5

# Material kind -> its id on the device (shaders/render/scene_geometry.slang MATERIAL_KIND_*, in this order).
MATERIAL_KIND = {kind: i for i, kind in enumerate(MATERIAL_KINDS)}

_BUILD_USAGE = spy.BufferUsage.shader_resource | spy.BufferUsage.acceleration_structure_build_input


def _neural_variant(neural_set, reference_materials: bool = True) -> tuple:
    """The compile-time identity of the path tracer for a NeuralMaterialSet (None: no neural code):
    (set module name, sorted defines, generated folder). Without `reference_materials` (no object
    can show a reference material) the layered reference code is left out (REFERENCE_MATERIALS 0),
    which cut a cold compile of the all-neural stage on lavapipe from 185 s to 62 s."""
    if neural_set is None:
        return ()
    module = neural_set.module
    defines = {"NEURAL_MATERIALS": "1", "NEURAL_SET_MODULE": module.name,
               "NEURAL_SET_NETWORKS": module.networks_type, **neural_set.defines()}
    if not reference_materials:
        defines["REFERENCE_MATERIALS"] = "0"
    return (module.name, tuple(sorted(defines.items())), str(module.directory))


def default_ray_casting(device: spy.Device) -> str:
    """'inline' (computeMain: ray queries in a compute shader) on software devices with ray queries,
    where it measured 1.14x the pipeline's speed on lavapipe (the pipeline's emulation splits the
    ray-generation shader at every TraceRay and spills its live state; docs/performance.md,
    "The path tracer against Mitsuba 3"); 'pipeline' elsewhere: GPU drivers may lack ray queries
    (the H200's does) and the pipeline is what was measured on GPUs."""
    if is_software_device(device) and device.has_feature(spy.Feature.ray_query):
        return "inline"
    return "pipeline"


def _pipeline(device: spy.Device, variant: tuple = (), casting: str = "pipeline") -> dict:
    """The compiled path tracer for a device, neural variant (_neural_variant; () is the
    reference-only path tracer) and ray casting (RAY_CASTING), compiled once per device:
    {"program", "pipeline", "table"} for the ray-tracing pipeline, {"program", "kernel"} inline."""
    pipelines = device_state(device, __name__)
    key = (variant, casting)
    if key not in pipelines:
        start = time.perf_counter()
        defines, include_dirs = (dict(variant[1]), [variant[2]]) if variant else (None, ())
        what = f" with the neural set {variant[0]}" if variant else ""
        if casting == "inline":
            program = load_program(device, SHADER, [COMPUTE_MAIN], defines, include_dirs, what)
            try:
                kernel = device.create_compute_kernel(program)
            except Exception as exc:  # slangpy raises SlangCompileError and RuntimeError
                raise NeumatError(f"Slang compilation of {SHADER}:{COMPUTE_MAIN}{what} failed:\n{exc}") from exc
            COMPILE_STATS.seconds += time.perf_counter() - start
            COMPILE_STATS.programs += 1
            pipelines[key] = {"program": program, "kernel": kernel, "warm": False}
            return pipelines[key]
        program = load_program(device, SHADER, [RAY_GEN, MISS_RADIANCE, MISS_SHADOW, CLOSEST_HIT], defines,
                               include_dirs, what)
        try:
            pipeline = device.create_ray_tracing_pipeline(
                program=program, hit_groups=[spy.HitGroupDesc(hit_group_name=HIT_GROUP, closest_hit_entry_point=CLOSEST_HIT)],
                max_recursion=1, max_ray_payload_size=PAYLOAD_BYTES, max_attribute_size=8, label="pathtracer")
            table = device.create_shader_table(program=program, ray_gen_entry_points=[RAY_GEN],
                                               miss_entry_points=[MISS_RADIANCE, MISS_SHADOW],
                                               hit_group_names=[HIT_GROUP])
        except Exception as exc:  # slangpy raises SlangCompileError and RuntimeError
            raise NeumatError(f"Slang compilation of {SHADER}{what} failed:\n{exc}") from exc
        COMPILE_STATS.seconds += time.perf_counter() - start
        COMPILE_STATS.programs += 1
        pipelines[key] = {"program": program, "pipeline": pipeline, "table": table, "warm": False}
    return pipelines[key]


@dataclass
class RenderResult:
    image: np.ndarray                 # [H, W, 3] linear radiance
    aovs: dict[str, np.ndarray]       # albedo [H, W, 3], normal [H, W, 3], material_id [H, W], lod [H, W]
    spp: int
    seconds: float                    # rendering only (no compilation, no loading)
    dropped_samples: int = 0          # samples with a non-finite value (left out of the mean)

    @property
    def ms_per_spp(self) -> float:
        return 1000.0 * self.seconds / max(self.spp, 1)

    @property
    def samples_per_second(self) -> float:
        h, w = self.image.shape[:2]
        return self.spp * w * h / max(self.seconds, 1e-12)


@dataclass
class LoadStats:
    meshes: float = 0.0
    materials: float = 0.0
    environment: float = 0.0
    build: float = 0.0
    triangles: int = 0


def _blas(device: spy.Device, vertices: spy.Buffer, indices: spy.Buffer, vertex_offset: int, vertex_count: int,
          index_offset: int, index_count: int) -> spy.AccelerationStructure:
    tri = spy.AccelerationStructureBuildInputTriangles({
        "vertex_buffers": [spy.BufferOffsetPair(vertices, vertex_offset * 48)],
        "vertex_format": spy.Format.rgb32_float, "vertex_count": vertex_count, "vertex_stride": 48,
        "index_buffer": spy.BufferOffsetPair(indices, index_offset * 4), "index_format": spy.IndexFormat.uint32,
        "index_count": index_count, "flags": spy.AccelerationStructureGeometryFlags.opaque})
    desc = spy.AccelerationStructureBuildDesc({"inputs": [tri],
                                               "flags": spy.AccelerationStructureBuildFlags.prefer_fast_trace})
    sizes = device.get_acceleration_structure_sizes(desc)
    scratch = device.create_buffer(size=max(sizes.scratch_size, 16), usage=spy.BufferUsage.unordered_access)
    blas = device.create_acceleration_structure(size=sizes.acceleration_structure_size)
    enc = device.create_command_encoder()
    enc.build_acceleration_structure(desc, blas, None, scratch)
    device.submit_command_buffer(enc.finish())
    device.wait()  # the scratch buffer goes out of scope here
    return blas


class PathTracer:
    """A scene on the device, ready to render."""

    def __init__(self, device: spy.Device, scene: Scene, meshes: list[Mesh], object_mesh: list[int],
                 assignment: MaterialAssignment, material_set, environment: EnvironmentMap | None,
                 neural_set=None):
        self.device = device
        self.scene = scene
        self.meshes = meshes
        self.object_mesh = object_mesh
        self.assignment = assignment
        self.material_set = material_set
        self.neural_set = neural_set
        self.environment = environment
        # The material-id AOV: reference materials first, then neural material k at len(reference) + k.
        self.neural_id_base = len(material_set.materials)
        self.material_names = [m.name for m in material_set.materials]
        if neural_set is not None:
            self.material_names += [m.name for m in neural_set.materials]
        self.variant = _neural_variant(neural_set, reference_materials=bool(assignment.files))
        self.ray_casting = default_ray_casting(device)  # RAY_CASTING; may be set before rendering
        self._pixel_queue: spy.Buffer | None = None      # the inline path tracer's pixel counter
        self.object_kinds: list[str | None] = list(assignment.object_kind)  # what render() shows
        self._build_geometry()
        self._build_lights()
        self._build_environment()

    # --- geometry ---------------------------------------------------------------------------
    def _build_geometry(self) -> None:
        dev = self.device
        vertex_offsets = np.cumsum([0] + [m.vertex_count for m in self.meshes])
        index_offsets = np.cumsum([0] + [m.triangle_count * 3 for m in self.meshes])
        self.vertices = dev.create_buffer(data=np.concatenate([m.vertex_data() for m in self.meshes]),
                                          struct_size=48, usage=_BUILD_USAGE, label="scene_vertices")
        self.indices = dev.create_buffer(data=np.concatenate([m.indices.ravel() for m in self.meshes]).astype(np.uint32),
                                         struct_size=4, usage=_BUILD_USAGE, label="scene_indices")
        self.blas = [_blas(dev, self.vertices, self.indices, int(vertex_offsets[i]), m.vertex_count,
                           int(index_offsets[i]), m.triangle_count * 3) for i, m in enumerate(self.meshes)]
        objects = self.scene.objects
        records = np.zeros((len(objects), 36), np.float32)
        refs = records.view(np.uint32)
        instance_list = dev.create_acceleration_structure_instance_list(len(objects))
        self.light_objects: list[int] = [i for i, o in enumerate(objects) if np.any(o.emission > 0.0)]
        for i, obj in enumerate(objects):
            m = obj.transform
            lin = m[:3, :3]
            normal = np.linalg.inv(lin).T
            records[i, 0:12] = m[:3, :].ravel()
            records[i, 12:24] = np.concatenate([normal, np.zeros((3, 1))], axis=1).ravel()
            records[i, 24:27] = obj.emission
            records[i, 27] = 0  # light index + 1: filled in by _build_lights
            records[i, 28:30] = obj.uv_scale
            records[i, 30] = 1.0 if np.linalg.det(lin) > 0 else -1.0
            mesh = self.object_mesh[i]
            refs[i, 32] = index_offsets[mesh]
            refs[i, 33] = vertex_offsets[mesh]
            instance_list.write(i, spy.AccelerationStructureInstanceDesc({
                "transform": spy.float3x4(m[:3, :].astype(np.float32).ravel().tolist()),
                "instance_id": i, "instance_mask": 0xFF, "instance_contribution_to_hit_group_index": 0,
                "flags": spy.AccelerationStructureInstanceFlags.triangle_facing_cull_disable,
                "acceleration_structure": self.blas[mesh].handle}))
        self.instance_records = records  # without material index and kind: instances_for() adds them
        self._instance_buffers: dict[tuple, spy.Buffer] = {}
        self._instance_list = instance_list
        desc = spy.AccelerationStructureBuildDesc({"inputs": [instance_list.build_input_instances()],
                                                   "flags": spy.AccelerationStructureBuildFlags.prefer_fast_trace})
        sizes = dev.get_acceleration_structure_sizes(desc)
        scratch = dev.create_buffer(size=max(sizes.scratch_size, 16), usage=spy.BufferUsage.unordered_access)
        self.tlas = dev.create_acceleration_structure(size=sizes.acceleration_structure_size)
        enc = dev.create_command_encoder()
        enc.build_acceleration_structure(desc, self.tlas, None, scratch)
        dev.submit_command_buffer(enc.finish())
        dev.wait()

    # --- lights -----------------------------------------------------------------------------
    def _build_lights(self) -> None:
        env = self.environment
        self._env_distribution = env.distribution() if env is not None else None
        entries = []  # (type, a, b, c, power)
        if self._env_distribution is not None:
            entries.append((LIGHT_ENVIRONMENT, np.zeros(4), np.zeros(4), (LIGHT_ENVIRONMENT, 0, 0, 0), None))
        for light in self.scene.lights:
            entries.append((LIGHT_POINT, np.append(light.position, 0.0), np.append(light.intensity, 0.0),
                            (LIGHT_POINT, 0, 0, 0), 4.0 * math.pi * float(luminance(light.intensity))))
        tri_cdf: list[np.ndarray] = []
        cdf_offset = 0
        for i in self.light_objects:
            obj = self.scene.objects[i]
            mesh = self.meshes[self.object_mesh[i]]
            p = mesh.positions.astype(np.float64) @ obj.transform[:3, :3].T + obj.transform[:3, 3]
            tri = p[mesh.indices.astype(np.int64)]
            areas = 0.5 * np.linalg.norm(np.cross(tri[:, 1] - tri[:, 0], tri[:, 2] - tri[:, 0]), axis=1)
            total = float(areas.sum())
            if not total > 0.0:
                raise NeumatError(f"{self.scene.path.name}: {obj.key}.emission: the object has no area to emit from")
            cdf = np.concatenate([[0.0], np.cumsum(areas)]) / total
            cdf[-1] = 1.0
            tri_cdf.append(cdf.astype(np.float32))
            entries.append((LIGHT_AREA, np.array([0.0, 0.0, 0.0, total]), np.append(obj.emission, 0.0),
                            (LIGHT_AREA, i, cdf_offset, len(areas)), math.pi * total * float(luminance(obj.emission))))
            cdf_offset += len(cdf)
        n = len(entries)
        probs = np.zeros(n)
        if n:
            has_env = self._env_distribution is not None
            others = [k for k, e in enumerate(entries) if e[0] != LIGHT_ENVIRONMENT]
            env_share = (ENVIRONMENT_SHARE if others else 1.0) if has_env else 0.0
            if has_env:
                probs[0] = env_share
            powers = np.array([max(entries[k][4], 0.0) for k in others])
            if others:
                powers = powers if powers.sum() > 0 else np.ones(len(others))
                probs[others] = (1.0 - env_share) * powers / powers.sum()
        records = np.zeros((max(n, 1), 12), np.float32)
        for k, (kind, a, b, c, _) in enumerate(entries):
            records[k, 0:4] = a
            records[k, 4:8] = b
            records[k, 7] = probs[k]
            records[k, 8:12].view(np.uint32)[:] = c
        cdf = np.concatenate([[0.0], np.cumsum(probs)]) if n else np.zeros(2)
        if n:
            cdf[-1] = 1.0
        self.light_probabilities = probs
        self.environment_select_pdf = float(probs[0]) if self._env_distribution is not None else 0.0
        dev = self.device
        self.lights = dev.create_buffer(data=records, struct_size=48, usage=spy.BufferUsage.shader_resource, label="lights")
        self.light_cdf = dev.create_buffer(data=cdf.astype(np.float32), struct_size=4,
                                           usage=spy.BufferUsage.shader_resource, label="light_cdf")
        tri = np.concatenate(tri_cdf) if tri_cdf else np.zeros(2, np.float32)
        self.triangle_cdf = dev.create_buffer(data=tri, struct_size=4, usage=spy.BufferUsage.shader_resource,
                                              label="triangle_cdf")
        self.light_count = n
        # Area-light indices in the instance records must match this order.
        first_area = (1 if self._env_distribution is not None else 0) + len(self.scene.lights)
        for k, i in enumerate(self.light_objects):
            self.instance_records[i, 27] = first_area + k + 1

    # --- material kinds per object ----------------------------------------------------------
    def kinds_available(self, index: int) -> tuple[str, ...]:
        """The kinds ("reference", "neural") object `index` can be shown with."""
        return tuple(self.assignment.object_choices[index])

    def set_object_kind(self, index: int, kind: str) -> None:
        """Shows object `index` with its reference or neural material from the next render on
        (no recompilation: only its instance record changes)."""
        if kind not in self.kinds_available(index):
            obj = self.scene.objects[index]
            why = self.assignment.unavailable.get(index, "it was not loaded for this render mode")
            raise NeumatError(f"object '{obj.name}' has no {kind} material: {why}")
        self.object_kinds[index] = kind

    def kinds_for(self, kind: str) -> list[str | None]:
        """Every object that can be shown as `kind` shown so, the others as they are."""
        return [kind if kind in c else k for c, k in zip(self.assignment.object_choices, self.object_kinds)]

    def instances_for(self, kinds: list[str | None]) -> spy.Buffer:
        """The instance records with each object's material index and kind (cached per kinds)."""
        key = tuple(kinds)
        buffer = self._instance_buffers.get(key)
        if buffer is None:
            records = self.instance_records.copy()
            refs = records.view(np.uint32)
            for i, kind in enumerate(kinds):
                choices = self.assignment.object_choices[i] if i < len(self.assignment.object_choices) else {}
                refs[i, 34] = choices[kind] if kind in choices else NO_MATERIAL
                refs[i, 35] = MATERIAL_KIND[kind or "reference"]
            buffer = self.device.create_buffer(data=records, struct_size=144, usage=spy.BufferUsage.shader_resource,
                                               label="scene_instances")
            self._instance_buffers[key] = buffer
        return buffer

    # --- environment ------------------------------------------------------------------------
    def _build_environment(self) -> None:
        dev = self.device
        env = self.environment
        usage = spy.BufferUsage.shader_resource
        if env is None:
            radiance = np.zeros((1, 1, 4), np.float32)
            dist = None
        else:
            radiance = np.concatenate([env.radiance, np.ones(env.radiance.shape[:2] + (1,), np.float32)], axis=2)
            dist = self._env_distribution
        h, w = radiance.shape[:2]
        if dist is None:
            marginal = np.array([0.0, 1.0], np.float32)
            conditional = np.linspace(0, 1, w + 1, dtype=np.float32)[None].repeat(h, 0)
            density = np.zeros((h, w), np.float32)
        else:
            marginal, conditional, density = dist.marginal, dist.conditional, dist.density
        self._env_buffers = [
            dev.create_buffer(data=np.ascontiguousarray(radiance, np.float32), struct_size=16, usage=usage, label="env_radiance"),
            dev.create_buffer(data=marginal, struct_size=4, usage=usage, label="env_marginal"),
            dev.create_buffer(data=np.ascontiguousarray(conditional), struct_size=4, usage=usage, label="env_conditional"),
            dev.create_buffer(data=np.ascontiguousarray(density), struct_size=4, usage=usage, label="env_density"),
        ]
        rot = env.rotation if env is not None else 0.0
        self.environment_uniform = {
            "radiance": self._env_buffers[0], "marginal": self._env_buffers[1],
            "conditional": self._env_buffers[2], "density": self._env_buffers[3],
            "width": w, "height": h, "cosRotation": math.cos(rot), "sinRotation": math.sin(rot),
            "present": 1 if env is not None else 0}

    def set_environment(self, rotation_degrees: float, intensity: float) -> None:
        """The viewer's environment controls: the rotation about +y in degrees (replacing the scene
        file's `rotation`) and a factor on the loaded radiance (which already includes the scene's
        `intensity`; 1 shows the scene as written). The rotation goes to accumulators created from
        now on; the radiance buffer changes in place, so restart accumulation after a call. The
        sampling tables stay: the distribution does not change when the radiance is scaled, and the
        shader rotates directions before it looks them up."""
        if self.environment is None:
            raise NeumatError(f"{self.scene.path.name}: the scene has no environment to rotate or scale")
        if not (math.isfinite(intensity) and intensity >= 0.0) or not math.isfinite(rotation_degrees):
            raise NeumatError(f"environment: rotation must be finite and intensity >= 0, got "
                              f"{rotation_degrees}, {intensity}")
        rot = math.radians(rotation_degrees)
        # A new dict: accumulators made earlier keep theirs.
        self.environment_uniform = {**self.environment_uniform, "cosRotation": math.cos(rot),
                                    "sinRotation": math.sin(rot)}
        radiance = self.environment.radiance * np.float32(intensity)
        alpha = np.ones(radiance.shape[:2] + (1,), np.float32)
        self._env_buffers[0].copy_from_numpy(np.ascontiguousarray(np.concatenate([radiance, alpha], axis=2)))

    # --- rendering --------------------------------------------------------------------------
    def compile(self) -> float:
        """Compiles the pipeline and runs one empty dispatch: software drivers compile shader code
        on first use (lavapipe: tens of seconds without its disk cache), and that belongs to
        compile time, not render time. Returns the seconds spent here (0 once done)."""
        state = device_state(self.device, __name__)
        if state.get((self.variant, self.ray_casting), {}).get("warm"):
            return 0.0
        start = time.perf_counter()
        compiled = _pipeline(self.device, self.variant, self.ray_casting)  # adds its own time to COMPILE_STATS
        first_use = time.perf_counter()
        Accumulator(self, 1, 1, max_depth=0).add(0)
        compiled["warm"] = True
        COMPILE_STATS.seconds += time.perf_counter() - first_use
        return time.perf_counter() - start

    def uniforms(self, width: int, height: int, seed: int, max_depth: int, rr_depth: int, strategy: int,
                 kinds: list[str | None]) -> dict:
        """The ray-generation program's parameters, less the accumulation targets."""
        cam = self.scene.camera
        forward, right, up = cam.basis()
        neural = {}
        if self.neural_set is not None:
            neural = {"neuralMaterials": self.neural_set.uniform(), "neuralIdBase": self.neural_id_base}
        return {
            **neural,
            "sceneBvh": self.tlas,
            "geometry": {"instances": self.instances_for(kinds), "vertices": self.vertices, "indices": self.indices},
            "materials": self.material_set.uniform(),
            "environment": self.environment_uniform,
            "lights": self.lights, "lightCdf": self.light_cdf, "triangleCdf": self.triangle_cdf,
            "lightCount": self.light_count, "environmentSelectPdf": self.environment_select_pdf,
            "cameraPosition": spy.float3(*cam.position.astype(np.float32)),
            "cameraForward": spy.float3(*forward.astype(np.float32)),
            "cameraRight": spy.float3(*right.astype(np.float32)),
            "cameraUp": spy.float3(*up.astype(np.float32)),
            "tanHalfFov": math.tan(math.radians(cam.fov) * 0.5),
            "size": spy.uint2(width, height), "seed": seed, "maxDepth": max_depth, "rrDepth": rr_depth,
            "strategy": strategy}

    def dispatch(self, fixed: dict, first: int, count: int, width: int, height: int) -> None:
        """Adds samples first .. first + count - 1 of every pixel to the targets in `fixed`."""
        if self.ray_casting not in RAY_CASTING:
            raise ValueError(f"unknown ray casting {self.ray_casting} (known: {', '.join(RAY_CASTING)})")
        compiled = _pipeline(self.device, self.variant, self.ray_casting)
        dev = self.device
        if self.ray_casting == "inline":
            if self._pixel_queue is None:
                self._pixel_queue = dev.create_buffer(size=16, struct_size=4, label="pixel_queue",
                                                      usage=spy.BufferUsage.unordered_access)
            self._pixel_queue.copy_from_numpy(np.zeros(4, np.uint32))
            lanes = min(COMPUTE_LANES, -(-width * height // 64) * 64)
            compiled["kernel"].dispatch(thread_count=[lanes, 1, 1],
                                        vars={**fixed, "firstSample": first, "sampleCount": count,
                                              "pixelQueue": self._pixel_queue})
            dev.wait()
            return
        pipeline, table = compiled["pipeline"], compiled["table"]
        enc = dev.create_command_encoder()
        with enc.begin_ray_tracing_pass() as rt:
            cursor = spy.ShaderCursor(rt.bind_pipeline(pipeline, table))
            for name, value in fixed.items():
                cursor[name] = value
            cursor["firstSample"] = first
            cursor["sampleCount"] = count
            rt.dispatch_rays(0, spy.uint3(width, height, 1))
        dev.submit_command_buffer(enc.finish())
        dev.wait()

    def samples_per_dispatch(self, width: int, height: int) -> int:
        """Samples per pixel in one dispatch: short dispatches keep progress bars moving and
        lavapipe responsive."""
        paths = PATHS_PER_DISPATCH_SOFTWARE if is_software_device(self.device) else PATHS_PER_DISPATCH_GPU
        return max(1, paths // (width * height))

    def render(self, spp: int, seed: int = 0, max_depth: int | None = None, rr_depth: int | None = None,
               width: int | None = None, height: int | None = None, strategy: str = "mis",
               paths_per_dispatch: int | None = None, kinds: list[str | None] | None = None,
               progress: Callable[[int], None] | None = None) -> RenderResult:
        """Accumulates `spp` samples per pixel; `progress(n)` is called after each dispatch with the
        samples per pixel it added. `kinds`: each object's material kind (default: object_kinds)."""
        if spp < 1:
            raise ValueError(f"spp must be >= 1, got {spp}")
        self.compile()
        acc = Accumulator(self, width, height, seed, max_depth, rr_depth, strategy, kinds)
        batch = (max(1, paths_per_dispatch // (acc.width * acc.height)) if paths_per_dispatch
                 else self.samples_per_dispatch(acc.width, acc.height))
        # Equal dispatches (17 spp at most 16 per dispatch: 9 + 8, not 16 + 1): every pixel's paths
        # run back to back inside a dispatch, and a short one keeps few lanes busy.
        batch = -(-spp // -(-spp // batch))
        while acc.spp < spp:
            count = min(batch, spp - acc.spp)
            acc.add(count)
            if progress:
                progress(count)
        return acc.result()


class Accumulator:
    """Progressive accumulation of one view of a PathTracer: `add(n)` more samples per pixel,
    `result()` the mean so far. The viewer keeps one per view and starts a new one whenever the
    camera or a setting changes; `PathTracer.render` is one accumulator run to a sample count."""

    def __init__(self, tracer: PathTracer, width: int | None = None, height: int | None = None, seed: int = 0,
                 max_depth: int | None = None, rr_depth: int | None = None, strategy: str = "mis",
                 kinds: list[str | None] | None = None):
        cam = tracer.scene.camera
        settings = tracer.scene.render
        self.tracer = tracer
        self.width = width or cam.width
        self.height = height or cam.height
        if strategy not in STRATEGIES:
            raise ValueError(f"unknown strategy {strategy} (known: {', '.join(STRATEGIES)})")
        if self.width < 1 or self.height < 1:
            raise ValueError(f"width and height must be >= 1, got {self.width}, {self.height}")
        if not 0 <= seed < 2**32:
            raise NeumatError(f"--seed must be in [0, 2^32), got {seed}")
        max_depth = settings.max_depth if max_depth is None else max_depth
        rr_depth = settings.rr_depth if rr_depth is None else rr_depth
        kinds = list(tracer.object_kinds if kinds is None else kinds)
        dev = tracer.device
        usage = spy.TextureUsage.unordered_access | spy.TextureUsage.shader_resource
        self.targets = {name: dev.create_texture(format=spy.Format.rgba32_float, width=self.width, height=self.height,
                                                 usage=usage, label=f"accumulation_{name}")
                        for name in ("accumulation", "aovAlbedo", "aovNormal", "aovMisc")}
        enc = dev.create_command_encoder()
        for tex in self.targets.values():
            enc.clear_texture_float(tex, clear_value=spy.float4(0.0))
        dev.submit_command_buffer(enc.finish())
        dev.wait()
        self.fixed = {**tracer.uniforms(self.width, self.height, seed, max_depth, rr_depth, STRATEGIES[strategy],
                                        kinds), **self.targets}
        self.spp = 0
        self.seconds = 0.0  # in dispatches

    def add(self, count: int) -> None:
        """Adds `count` samples per pixel (0: a dispatch that adds nothing, to warm the pipeline)."""
        start = time.perf_counter()
        self.tracer.dispatch(self.fixed, self.spp, count, self.width, self.height)
        self.seconds += time.perf_counter() - start
        self.spp += count

    def result(self) -> RenderResult:
        """The image and AOVs so far (device to host)."""
        acc = self.targets["accumulation"].to_numpy()
        n = np.maximum(acc[..., 3:4], 1.0)
        misc = self.targets["aovMisc"].to_numpy()
        dropped = int(misc[..., 3].sum())
        valid = np.maximum(acc[..., 3:4] - misc[..., 3:4], 1.0)
        hits = misc[..., 2]
        aovs = {
            "albedo": self.targets["aovAlbedo"].to_numpy()[..., :3] / n,
            "normal": self.targets["aovNormal"].to_numpy()[..., :3] / n,
            "material_id": misc[..., 0].copy(),
            "lod": np.where(hits > 0, misc[..., 1] / np.maximum(hits, 1.0), -1.0).astype(np.float32),
        }
        return RenderResult(np.ascontiguousarray(acc[..., :3] / valid), aovs, self.spp, self.seconds, dropped)


def _mesh_key(spec) -> tuple:
    if spec.shape is not None:
        return ("shape", spec.shape, tuple(sorted((k, str(v)) for k, v in spec.params.items())))
    return ("file", str(spec.file), spec.uv_projection)


def load_meshes(scene: Scene) -> tuple[list[Mesh], list[int]]:
    """Distinct meshes of a scene and the mesh index of each object."""
    meshes: list[Mesh] = []
    keys: dict[tuple, int] = {}
    object_mesh = []
    for obj in scene.objects:
        key = _mesh_key(obj.mesh)
        if key not in keys:
            spec = obj.mesh
            if spec.shape is not None:
                mesh = procedural(spec.shape, spec.params)
            else:
                mesh = load_mesh_file(spec.file, spec.uv_projection, where=f"{scene.path.name}: {spec.key}")
            keys[key] = len(meshes)
            meshes.append(mesh)
        object_mesh.append(keys[key])
        _check_world_range(scene, obj, meshes[keys[key]])
    return meshes, object_mesh


def _check_world_range(scene: Scene, obj, mesh: Mesh) -> None:
    """A transform and a mesh each finite can overflow float32 together (scale 1e30 on a mesh 1e10
    wide): the acceleration structure would drop the object silently."""
    lo, hi = mesh.positions.min(0).astype(np.float64), mesh.positions.max(0).astype(np.float64)
    corners = np.array([[x, y, z] for x in (lo[0], hi[0]) for y in (lo[1], hi[1]) for z in (lo[2], hi[2])])
    world = corners @ obj.transform[:3, :3].T + obj.transform[:3, 3]
    if not np.all(np.abs(world) <= FLOAT32_MAX):
        raise NeumatError(f"{scene.path.name}: {obj.key}: its transform takes the mesh ({obj.mesh.key}) to "
                          f"coordinates up to {np.abs(world).max():.3g}, beyond 32-bit floating point "
                          f"({FLOAT32_MAX:.3g}); use a smaller scale or translation")


def _placeholder_material(device: spy.Device):
    """A 1x1 black diffuse material: a material set needs one even when no object has a surface."""
    from neumat.renderer.materials.layout import StackLayout
    from neumat.renderer.materials.reference import ReferenceMaterial

    layout = StackLayout(("diffuse",))
    v = np.zeros(layout.width, np.float32)
    v[layout.slot(0, "weight")] = 1.0
    v[layout.slot(0, "normal")] = (0.0, 0.0, 1.0)
    return ReferenceMaterial(device, layout, [v[None, None, :]], name="placeholder")


def _neural_set(device: spy.Device, scene: Scene, assignment: MaterialAssignment,
                log: Callable[[str], None] | None = None, mlp: str = "auto"):
    """The NeuralMaterialSet of the scene's neural materials (None without any). It always has its
    own generated set module (also for one material), so the path tracer constructs its networks
    as NEURAL_SET_NETWORKS(id)."""
    if not assignment.assets:
        return None
    from neumat.renderer.neural.material import NeuralMaterial, NeuralMaterialSet

    materials = []
    for path, asset in zip(assignment.assets, assignment.neural_assets):
        if log:
            log(f"loading neural material {path.name}")
        key = next((o.material.key for o, choices in zip(scene.objects, assignment.object_choices)
                    if choices.get("neural") == len(materials)), "objects")
        try:
            materials.append(NeuralMaterial(device, asset, mlp=mlp))
        except NeumatError as exc:
            raise NeumatError(f"{scene.path.name}: {key}: {exc}") from None
    return NeuralMaterialSet(device, materials, mlp=materials[0].mlp)


def prepare_render(device: spy.Device, scene: Scene, mode: str = "per-object",
                   log: Callable[[str], None] | None = None, switchable: bool = False, mlp: str = "auto"
                   ) -> tuple[PathTracer, LoadStats]:
    """Everything a scene needs on the device. Raises NeumatError for any problem with its files.
    `switchable` loads both kinds of every object's material where they exist
    (resolve_materials), so that PathTracer.set_object_kind can flip them. `mlp` picks the neural
    decoders' code path (renderer/neural/material.py MLP_PATHS): 'auto' takes CoopVec where the
    device has it."""
    from neumat.renderer.materials.reference import MaterialSet, ReferenceMaterial, WalkSettings

    stats = LoadStats()
    assignment = resolve_materials(scene, mode, switchable)
    t0 = time.perf_counter()
    meshes, object_mesh = load_meshes(scene)
    stats.meshes = time.perf_counter() - t0
    stats.triangles = sum(meshes[i].triangle_count for i in object_mesh)
    t0 = time.perf_counter()
    walk = WalkSettings(n_walks=scene.render.material_walks)
    materials = []
    for path in assignment.files:
        if log:
            log(f"evaluating material {path.name}")
        key = next(o.material.key for o in scene.objects if o.material is not None and o.material.file == path)
        try:
            materials.append(ReferenceMaterial.from_file(device, path, scene.render.material_resolution, walk=walk))
        except NeumatError as exc:
            raise NeumatError(f"{scene.path.name}: {key}: {exc}") from None
    if not materials:
        materials.append(_placeholder_material(device))
    material_set = MaterialSet(device, materials, walk)
    neural_set = _neural_set(device, scene, assignment, log, mlp)
    stats.materials = time.perf_counter() - t0
    t0 = time.perf_counter()
    environment = load_environment(device, scene.environment, where=f"{scene.path.name}: environment")
    stats.environment = time.perf_counter() - t0
    t0 = time.perf_counter()
    tracer = PathTracer(device, scene, meshes, object_mesh, assignment, material_set, environment, neural_set)
    stats.build = time.perf_counter() - t0
    return tracer, stats
