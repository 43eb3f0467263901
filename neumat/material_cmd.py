"""`neumat material validate|preview`: check layered material graphs and look at them."""

import argparse
import time

from renderer.errors import NeumatError
from renderer.scene import MAX_RESOLUTION


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
    if not 16 <= args.size <= MAX_RESOLUTION or args.spp < 1:
        raise NeumatError(f"--size must be in [16, {MAX_RESOLUTION}] and --spp >= 1, got {args.size} and {args.spp}")
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


def add_material_parser(sub, add_device_flag, add_display_flags) -> None:
    """Registers `neumat material validate` and `neumat material preview` on the subparsers `sub`."""
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
    add_display_flags(p)
    add_device_flag(p)
    p.set_defaults(func=cmd_material_preview)
