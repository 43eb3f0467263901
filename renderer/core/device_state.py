"""Per-device state in one place: compiled kernels and pipelines, lookup tables, one-time notices.

Each live device gets one dictionary, keyed by the device object itself (the registry holds a
reference, so an id can never be reused by a later device and inherit an old one's kernels).
Modules keep their own entry in it under their module name."""

import slangpy as spy

_states: dict[int, tuple[spy.Device, dict]] = {}


def device_state(device: spy.Device, owner: str, factory=dict):
    """The state `owner` (a module name) keeps for `device`, created by `factory()` on first use."""
    entry = _states.get(id(device))
    if entry is None or entry[0] is not device:
        entry = (device, {})
        _states[id(device)] = entry
    state = entry[1]
    if owner not in state:
        state[owner] = factory()
    return state[owner]
