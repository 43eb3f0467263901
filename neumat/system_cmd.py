"""`neumat sysinfo` and `neumat render-test`: what the machine offers, and proof that the device,
the Slang compiler and image I/O work."""

import argparse
import os
import platform
import time
from importlib import metadata

from neumat.renderer.core.errors import NeumatError
from neumat.renderer.scene.scene_file import MAX_RESOLUTION


def _version(pkg: str) -> str:
    try:
        return metadata.version(pkg)
    except metadata.PackageNotFoundError:
        return "not installed"


def cmd_sysinfo(args: argparse.Namespace) -> int:
    import slangpy as spy

    from neumat.renderer.core.device import create_device, device_report
    from neumat.renderer.core.vulkan_info import query_physical_devices

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
    from neumat.renderer.core.device import create_device
    from neumat.renderer.images.io import check_output_path, write_image
    from neumat.renderer.core.kernels import COMPILE_STATS
    from neumat.renderer.core.pattern import render_pattern

    out = check_output_path(args.output)
    if not (8 <= args.width <= MAX_RESOLUTION and 8 <= args.height <= MAX_RESOLUTION):
        raise NeumatError(f"--width/--height must be in [8, {MAX_RESOLUTION}], got {args.width}x{args.height}")
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


def add_system_parsers(sub, add_device_flag, add_display_flags) -> None:
    """Registers `neumat sysinfo` and `neumat render-test` on the subparsers `sub`."""
    p = sub.add_parser("sysinfo", help="report the Vulkan device, features, versions and caches")
    add_device_flag(p)
    p.set_defaults(func=cmd_sysinfo)

    p = sub.add_parser("render-test", help="render the procedural test image through the device layer")
    p.add_argument("-o", "--output", default="render-test.png", help="output .png or .exr (default render-test.png)")
    p.add_argument("--width", type=int, default=1024)
    p.add_argument("--height", type=int, default=512)
    add_display_flags(p)
    add_device_flag(p)
    p.set_defaults(func=cmd_render_test)
