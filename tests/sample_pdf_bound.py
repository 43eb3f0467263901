"""How closely a sample's pdf (from sample()) and pdf() at the sampled direction must agree, for the
learned sampler (training/sampler.py) and anything built on it, in any floating-point precision.

Both are A(h) / (4 |wo.h|) with A smooth in the half vector h; they differ only by rounding, with u the
working precision's unit roundoff (2^-24 in float32, 2^-53 in float64), in two places:
- the cosine: sample() uses c_s = wi.h_s of the sampled h, pdf() c_e = |wi + wo| / 2 of the rounded
  wo. Each has an absolute error of a few u, so |c_s - c_e| <= ~11u, and the 1 / c factor makes
  dist * |p_s - p_e| / p_s = 2 |c_s - c_e| <= ~22u, with dist = |wi + wo| = 2 c_e. Normalised by p_e
  instead it is unbounded: where rounding leaves c_s far below c_e (wo within a few u of -wi),
  p_s / p_e = c_e / c_s is large (a float32 run measured dist * |p_s - p_e| / p_e = 1.0e-4 there,
  with c_s ~ c_e / 700).
- the half vector: h_e = normalize(wi + wo) is off h_s by ~3u / c_e, which changes A by a relative
  G * 3u / c_e, G the largest |d log A / dh| (about 2 / (alpha_min sqrt(1 - rho^2) h_z): up to ~100
  for the narrowest lobes tested), so dist * |p_s - p_e| / p_s gains up to ~6 G u = ~600u.
So dist * |p_s - p_e| / p_s stays below ~600u everywhere, including wo -> -wi where the pdf itself is
ill-conditioned. Measured: at most ~300u in tests/test_neural_sampler.py (12 seeds x 25 cases,
float32 and float64 alike) and ~180u in tests/test_neural_model.py (10 seeds, untrained models).
SAMPLE_PDF_ULPS leaves a factor 3 over the estimate and 6 over the worst measurement. Far from
wo = -wi it is a plain relative bound: in float32, |p_s - p_e| / p_s < 1.2e-4 / dist, under 1e-3
for dist >= 0.12.
"""

import torch

SAMPLE_PDF_ULPS = 2000.0


def sample_pdf_mismatch(pdf_s: torch.Tensor, pdf_e: torch.Tensor, wi: torch.Tensor, wo: torch.Tensor) -> float:
    """max over queries of |wi + wo| * |pdf_s - pdf_e| / pdf_s, in units of the precision's unit
    roundoff; assert it is below SAMPLE_PDF_ULPS."""
    u = torch.finfo(pdf_s.dtype).eps / 2
    dist = (wi + wo).norm(dim=-1)
    return ((pdf_s - pdf_e).abs() / pdf_s * dist).max().item() / u
