"""`neumat material validate|preview|import`: check layered material graphs, look at them, and turn
MaterialX documents into them (renderer/materials/materialx.py; validate and preview take .mtlx too)."""

import argparse
import time

from neumat.renderer.core.errors import NeumatError
from neumat.renderer.scene.scene_file import MAX_RESOLUTION


def cmd_material_validate(args: argparse.Namespace) -> int:
    from neumat.renderer.materials.graph import validate_material

    for path in args.files:
        print(validate_material(path))
    return 0


def cmd_material_preview(args: argparse.Namespace) -> int:
    from tqdm import tqdm

    from neumat.renderer.core.device import create_device
    from neumat.renderer.images.io import check_output_path, write_image
    from neumat.renderer.materials.graph import load_material
    from neumat.renderer.materials.preview import render_preview
    from neumat.renderer.materials.reference import ReferenceMaterial

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


def cmd_material_import(args: argparse.Namespace) -> int:
    """Translates a MaterialX material into a neumat TOML graph: to -o, else to stdout. Dropped or
    approximated inputs are warnings (errors with --strict); nothing is written on any error."""
    import sys
    from pathlib import Path

    from neumat.renderer.core.atomic_files import atomic_output
    from neumat.renderer.materials.graph import material_from_document
    from neumat.renderer.materials.materialx import split_reference, to_toml, translate

    source, fragment = split_reference(args.file)
    if source.suffix.lower() != ".mtlx":
        raise NeumatError(f"{args.file}: material import reads MaterialX documents (.mtlx)")
    if args.material and fragment and args.material != fragment:
        raise NeumatError(f"{args.file}: --material {args.material} names another material than '#{fragment}'")
    out = Path(args.output) if args.output else None
    if out is not None and (out.suffix.lower() != ".toml" or not out.parent.is_dir() or out.is_dir()):
        raise NeumatError(f"{out}: -o must be a .toml file in an existing folder")
    translation = translate(source, args.material or fragment)
    if args.strict and translation.warnings:
        raise NeumatError("--strict: inputs neumat cannot represent exactly:\n  " + "\n  ".join(translation.warnings))
    # Checked as graph.py checks any material (ranges, node wiring) before anything is written.
    material_from_document(translation.document(), Path(f"{source}#{translation.material}"), source.parent,
                            translation.source_hash_bytes())
    for warning in translation.warnings:
        print(f"neumat: warning: {warning}", file=sys.stderr)
    text = to_toml(translation, out.parent if out else Path.cwd())
    if out is None:
        sys.stdout.write(text)
        return 0
    with atomic_output(out) as tmp:
        Path(tmp).write_text(text)
    print(f"wrote {out}: {translation.material} ({translation.shader}), {len(translation.layers)} layers, "
          f"{len(translation.nodes)} nodes", file=sys.stderr)
    return 0


def add_material_parser(sub, add_device_flag, add_display_flags) -> None:
    """Registers `neumat material validate` and `neumat material preview` on the subparsers `sub`."""
    material = sub.add_parser("material", help="check, preview and import layered material graphs (TOML, MaterialX)")
    msub = material.add_subparsers(dest="material_command", required=True, metavar="ACTION")
    p = msub.add_parser("validate", help="check material files (.toml, .mtlx or .mtlx#Material); print their layers "
                                         "and parameter layout")
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
    p = msub.add_parser("import", help="translate a MaterialX material (OpenPBR, Standard Surface, glTF PBR) into a "
                                       "neumat material graph (docs/materialx.md)")
    p.add_argument("file", metavar="FILE.mtlx", help="a MaterialX document, or FILE.mtlx#Material")
    p.add_argument("--material", default=None, metavar="NAME", help="the surfacematerial to import (needed when the "
                                                                    "document holds several)")
    p.add_argument("-o", "--output", default=None, metavar="OUT.toml", help="write here (default: standard output)")
    p.add_argument("--strict", action="store_true",
                   help="fail on any input neumat drops or approximates, instead of warning")
    p.set_defaults(func=cmd_material_import)
