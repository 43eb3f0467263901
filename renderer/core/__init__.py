"""The device layer and what every other part uses: the Vulkan device, compiled kernels, where
neumat's files live, the one user-facing error type, checked numbers, atomic writes and Ctrl-C."""
