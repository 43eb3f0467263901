"""Reference layered materials: the graph format, its evaluation to parameter textures, the layout
of the per-texel parameter vector and the batched device API over the Slang BSDFs."""
