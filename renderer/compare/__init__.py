"""Neural against reference: image comparisons, the stage comparison job, and the render-based
fidelity measurement of `neumat compare --material` with its converged-reference cache."""
