"""Neural materials on the renderer side, mirroring shaders/neural/: the asset format training
writes, the Slang code generated from an asset's networks, and the device material that runs it."""
