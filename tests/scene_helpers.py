"""Small scene and material files for the render tests, written into a temporary folder."""

from pathlib import Path

import numpy as np


def diffuse(folder: Path, name: str, albedo) -> Path:
    path = folder / f"{name}.toml"
    path.write_text(f'[material]\nname = "{name}"\nresolution = 1\n\n[[layers]]\ntype = "diffuse"\n'
                    f"albedo = {list(map(float, albedo))}\n")
    return path


def conductor(folder: Path, name: str, f0, edge_tint, alpha: float) -> Path:
    path = folder / f"{name}.toml"
    path.write_text(f'[material]\nname = "{name}"\nresolution = 1\n\n[[layers]]\ntype = "conductor"\n'
                    f"f0 = {list(map(float, f0))}\nedge_tint = {list(map(float, edge_tint))}\nalpha = {alpha}\n")
    return path


def coated(folder: Path, name: str, albedo, ior: float = 1.5, alpha: float = 0.15) -> Path:
    path = folder / f"{name}.toml"
    path.write_text(f'[material]\nname = "{name}"\nresolution = 1\n\n[[layers]]\ntype = "diffuse"\n'
                    f"albedo = {list(map(float, albedo))}\n\n[[layers]]\ntype = \"dielectric\"\n"
                    f"ior = {ior}\nalpha = {alpha}\n")
    return path


def scene(folder: Path, body: str, name: str = "scene") -> Path:
    path = folder / f"{name}.toml"
    path.write_text(body)
    return path


def camera(position=(0.0, 1.0, 4.0), target=(0.0, 0.0, 0.0), fov=40.0, size=(32, 32), up=(0.0, 1.0, 0.0)) -> str:
    return (f"[camera]\nposition = {list(position)}\ntarget = {list(target)}\nup = {list(up)}\nfov = {fov}\n"
            f"resolution = {list(size)}\n")


def two_spheres(size, right_material: str, fov: float = 35.0, spread: float = 1.3, render: str = "") -> str:
    """A scene body: two spheres side by side under a white constant environment, the left one in
    red.toml, the right one in `right_material` (a TOML value); `render`: a [render] table's lines."""
    return camera(position=(0, 0, 6), fov=fov, size=size) + f"""
[environment]
type = "constant"
color = 1
{"[render]" + chr(10) + render if render else ""}
[[objects]]
name = "left"
mesh = {{ shape = "sphere", radius = 0.8 }}
translate = [{-spread}, 0, 0]
material = "red.toml"
[[objects]]
name = "right"
mesh = {{ shape = "sphere", radius = 0.8 }}
translate = [{spread}, 0, 0]
material = {right_material}
"""


def sun_sky_map(width: int = 128, height: int = 64, sun_dir=(0.5, 0.6, 0.62), sun_radiance: float = 30.0,
                sun_sharpness: float = 0.004, sky: float = 1.0) -> np.ndarray:
    """An equirect map (environment.slang's mapping): blue sky, brown ground, a soft sun of
    Gaussian falloff in 1 - cos(angle), and a small red marker at u = 0.25 (+x) on the horizon
    that makes any flip or rotation of the mapping visible."""
    v = (np.arange(height) + 0.5) / height
    u = (np.arange(width) + 0.5) / width
    uu, vv = np.meshgrid(u, v)
    theta, phi = np.pi * vv, 2 * np.pi * uu
    d = np.stack([np.sin(theta) * np.sin(phi), np.cos(theta), -np.sin(theta) * np.cos(phi)], -1)
    up = d[..., 1:2]
    env = np.where(up > 0, np.array([0.3, 0.45, 0.8]) * (0.5 + 0.5 * up) + 0.2, np.array([0.25, 0.2, 0.15])) * sky
    s = np.asarray(sun_dir, np.float64)
    s = s / np.linalg.norm(s)
    env = env + sun_radiance * np.exp(-(1 - d @ s) / sun_sharpness)[..., None] * np.array([1.0, 0.9, 0.7])
    marker = (np.abs(uu - 0.25) < 0.03) & (np.abs(vv - 0.5) < 0.08)
    env = env + marker[..., None] * np.array([3.0, 0.0, 0.0])
    return env.astype(np.float32)


def tiny_asset(path: Path, material_file: Path, seed: int):
    """An untrained 2x16 neural material (8x8 latents, random weights) of `material_file`, saved
    as a .neumat asset: cheap stand-ins for baked assets in render, compare and viewer tests."""
    import torch

    from neumat.renderer.materials.graph import load_material
    from neumat.training.export import save_asset
    from neumat.training.model import NeuralMaterial, NeuralMaterialConfig

    torch.manual_seed(seed)
    model = NeuralMaterial(NeuralMaterialConfig(resolution=8, evaluator="2x16"))
    with torch.no_grad():
        for p in model.parameters():
            p.copy_(torch.randn_like(p) * 0.3)
    return save_asset(path, model, load_material(material_file), {}, {}, {})
