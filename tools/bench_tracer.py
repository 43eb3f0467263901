"""The path tracer against Mitsuba 3 on the CPU: one Cornell-style room rendered by neumat (on the
Vulkan device, lavapipe on a machine without a GPU) and by Mitsuba 3 `scalar_rgb` with the same
number of threads, alternating, and the samples per second of each and their ratio.

The room: five diffuse walls (white floor, ceiling and back wall, red left and green right wall),
one rough conductor sphere (GGX alpha 0.2, copper-like), a square area light under the ceiling
facing down, a point light, no environment (black); 96x96 pixels, max depth 6 (scattering events;
Mitsuba's max_depth counts the camera vertex too, so it gets 7), Russian roulette from bounce 3 in
both (max-component throughput, survival at most 0.95). Both renderers read the same triangle
meshes (neumat's built-in plane and sphere, written as OBJ for Mitsuba, with vertex normals), the
same camera (pinhole, box-filtered pixels), the same lights and the same spp.

What differs (the images agree within noise all the same; the script prints how closely):
- neumat's conductor uses height-correlated GGX masking, Mitsuba's roughconductor the separable
  form; the conductor's complex ior comes from f0 / edge tint by Gulbrandsen's mapping, which
  Mitsuba is given directly as eta, k.
- Light selection: neumat picks the area or point light in proportion to power, Mitsuba uniformly;
  MIS and unbiasedness make that a difference in noise, not in the mean.
- neumat's materials are two-sided, Mitsuba's diffuse and conductor one-sided: only front faces
  are seen inside the room, so this changes nothing here.
- Samplers: neumat's PCG32 per pixel and sample against Mitsuba's `independent` sampler.
- Timing: neumat's time is its dispatches (`RenderResult.seconds`: the device's work and the wait
  for it), Mitsuba's the `mi.render` call; neither includes loading or compiling. The two take
  turns, so both see the same machine load; the medians are printed.

Samples per second = spp * pixels / seconds; a sample is one camera path.

    python tools/bench_tracer.py                  # 16 spp, 5 alternating runs (~1 min on 2 cores)
    python tools/bench_tracer.py --spp 64 --runs 7
    python tools/bench_tracer.py --write-scene out/cornell   # the scene files, for `neumat render`
"""

import argparse
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

from neumat.renderer.materials.layout import conductor_ior

SIZE = 96
MAX_DEPTH = 6
RR_DEPTH = 3
WHITE, RED, GREEN = (0.73, 0.73, 0.73), (0.63, 0.065, 0.05), (0.14, 0.45, 0.091)
METAL_F0, METAL_TINT, METAL_ALPHA = (0.95, 0.64, 0.54), (0.99, 0.8, 0.7), 0.2
LIGHT_RADIANCE = (12.0, 11.0, 9.0)
POINT_POSITION, POINT_INTENSITY = (-0.5, 1.6, 0.6), (0.6, 0.6, 0.6)

MATERIALS = {"white": ("diffuse", WHITE), "red": ("diffuse", RED), "green": ("diffuse", GREEN),
             "metal": ("conductor", None)}

# The room spans x, z in [-1, 1], y in [0, 2]; the camera looks in through the open front (+z).
# Planes are built facing +y: rotate [180, 0, 0] faces -y, [90, 0, 0] +z, [0, 0, -90] +x, [0, 0, 90] -x.
SCENE = f"""# A Cornell-style room for tools/bench_tracer.py.
[scene]
name = "cornell_room"

[camera]
position = [0.0, 1.0, 3.4]
target = [0.0, 1.0, 0.0]
fov = 38
resolution = [{SIZE}, {SIZE}]

[environment]
type = "none"

[render]
spp = 16
max_depth = {MAX_DEPTH}
rr_depth = {RR_DEPTH}

[[lights]]
type = "point"
position = {list(POINT_POSITION)}
intensity = {list(POINT_INTENSITY)}

[[objects]]
name = "floor"
mesh = {{ shape = "plane", size = [2, 2] }}
material = "white.toml"

[[objects]]
name = "ceiling"
mesh = {{ shape = "plane", size = [2, 2] }}
translate = [0, 2, 0]
rotate = [180, 0, 0]
material = "white.toml"

[[objects]]
name = "back"
mesh = {{ shape = "plane", size = [2, 2] }}
translate = [0, 1, -1]
rotate = [90, 0, 0]
material = "white.toml"

[[objects]]
name = "left"
mesh = {{ shape = "plane", size = [2, 2] }}
translate = [-1, 1, 0]
rotate = [0, 0, -90]
material = "red.toml"

[[objects]]
name = "right"
mesh = {{ shape = "plane", size = [2, 2] }}
translate = [1, 1, 0]
rotate = [0, 0, 90]
material = "green.toml"

[[objects]]
name = "sphere"
mesh = {{ shape = "sphere", radius = 0.45 }}
translate = [0.3, 0.45, -0.2]
material = "metal.toml"

[[objects]]
name = "light"
mesh = {{ shape = "plane", size = [0.6, 0.6] }}
translate = [0, 1.99, 0]
rotate = [180, 0, 0]
emission = {list(LIGHT_RADIANCE)}
"""


