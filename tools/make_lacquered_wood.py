"""Writes the texture maps of the bundled MaterialX example, assets/materials/lacquered_wood.mtlx:
a seamless 256 x 256 plank of ring-porous wood (albedo JPEG in sRGB, roughness PNG, OpenGL-style
normal map PNG). Deterministic: rerunning gives the same files.

    python tools/make_lacquered_wood.py
"""

from pathlib import Path

import numpy as np
from PIL import Image

SIZE = 256
OUT = Path(__file__).resolve().parent.parent / "assets" / "materials" / "textures"


def periodic_noise(u: np.ndarray, v: np.ndarray, rng: np.random.Generator, terms: int, max_freq: tuple[int, int]
                   ) -> np.ndarray:
    """A sum of plane waves with integer frequencies: smooth, seamless over uv [0, 1)^2, about [-1, 1]."""
    out = np.zeros(np.broadcast(u, v).shape)
    for _ in range(terms):
        a, b = rng.integers(-max_freq[0], max_freq[0] + 1), rng.integers(1, max_freq[1] + 1)
        out += np.sin(2 * np.pi * (a * u + b * v) + rng.uniform(0, 2 * np.pi)) / np.hypot(a, b)
    return out / np.abs(out).max()


def main() -> None:
    rng = np.random.default_rng(7)
    t = (np.arange(SIZE) + 0.5) / SIZE
    u, v = np.meshgrid(t, t)  # u along columns, v along rows (row 0 at v near 0)
    # Growth rings run along u (the plank's length): a warped stripe pattern across v.
    warp = 0.025 * periodic_noise(u, v, rng, 12, (2, 2)) + 0.006 * periodic_noise(u, v, rng, 24, (6, 8))
    phase = (13 * (v + warp)) % 1.0
    late = np.clip((phase - 0.7) / 0.3, 0, 1) ** 1.5 * np.clip((1 - phase) / 0.06, 0, 1)  # dark latewood bands
    fibres = periodic_noise(u, v, rng, 96, (1, 128))  # fine streaks along the grain
    rings = periodic_noise(u, v, rng, 6, (1, 13))  # ring-to-ring variation of the tone
    tone = np.clip(0.75 * late + 0.18 * fibres + 0.12 * rings + 0.1, 0, 1)
    light, dark = np.array([0.78, 0.52, 0.30]), np.array([0.42, 0.22, 0.10])  # sRGB-encoded
    albedo = light + (dark - light) * tone[..., None]
    Image.fromarray(np.round(albedo * 255).astype(np.uint8)).save(OUT / "lacquered_wood_albedo.jpg", quality=92)
    # Pores: small dents along the latewood, slightly rougher than the smooth earlywood.
    pores = np.clip(periodic_noise(u, v, rng, 96, (3, 128)) - 0.35, 0, None) * late
    roughness = np.clip(0.25 + 0.5 * late * 0.5 + 1.5 * pores, 0, 1)
    Image.fromarray(np.round(roughness * 255).astype(np.uint8), "L").save(OUT / "lacquered_wood_roughness.png")
    height = 0.4 * late + 0.2 * fibres - 2.0 * pores
    strength = 0.004  # uv units per unit height
    dhdu = (np.roll(height, -1, axis=1) - np.roll(height, 1, axis=1)) * SIZE / 2
    dhdv = (np.roll(height, -1, axis=0) - np.roll(height, 1, axis=0)) * SIZE / 2
    n = np.stack([-strength * dhdu, -strength * dhdv, np.ones_like(height)], axis=-1)
    n /= np.linalg.norm(n, axis=-1, keepdims=True)
    n[..., 1] *= -1  # stored OpenGL-style: green along MaterialX's +v, the image's up
    Image.fromarray(np.round((0.5 * n + 0.5) * 255).astype(np.uint8)).save(OUT / "lacquered_wood_normal.png")


if __name__ == "__main__":
    main()
