"""`neumat render SCENE`: path-trace a scene file (docs/scenes.md) to EXR or PNG.

Everything that can be wrong with the input (the scene file, the files it names, the options, the
output path) is checked before the first sample, so a failing command writes nothing.
"""

import argparse
import sys
import time
from pathlib import Path

from neumat.renderer.core.errors import NeumatError

AOV_CHOICES = ("albedo", "normal", "material_id", "lod", "all")


def denoised_path(out: Path) -> Path | None:
    """Where --denoise writes the denoised image: into the PNG itself; beside an EXR (whose beauty
    stays raw) as <name>.denoised.exr."""
    return out.with_name(f"{out.stem}.denoised{out.suffix}") if out.suffix.lower() == ".exr" else None


def aov_path(out: Path, name: str) -> Path:
    """Where AOV `name` of the image `out` goes: out.<name>.<ext> beside it."""
    return out.with_name(f"{out.stem}.{name}{out.suffix}")


def write_aov(path: Path, name: str, data) -> None:
    """EXR: the AOV's values as they are (scalars repeated over RGB). PNG: albedo as a colour (sRGB),
    normals as 0.5 + 0.5 n, material ids as distinct colours (black: none), lod as level / 12."""
    import numpy as np

    from neumat.renderer.images.io import srgb_decode, write_image

    data = np.asarray(data, np.float32)
    rgb = data if data.ndim == 3 else np.repeat(data[..., None], 3, axis=2)
    if path.suffix.lower() == ".exr":
        write_image(path, rgb)
        return
    if name == "albedo":
        write_image(path, rgb, tonemapper="clamp")
        return
    if name == "normal":
        display = 0.5 + 0.5 * rgb
    elif name == "material_id":
        ids = np.rint(data).astype(np.int64)
        palette = np.random.default_rng(12345).uniform(0.15, 1.0, (max(int(ids.max()) + 2, 2), 3))
        palette[0] = 0.0  # id -1: background or no material
        display = palette[np.clip(ids + 1, 0, len(palette) - 1)]
    else:
        display = rgb / 12.0
    # These are display values already: undo the sRGB curve the PNG writer applies.
    write_image(path, srgb_decode(np.clip(display, 0.0, 1.0)).astype(np.float32), tonemapper="clamp")


def sampling_options(scene, args: argparse.Namespace) -> tuple[int, int, int]:
    """(spp, max depth, seed): --spp, --max-depth and --seed over the scene's [render] values, checked."""
    spp = scene.render.spp if args.spp is None else args.spp
    max_depth = scene.render.max_depth if args.max_depth is None else args.max_depth
    seed = scene.render.seed if args.seed is None else args.seed
    if spp < 1:
        raise NeumatError(f"--spp must be >= 1, got {spp}")
    if max_depth < 0:
        raise NeumatError(f"--max-depth must be >= 0, got {max_depth}")
    if not 0 <= seed < 2**32:
        raise NeumatError(f"--seed must be in [0, 2^32), got {seed}")
    return spp, max_depth, seed


