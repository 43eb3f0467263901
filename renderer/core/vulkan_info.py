"""Asks the Vulkan loader directly for what slangpy does not report: API and driver versions.

A throwaway instance is created through ctypes, each physical device's properties (with the driver
properties chained) are read from raw memory at the offsets fixed by the Vulkan headers, and the
instance is destroyed again. Failure here never blocks rendering: callers get an empty list.
"""

import ctypes
import ctypes.util
from dataclasses import dataclass

_PROPERTIES_2 = 1000059001  # VK_STRUCTURE_TYPE_PHYSICAL_DEVICE_PROPERTIES_2
_DRIVER_PROPERTIES = 1000196000  # VK_STRUCTURE_TYPE_PHYSICAL_DEVICE_DRIVER_PROPERTIES
_DEVICE_TYPES = {0: "other", 1: "integrated GPU", 2: "discrete GPU", 3: "virtual GPU", 4: "CPU"}


@dataclass(frozen=True)
class PhysicalDeviceInfo:
    name: str
    vendor_id: int
    device_type: str
    api_version: str
    driver_name: str
    driver_info: str


def _version(v: int) -> str:
    return f"{(v >> 22) & 0x7F}.{(v >> 12) & 0x3FF}.{v & 0xFFF}"


class _AppInfo(ctypes.Structure):
    _fields_ = [("sType", ctypes.c_int), ("pNext", ctypes.c_void_p), ("pApplicationName", ctypes.c_char_p),
                ("applicationVersion", ctypes.c_uint32), ("pEngineName", ctypes.c_char_p),
                ("engineVersion", ctypes.c_uint32), ("apiVersion", ctypes.c_uint32)]


class _InstanceInfo(ctypes.Structure):
    _fields_ = [("sType", ctypes.c_int), ("pNext", ctypes.c_void_p), ("flags", ctypes.c_uint32),
                ("pApplicationInfo", ctypes.POINTER(_AppInfo)), ("enabledLayerCount", ctypes.c_uint32),
                ("ppEnabledLayerNames", ctypes.c_void_p), ("enabledExtensionCount", ctypes.c_uint32),
                ("ppEnabledExtensionNames", ctypes.c_void_p)]


def _c_string(buf: ctypes.Array, offset: int, size: int = 256) -> str:
    return bytes(buf[offset:offset + size]).split(b"\0", 1)[0].decode(errors="replace")


def query_physical_devices() -> list[PhysicalDeviceInfo]:
    """Every physical device the Vulkan loader sees; [] when there is no loader or driver."""
    path = ctypes.util.find_library("vulkan") or "libvulkan.so.1"
    try:
        vk = ctypes.CDLL(path)
    except OSError:
        return []
    app = _AppInfo(0, None, b"neumat", 1, b"neumat", 1, (1 << 22) | (1 << 12))  # Vulkan 1.1
    create = _InstanceInfo(1, None, 0, ctypes.pointer(app), 0, None, 0, None)
    instance = ctypes.c_void_p()
    if vk.vkCreateInstance(ctypes.byref(create), None, ctypes.byref(instance)) != 0:
        return []
    try:
        count = ctypes.c_uint32(0)
        vk.vkEnumeratePhysicalDevices(instance, ctypes.byref(count), None)
        handles = (ctypes.c_void_p * count.value)()
        vk.vkEnumeratePhysicalDevices(instance, ctypes.byref(count), handles)
        found = []
        for handle in handles[:count.value]:
            driver = (ctypes.c_ubyte * 1024)()
            ctypes.c_int.from_buffer(driver, 0).value = _DRIVER_PROPERTIES
            props = (ctypes.c_ubyte * 4096)()
            ctypes.c_int.from_buffer(props, 0).value = _PROPERTIES_2
            ctypes.c_void_p.from_buffer(props, 8).value = ctypes.addressof(driver)
            vk.vkGetPhysicalDeviceProperties2(ctypes.c_void_p(handle), props)
            base = 16  # VkPhysicalDeviceProperties starts after sType and pNext
            u32 = lambda off: ctypes.c_uint32.from_buffer(props, base + off).value  # noqa: E731
            found.append(PhysicalDeviceInfo(
                name=_c_string(props, base + 20),
                vendor_id=u32(8),
                device_type=_DEVICE_TYPES.get(u32(16), "unknown"),
                api_version=_version(u32(0)),
                driver_name=_c_string(driver, 20),
                driver_info=_c_string(driver, 276),
            ))
        return found
    finally:
        vk.vkDestroyInstance(instance, None)
