"""`neumat view`: an interactive window on a scene, neural and reference materials side by side.

camera.py holds the camera controls (pure math), session.py the render state (path tracer,
accumulation, view modes, reload, screenshots; no GL), window.py the glfw window, the OpenGL blit
and the imgui panel. Only window.py needs a display; it is imported when a window opens.
"""