def cmd_render(args: argparse.Namespace) -> int:
    from tqdm import tqdm

    from neumat.renderer.core.device import create_device
    from neumat.renderer.images.io import check_output_path, write_image
    from neumat.renderer.core.kernels import COMPILE_STATS
    from neumat.renderer.core.heartbeat import heartbeat
    from neumat.renderer.pathtracer.tracer import AOVS, prepare_render
    from neumat.renderer.scene.scene_file import load_scene, resolve_materials

    wall = time.perf_counter()
    scene = load_scene(args.scene)
    out = check_output_path(args.output or f"{scene.path.stem}.png")
    aovs = list(AOVS) if "all" in (args.aov or []) else list(dict.fromkeys(args.aov or []))
    for name in aovs:
        check_output_path(aov_path(out, name))
    beside = denoised_path(out) if args.denoise else None
    if beside is not None:
        check_output_path(beside)
    spp, max_depth, seed = sampling_options(scene, args)
    width, height = scene.camera.image_size(args.width, args.height)
    resolve_materials(scene, args.mode)  # mode errors before any device work

    denoiser = None
    if args.denoise:  # a missing OIDN fails here, before any device work
        from neumat.renderer.images.denoise import Denoiser

        denoiser = Denoiser()
    device = create_device(args.device)
    log = (lambda msg: print(f"  {msg}", file=sys.stderr)) if args.verbose else None
    tracer, load = prepare_render(device, scene, args.mode, log=log, mlp=args.mlp)
    # A cold compile takes minutes on lavapipe: say so before it starts, and keep saying it.
    print(f"compiling the path tracer for {scene.name} on {device.info.adapter_name} (minutes the first "
          "time on lavapipe; later runs read the shader cache)", flush=True)
    with heartbeat("  still compiling"):
        tracer.compile()
    compile_seconds = COMPILE_STATS.seconds  # every Slang program of this process (studio table included)
    with tqdm(total=spp, unit="spp", desc=f"render {scene.name}", leave=False, file=sys.stderr) as bar:
        result = tracer.render(spp, seed, max_depth=max_depth, width=width, height=height, progress=bar.update)
    written = []
    if denoiser is not None:
        denoised = denoiser(result.image, result.aovs["albedo"], result.aovs["normal"])
        if beside is not None:
            write_image(out, result.image)
            written.append(str(out))
        write_image(beside or out, denoised, args.exposure, args.tonemapper)
        written.append(f"{beside or out} (denoised)")
    else:
        write_image(out, result.image, args.exposure, args.tonemapper)
        written.append(str(out))
    for name in aovs:
        path = aov_path(out, name)
        write_aov(path, name, result.aovs[name])
        written.append(str(path))
    load_seconds = load.meshes + load.materials + load.environment + load.build
    print(f"wrote {', '.join(written)}: {scene.name}, {width}x{height}, {spp} spp, max depth {max_depth}, "
          f"mode {args.mode}, {len(tracer.material_names)} material(s), {load.triangles} triangles, "
          f"on {device.info.adapter_name}"
          + (f", neural MLP path {tracer.neural_set.mlp}" if tracer.neural_set else ""))
    if result.dropped_samples:
        print(f"warning: {result.dropped_samples} samples had non-finite values and were left out",
              file=sys.stderr)
    print(f"timings: load {load_seconds:.1f} s (meshes {load.meshes:.1f}, materials {load.materials:.1f}, "
          f"environment {load.environment:.1f}, acceleration structures {load.build:.1f}), "
          f"compile {compile_seconds:.1f} s, render {result.seconds:.2f} s = {result.ms_per_spp:.1f} ms/spp "
          f"({result.samples_per_second / 1e6:.2f} M samples/s)"
          + (f", denoise {denoiser.seconds:.2f} s" if denoiser is not None else "")
          + f", total {time.perf_counter() - wall:.1f} s")
    return 0


def add_render_parser(sub, add_device_flag, add_display_flags) -> None:
    """Registers `neumat render` on the subparsers `sub` of the neumat command."""
    from neumat.renderer.neural.codegen import MLP_PATHS
    from neumat.renderer.scene.scene_file import MODES

    p = sub.add_parser("render", help="path-trace a scene (TOML) with reference or neural materials",
                       description="Path-trace a scene file (see docs/scenes.md) or a built-in scene "
                                   "(material_ball, teapot, stage).")
    p.add_argument("scene", metavar="SCENE", help="a scene .toml file or the name of a built-in scene")
    p.add_argument("-o", "--output", default=None, help="output .png or .exr (default: SCENE-NAME.png here)")
    p.add_argument("--spp", type=int, default=None, help="samples per pixel (default: the scene's)")
    p.add_argument("--mode", choices=MODES, default="per-object",
                   help="materials: per-object (each object's kind, default), reference, or neural")
    p.add_argument("--max-depth", type=int, default=None,
                   help="maximum scattering events per path (default: the scene's; 0 shows emitters only)")
    p.add_argument("--seed", type=int, default=None, help="random seed (default: the scene's, else 0)")
    p.add_argument("--width", type=int, default=None, help="image width (default: the camera's; keeps "
                                                             "the aspect ratio when only one is given)")
    p.add_argument("--height", type=int, default=None, help="image height (default: the camera's)")
    p.add_argument("--aov", action="append", choices=AOV_CHOICES, default=None, metavar="NAME",
                   help=f"also write an AOV beside the image as OUT.NAME.EXT ({', '.join(AOV_CHOICES)}); "
                        "repeatable")
    p.add_argument("--denoise", action="store_true",
                   help="denoise with Intel Open Image Denoise, guided by the albedo and normal AOVs: a PNG "
                        "output holds the denoised image; an EXR output keeps the raw beauty and the denoised "
                        "image goes beside it as OUT.denoised.exr")
    p.add_argument("--mlp", choices=MLP_PATHS, default="auto",
                   help="neural decoders' code path: coopvec (tensor cores; needs the device feature "
                        "cooperative_vector), loop (plain shader arithmetic, weights inlined: compiled per set "
                        "of assets), buffer (plain arithmetic on weights read from a buffer: compiled once for "
                        "any assets), or auto (coopvec where available, else loop)")
    p.add_argument("-v", "--verbose", action="store_true", help="report loading steps")
    add_display_flags(p)
    add_device_flag(p)
    p.set_defaults(func=cmd_render)
