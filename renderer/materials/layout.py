"""The per-texel parameter vector: one layout shared by the graph evaluator, the Slang reference
BSDF (shaders/materials/layer_layout.slang mirrors it, a test keeps the two equal) and the neural
encoder, which reads the whole vector as its input.

A material is a stack of at most MAX_LAYERS layers, bottom to top. Each texel stores, for every
layer from the bottom up, that layer type's parameters in the order listed below, so a material's
vector length K is the sum of its layers' widths. Every layer type starts with the same block:

- weight:  presence of the layer in [0, 1]. Each random walk through the stack decides once, with
           this probability, whether the layer is there, so the BSDF is exactly the weight-blend of
           the stacks with and without it (wear masks, patina coverage, flake density). The bottom
           layer is always present.
- normal:  the layer's own shading normal in tangent space (unit, z > 0): normal maps per layer.

Type-specific parameters (all linear; alphas are GGX alpha as in Mitsuba, not perceptual roughness):

- diffuse:    albedo (3)
- conductor:  f0 (3), edge_tint (3) (Gulbrandsen 2014 artist-friendly complex IOR), alpha_u,
              alpha_v (anisotropic GGX, u along the rotated tangent), rotation (radians, of the
              tangent about the normal)
- dielectric: ior (relative to the medium above), alpha, thickness (of the medium below this
              interface), absorption (3) (sigma_a per unit thickness: transmittance along a path
              through the medium is exp(-absorption * thickness / |cos theta|))
- sheen:      color (3), alpha (fuzz roughness)
- flakes:     f0 (3), alpha (roughness of each flake); the flake orientation is the layer normal
"""

from dataclasses import dataclass

import numpy as np

MAX_LAYERS = 5


@dataclass(frozen=True)
class LayerType:
    name: str
    type_id: int  # the value the Slang side switches on
    params: tuple[tuple[str, int], ...]  # (name, width) in storage order

    @property
    def width(self) -> int:
        return sum(w for _, w in self.params)

    def offset(self, param: str) -> int:
        """Offset of `param` from the start of this layer's block."""
        off = 0
        for name, w in self.params:
            if name == param:
                return off
            off += w
        raise KeyError(f"{self.name} has no parameter '{param}'")


COMMON_PARAMS = (("weight", 1), ("normal", 3))

LAYER_TYPES: dict[str, LayerType] = {t.name: t for t in (
    LayerType("diffuse", 0, COMMON_PARAMS + (("albedo", 3),)),
    LayerType("conductor", 1, COMMON_PARAMS + (("f0", 3), ("edge_tint", 3), ("alpha_u", 1), ("alpha_v", 1),
                                               ("rotation", 1))),
    LayerType("dielectric", 2, COMMON_PARAMS + (("ior", 1), ("alpha", 1), ("thickness", 1), ("absorption", 3))),
    LayerType("sheen", 3, COMMON_PARAMS + (("color", 3), ("alpha", 1))),
    LayerType("flakes", 4, COMMON_PARAMS + (("f0", 3), ("alpha", 1))),
)}

# Layer types that may sit at the bottom of a stack (they are opaque).
BOTTOM_TYPES = ("diffuse", "conductor")


@dataclass(frozen=True)
class StackLayout:
    """Where each layer's block starts in a material's per-texel vector."""

    layer_types: tuple[str, ...]  # bottom to top

    def __post_init__(self) -> None:
        if not 1 <= len(self.layer_types) <= MAX_LAYERS:
            raise ValueError(f"a stack has 1 to {MAX_LAYERS} layers, got {len(self.layer_types)}")

    @property
    def offsets(self) -> tuple[int, ...]:
        offs, off = [], 0
        for name in self.layer_types:
            offs.append(off)
            off += LAYER_TYPES[name].width
        return tuple(offs)

    @property
    def width(self) -> int:
        """K: floats per texel."""
        return sum(LAYER_TYPES[n].width for n in self.layer_types)

    def slot(self, layer: int, param: str) -> slice:
        """The slice of the per-texel vector holding `param` of layer `layer` (0 = bottom)."""
        t = LAYER_TYPES[self.layer_types[layer]]
        start = self.offsets[layer] + t.offset(param)
        return slice(start, start + dict(t.params)[param])

    def names(self) -> list[str]:
        """One name per float, e.g. 'layers[1].f0.g', for reports and the asset manifest."""
        out = []
        for i, name in enumerate(self.layer_types):
            for p, w in LAYER_TYPES[name].params:
                if w == 1:
                    out.append(f"layers[{i}].{p}")
                else:
                    out += [f"layers[{i}].{p}.{c}" for c in ("xyz" if p == "normal" else "rgb")]
        return out


def conductor_ior(f0, edge_tint):
    """A conductor's (f0, edge_tint) as the complex index of refraction (eta, k) its Fresnel term
    uses: Gulbrandsen 2014's artist-friendly mapping, as shaders/materials/fresnel.slang
    conductorIorFromArtist computes it (for renderers that want eta and k, such as Mitsuba)."""
    r = np.clip(np.asarray(f0, np.float64), 0, 0.9999)
    g = np.clip(np.asarray(edge_tint, np.float64), 0, 1)
    sr = np.sqrt(r)
    eta = g * (1 - r) / (1 + r) + (1 - g) * (1 + sr) / (1 - sr)
    k = np.sqrt(np.maximum((r * (eta + 1) ** 2 - (eta - 1) ** 2) / (1 - r), 0))
    return eta, k
