"""Scenes: the TOML scene format, its meshes and its environment lighting."""