def write_scene(folder: Path) -> Path:
    """The room's scene file and its four one-layer materials, written into `folder`."""
    folder.mkdir(parents=True, exist_ok=True)
    for name, (kind, albedo) in MATERIALS.items():
        head = f'[material]\nname = "{name}"\nresolution = 1\n\n[[layers]]\ntype = "{kind}"\n'
        if kind == "diffuse":
            body = f"albedo = {list(albedo)}\n"
        else:
            body = f"f0 = {list(METAL_F0)}\nedge_tint = {list(METAL_TINT)}\nalpha = {METAL_ALPHA}\n"
        (folder / f"{name}.toml").write_text(head + body)
    path = folder / "cornell_room.toml"
    path.write_text(SCENE)
    return path


def mitsuba_scene(mi, tracer, folder: Path, spp: int):
    """The same room as a Mitsuba 3 scene dict (the neumat tracer's meshes and transforms)."""
    from neumat.renderer.pathtracer.tracer import load_meshes
    from neumat.renderer.scene.meshes import write_obj

    scene = tracer.scene
    meshes, object_mesh = load_meshes(scene)
    for i, m in enumerate(meshes):
        write_obj(m, folder / f"mesh{i}.obj")
    T = mi.ScalarTransform4f
    cam = scene.camera
    rgb = lambda v: {"type": "rgb", "value": [float(x) for x in v]}  # noqa: E731
    eta, k = conductor_ior(METAL_F0, METAL_TINT)
    bsdfs = {"white": {"type": "diffuse", "reflectance": rgb(WHITE)},
             "red": {"type": "diffuse", "reflectance": rgb(RED)},
             "green": {"type": "diffuse", "reflectance": rgb(GREEN)},
             "metal": {"type": "roughconductor", "distribution": "ggx", "alpha": METAL_ALPHA,
                       "eta": rgb(eta), "k": rgb(k)},
             "black": {"type": "diffuse", "reflectance": rgb((0, 0, 0))}}
    d = {"type": "scene",
         # Mitsuba's max_depth counts the camera vertex; its depth at the first hit is 1 where ours is 0.
         "integrator": {"type": "path", "max_depth": scene.render.max_depth + 1, "rr_depth": scene.render.rr_depth},
         "sensor": {"type": "perspective", "fov": cam.fov, "fov_axis": "y",
                    "to_world": T().look_at(origin=cam.position.tolist(), target=cam.target.tolist(),
                                            up=cam.up.tolist()),
                    "film": {"type": "hdrfilm", "width": cam.width, "height": cam.height,
                             "rfilter": {"type": "box"}, "pixel_format": "rgb"},
                    "sampler": {"type": "independent", "sample_count": spp}},
         "point": {"type": "point", "position": list(POINT_POSITION), "intensity": rgb(POINT_INTENSITY)}}
    for i, obj in enumerate(scene.objects):
        shape = {"type": "obj", "filename": str(folder / f"mesh{object_mesh[i]}.obj"), "face_normals": False,
                 "to_world": T(obj.transform.tolist())}
        if np.any(obj.emission > 0):
            shape["bsdf"] = bsdfs["black"]
            shape["emitter"] = {"type": "area", "radiance": rgb(obj.emission)}
        else:
            shape["bsdf"] = bsdfs[obj.material.file.stem]
        d[f"shape_{i}_{obj.name}"] = shape
    return mi.load_dict(d)


