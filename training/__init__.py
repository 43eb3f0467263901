"""neumat's training pipeline: turns reference layered materials into neural material assets.

It may import `renderer` (to evaluate reference materials on the device and to write assets the
renderer loads); `renderer` never imports it.
"""
