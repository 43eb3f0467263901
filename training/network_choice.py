"""The network a material gets when the bake is not told one (`neumat bake --network auto`, the
default): the 2x32 evaluator, plus the analytic GGX lobe (training/lobe.py) where the material has a
narrow specular peak that the network alone blurs.

Why decide from the material: the lobe is what resolves a glossy coat's or a polished metal's mirror
peak (rendered mean FLIP car_paint 0.149 -> 0.089, patinated_brass 0.071 -> 0.055; docs/baking.md,
'Narrow peaks'), while on materials without such a peak it only adds a decode and a GGX evaluation
per query. Whether a peak is narrow is read from the evaluated parameters, before training: a
conductor or dielectric layer counts when its GGX alpha (the geometric mean of alpha_u and alpha_v
for an anisotropic conductor: the lobe is isotropic) is at most NARROW_ALPHA on at least
NARROW_SHARE of the texels, counting a texel by the layer's weight there.
"""

from __future__ import annotations

from dataclasses import dataclass, replace

import numpy as np

from neumat.renderer.neural.asset import LOBE_SUFFIX
from neumat.training.settings import AUTO_NETWORK, DEFAULT_EVALUATOR, BakeSettings

NARROW_ALPHA = 0.1  # GGX alpha: the lobe rendered better on car_paint (coat 0.006-0.04) and patinated_brass (lacquer 0.03-0.1, metal from 0.07)
NARROW_SHARE = 0.1  # of the texels, weighted by the layer's presence


@dataclass(frozen=True)
class NetworkChoice:
    spec: str  # e.g. "2x32+lobe"
    reason: str  # one line for the bake's log and the manifest


def _layer_alpha(layout, params: np.ndarray, index: int) -> np.ndarray:
    kind = layout.layer_types[index]
    if kind == "conductor":
        au = params[..., layout.slot(index, "alpha_u")][..., 0]
        av = params[..., layout.slot(index, "alpha_v")][..., 0]
        return np.sqrt(np.maximum(au, 0.0) * np.maximum(av, 0.0))
    return params[..., layout.slot(index, "alpha")][..., 0]


def narrow_share(layout, params: np.ndarray, index: int) -> float:
    """The weight-counted share of texels where layer `index` (a conductor or dielectric) has a
    narrow peak (module doc)."""
    weight = np.clip(params[..., layout.slot(index, "weight")][..., 0], 0.0, 1.0)
    narrow = _layer_alpha(layout, params, index) <= NARROW_ALPHA
    return float((weight * narrow).mean())


def choose_network(material, params: np.ndarray) -> NetworkChoice:
    """The default network for `material` (renderer/materials/graph.Material) given its evaluated
    parameters [H, W, K] (module doc)."""
    layout = material.layout
    best = None
    for i, kind in enumerate(layout.layer_types):
        if kind not in ("conductor", "dielectric"):
            continue
        share = narrow_share(layout, params, i)
        if best is None or share > best[0]:
            best = (share, i, kind)
    if best is not None and best[0] >= NARROW_SHARE:
        share, i, kind = best
        alpha = _layer_alpha(layout, params, i)
        label = material.layers[i].label or f"layers[{i}]"
        return NetworkChoice(
            DEFAULT_EVALUATOR + LOBE_SUFFIX,
            f"{DEFAULT_EVALUATOR} with the analytic lobe: the {kind} '{label}' has a narrow peak (GGX alpha "
            f"{float(alpha.min()):.3g}-{float(alpha.max()):.3g}, at most {NARROW_ALPHA} on {100 * share:.0f} % "
            f"of the texels)")
    return NetworkChoice(DEFAULT_EVALUATOR, f"{DEFAULT_EVALUATOR}: no conductor or dielectric layer with GGX "
                                            f"alpha at most {NARROW_ALPHA} on {100 * NARROW_SHARE:.0f} % of the texels")


def resolve_network(settings: BakeSettings, material, params: np.ndarray) -> tuple[BakeSettings, NetworkChoice | None]:
    """`settings` with "auto" replaced by the material's network, and the choice (None when the
    settings named a network)."""
    if settings.evaluator != AUTO_NETWORK:
        return settings, None
    choice = choose_network(material, params)
    return replace(settings, evaluator=choice.spec), choice
