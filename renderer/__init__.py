"""neumat's renderer: the Slang device layer, materials, path tracer and image I/O.

Nothing in here imports `training`: baked assets flow from training into the renderer, never back.
"""
