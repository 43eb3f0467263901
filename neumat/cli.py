"""`neumat`: one command, several subcommands; each imports only what it needs, lazily, so that
`neumat --help` is instant and `renderer` never has to know about `training`."""

import argparse
import os
import platform
import sys
import time
from importlib import metadata

from renderer.errors import NeumatError


def _add_device_flag(p: argparse.ArgumentParser) -> None:
    p.add_argument("--device", default=None,
                   help="Vulkan adapter: auto (default), nvidia, gpu, lavapipe, an index or part of a name "
                        "(also $NEUMAT_DEVICE)")


def _add_display_flags(p: argparse.ArgumentParser) -> None:
    from renderer.image_io import TONEMAPPERS
    p.add_argument("--exposure", type=float, default=0.0, help="PNG exposure in stops (default 0)")
    p.add_argument("--tonemapper", choices=sorted(TONEMAPPERS), default="aces",
                   help="PNG tonemapper (default aces: Narkowicz's ACES filmic fit)")


def _version(pkg: str) -> str:
    try:
        return metadata.version(pkg)
    except metadata.PackageNotFoundError:
        return "not installed"


def cmd_sysinfo(args: argparse.Namespace) -> int:
    import slangpy as spy

    from renderer.device import create_device, device_report
    from renderer.vulkan_info import query_physical_devices

    print(f"neumat:         {_version('neumat')}")
    print(f"python:         {platform.python_version()} ({platform.platform()})")
    torch_version = _version("torch")
    try:
        import torch
        torch_version += f" (CUDA {'available: ' + torch.cuda.get_device_name(0) if torch.cuda.is_available() else 'not available'})"
    except ImportError:
        pass
    print(f"torch:          {torch_version}")
    print(f"slangpy:        {_version('slangpy')} (Slang {getattr(spy, 'SLANG_BUILD_TAG', 'unknown')})")
    for phys in query_physical_devices():
        print(f"vulkan adapter: {phys.name}: {phys.device_type}, Vulkan {phys.api_version}, {phys.driver_info}")
    report = device_report(create_device(args.device))
    print("\n".join(report.lines()))
    display = os.environ.get("DISPLAY") or os.environ.get("WAYLAND_DISPLAY")
    print(f"display:        {display if display else 'none (the viewer needs one; use neumat render, or run under xvfb-run)'}")
    return 0


def cmd_render_test(args: argparse.Namespace) -> int:
    from renderer.device import create_device
    from renderer.image_io import check_output_path, write_image
    from renderer.kernels import COMPILE_STATS
    from renderer.pattern import render_pattern

    out = check_output_path(args.output)
    if args.width < 8 or args.height < 8:
        raise NeumatError(f"--width/--height must be at least 8, got {args.width}x{args.height}")
    device = create_device(args.device)
    start = time.perf_counter()
    image = render_pattern(device, args.width, args.height)
    total = time.perf_counter() - start
    write_image(out, image, args.exposure, args.tonemapper)
    stats = device.shader_cache_stats
    print(f"wrote {out} ({args.width}x{args.height}) on {device.info.adapter_name}")
    print(f"compile {COMPILE_STATS.seconds:.2f} s (pipeline cache: {stats.hit_count} hits, {stats.miss_count} misses), "
          f"render {total - COMPILE_STATS.seconds:.3f} s")
    return 0


def cmd_material_validate(args: argparse.Namespace) -> int:
    from renderer.materials.graph import validate_material

    for path in args.files:
        print(validate_material(path))
    return 0


def cmd_material_preview(args: argparse.Namespace) -> int:
    from tqdm import tqdm

    from renderer.device import create_device
    from renderer.image_io import check_output_path, write_image
    from renderer.materials.graph import load_material
    from renderer.materials.preview import render_preview
    from renderer.materials.reference import ReferenceMaterial

    out = check_output_path(args.output)
    if args.size < 16 or args.spp < 1:
        raise NeumatError(f"--size must be >= 16 and --spp >= 1, got {args.size} and {args.spp}")
    material = load_material(args.file)  # validates before any device work
    device = create_device(args.device)
    start = time.perf_counter()
    gpu_material = ReferenceMaterial.from_file(device, material.path, args.resolution)
    with tqdm(total=args.spp, unit="spp", desc=f"preview {material.name}", leave=False) as bar:
        image = render_preview(gpu_material, args.size, args.spp, args.seed, progress=bar.update)
    write_image(out, image, args.exposure, args.tonemapper)
    print(f"wrote {out}: {material.name}, {args.size}x{args.size}, {args.spp} spp, "
          f"{time.perf_counter() - start:.1f} s on {device.info.adapter_name}")
    return 0


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="neumat", description="Neural appearance models: bake layered "
                                     "materials into neural materials and render both with a Slang path tracer.")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    p = sub.add_parser("sysinfo", help="report the Vulkan device, features, versions and caches")
    _add_device_flag(p)
    p.set_defaults(func=cmd_sysinfo)

    p = sub.add_parser("render-test", help="render the procedural test image through the device layer")
    p.add_argument("-o", "--output", default="render-test.png", help="output .png or .exr (default render-test.png)")
    p.add_argument("--width", type=int, default=1024)
    p.add_argument("--height", type=int, default=512)
    _add_display_flags(p)
    _add_device_flag(p)
    p.set_defaults(func=cmd_render_test)

    material = sub.add_parser("material", help="check and preview layered material graphs (TOML)")
    msub = material.add_subparsers(dest="material_command", required=True, metavar="ACTION")
    p = msub.add_parser("validate", help="check material files; print their layers and parameter layout")
    p.add_argument("files", nargs="+", metavar="FILE")
    p.set_defaults(func=cmd_material_validate)
    p = msub.add_parser("preview", help="render a material on a sphere in the studio environment")
    p.add_argument("file", metavar="FILE")
    p.add_argument("-o", "--output", required=True, help="output .png or .exr")
    p.add_argument("--size", type=int, default=384, help="image width and height (default 384)")
    p.add_argument("--spp", type=int, default=64, help="samples per pixel (default 64)")
    p.add_argument("--resolution", type=int, default=None,
                   help="parameter texture resolution (default: the material's own)")
    p.add_argument("--seed", type=int, default=0)
    _add_display_flags(p)
    _add_device_flag(p)
    p.set_defaults(func=cmd_material_preview)

    from neumat.render_cmd import add_render_parser  # `neumat render`: its own module
    add_render_parser(sub, _add_device_flag, _add_display_flags)
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        return args.func(args)
    except NeumatError as exc:
        print(f"neumat: error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("neumat: interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
