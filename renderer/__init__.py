"""neumat's renderer, one subpackage per concept:

- core: the Vulkan device, compiled kernels, file locations, errors, checked numbers, atomic writes
- images: image files, colour, metrics and figures
- scene: scene files, meshes, environment lighting
- materials: reference layered materials (graphs, MaterialX, parameter textures) and the query
  interface every material implements
- neural: neural assets, their generated Slang, the neural device material
- pathtracer: the GPU path tracer
- compare: neural against reference (images, the stage job, render-based fidelity)
- viewer: the interactive window

Nothing in here imports `neumat.training`: baked assets flow from training into the renderer, never back.
"""
