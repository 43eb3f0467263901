"""The viewer's view modes (name -> panel label): here, not in session.py, so that `neumat view
--help` lists them without importing the path tracer (slangpy, torch)."""

VIEW_MODES = {
    "beauty": "beauty",
    "split": "split: neural | reference",
    "error": "FLIP error vs reference",
    "lod": "level of detail",
    "normals": "normals",
}
