"""Materials on the device: reference layered materials (the graph format, MaterialX import, their
evaluation to parameter textures, the per-texel parameter layout) and the query interface that
reference and neural materials share (query.py)."""
