"""The path tracer: scene buffers, acceleration structures and the ray-tracing pipeline
(shaders/render/pathtracer.slang), with reference and neural materials bound per object."""