def relative_mse(a: np.ndarray, b: np.ndarray, eps: float = 1e-2) -> float:
    return float(np.mean((a - b) ** 2 / (b ** 2 + eps)))


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--spp", type=int, default=16, help="samples per pixel per run (default 16)")
    ap.add_argument("--runs", type=int, default=5, help="alternating runs of each renderer (default 5)")
    ap.add_argument("--threads", type=int, default=None,
                    help="Mitsuba's threads (default: the CPUs this process may use, as lavapipe)")
    ap.add_argument("--paths-per-dispatch", type=int, default=None,
                    help="neumat's paths per dispatch (default: the path tracer's own choice)")
    ap.add_argument("--device", default=None, help="neumat's device (default: as neumat picks it)")
    ap.add_argument("--write-scene", type=Path, default=None, metavar="DIR",
                    help="write the room's scene and material files into DIR and exit")
    ap.add_argument("--no-mitsuba", action="store_true", help="time neumat alone")
    ap.add_argument("--pipeline", action="store_true",
                    help="also time neumat's ray-tracing pipeline (rayGen) where the default is the compute "
                         "shader with ray queries, in the same rounds")
    args = ap.parse_args(argv)
    if args.write_scene:
        print(write_scene(args.write_scene))
        return 0

    from neumat.renderer.core.device import create_device
    from neumat.renderer.images.metrics import flip_error
    from neumat.renderer.pathtracer.tracer import prepare_render
    from neumat.renderer.scene.scene_file import load_scene

    threads = args.threads or len(os.sched_getaffinity(0))
    tmp = tempfile.TemporaryDirectory(prefix="bench_tracer_")
    folder = Path(tmp.name)
    device = create_device(args.device)
    tracer, _ = prepare_render(device, load_scene(write_scene(folder)))
    t0 = time.perf_counter()
    tracer.compile()
    print(f"neumat: {device.info.adapter_name}; compile {time.perf_counter() - t0:.1f} s")
    mi = None
    if not args.no_mitsuba:
        import drjit as dr
        import mitsuba as mi

        mi.set_variant("scalar_rgb")
        dr.set_thread_count(threads)
        mscene = mitsuba_scene(mi, tracer, folder, args.spp)
        print(f"mitsuba {mi.__version__} scalar_rgb, {threads} threads")
        mi.render(mscene, spp=1, seed=999)  # warm-up

    default_casting = tracer.ray_casting
    pipeline = args.pipeline and default_casting != "pipeline"
    if pipeline:
        tracer.ray_casting = "pipeline"
        t0 = time.perf_counter()
        tracer.compile()
        print(f"neumat's ray-tracing pipeline: compile {time.perf_counter() - t0:.1f} s")
        tracer.ray_casting = default_casting

    pixels = SIZE * SIZE
    ours_rate, theirs_rate, ours_images, theirs_images, pipeline_rate = [], [], [], [], []
    for run in range(args.runs):
        r = tracer.render(args.spp, seed=run + 1, paths_per_dispatch=args.paths_per_dispatch)
        ours_rate.append(args.spp * pixels / r.seconds)
        ours_images.append(r.image)
        line = f"run {run + 1}: neumat ({default_casting}) {ours_rate[-1] / 1e6:.3f} M samples/s"
        if pipeline:
            tracer.ray_casting = "pipeline"
            p = tracer.render(args.spp, seed=run + 1, paths_per_dispatch=args.paths_per_dispatch)
            tracer.ray_casting = default_casting
            pipeline_rate.append(args.spp * pixels / p.seconds)
            line += f", neumat (pipeline) {pipeline_rate[-1] / 1e6:.3f} M samples/s"
            if run == 0:
                same = float(np.abs(p.image - r.image).max())
        if mi is not None:
            t0 = time.perf_counter()
            image = np.array(mi.render(mscene, spp=args.spp, seed=run + 1), np.float32)[..., :3]
            seconds = time.perf_counter() - t0
            theirs_rate.append(args.spp * pixels / seconds)
            theirs_images.append(image)
            line += f", mitsuba {theirs_rate[-1] / 1e6:.3f} M samples/s"
        print(line, flush=True)

    ours = statistics.median(ours_rate)
    print(f"\n{SIZE}x{SIZE}, max depth {MAX_DEPTH}, {args.spp} spp x {args.runs} runs (medians)")
    print(f"neumat:  {ours / 1e6:.3f} M samples/s ({1e6 / ours:.1f} us per path; rays: {default_casting})")
    if pipeline:
        ratios = [a / b for a, b in zip(ours_rate, pipeline_rate)]
        print(f"neumat with the ray-tracing pipeline: {statistics.median(pipeline_rate) / 1e6:.3f} M samples/s; "
              f"{default_casting} / pipeline {statistics.median(ratios):.3f}x (median of the runs' ratios); "
              f"largest pixel difference between the two {same:.2g}")
    if mi is None:
        return 0
    theirs = statistics.median(theirs_rate)
    print(f"mitsuba: {theirs / 1e6:.3f} M samples/s ({1e6 / theirs:.1f} us per path)")
    print(f"ratio neumat / mitsuba: {ours / theirs:.3f}x")

    # Equal work: the two images (each the mean of all runs) agree up to noise.
    a, b = np.mean(ours_images, 0), np.mean(theirs_images, 0)
    mean_a, mean_b = a.mean((0, 1)), b.mean((0, 1))
    print(f"\nimage mean RGB: neumat {np.round(mean_a, 4)}, mitsuba {np.round(mean_b, 4)}, "
          f"relative difference {np.round(mean_a / mean_b - 1, 4)}")
    if args.runs >= 2:
        # Each run's own noise, from consecutive runs (independent seeds): relMSE(x_i, x_j) is about
        # 2 var; the means over all runs have var / runs each, so relMSE(a, b) is expected near
        # (var_neumat + var_mitsuba) / runs when both converge to the same image.
        var = [statistics.mean(relative_mse(x[i], x[i + 1]) for i in range(len(x) - 1)) / 2
               for x in (ours_images, theirs_images)]
        floor = sum(var) / args.runs
        err = relative_mse(a, b)
        print(f"relMSE(neumat, mitsuba) {err:.5f}; expected from noise alone {floor:.5f} (ratio {err / floor:.2f})")
    try:
        _, flip = flip_error(b, a, magma=False)
        _, flip_run = flip_error(theirs_images[0], ours_images[0], magma=False)
        print(f"HDR-FLIP(mitsuba, neumat) {flip:.4f} ({args.spp * args.runs} spp each); "
              f"one run each ({args.spp} spp) {flip_run:.4f}")
    except Exception as exc:  # FLIP missing: the other numbers still stand
        print(f"HDR-FLIP unavailable: {exc}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
