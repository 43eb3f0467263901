"""Numbers a user gives (material files, scene files, command-line options), checked once.

Every such number ends up as a float32 on the device or in a texture, so "finite" means finite in
float32: 1e300 is a finite Python float but becomes inf after the cast (`ior = 1e300` rendered
black, a bake diverged). `check_number` checks the type, float32 finiteness and the field's range,
and raises ValueError with a message that completes "<file>: <field>: ..."; the callers (the
material graph's SpecError, the scene loader's error, argparse for options) add the file and field.
"""

import argparse
import math

FLOAT32_MAX = 3.4028234663852886e38  # np.finfo(np.float32).max, without importing numpy


def _is_number(value: object) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool)


def _range_text(lo: float, hi: float, lo_open: bool, hi_open: bool) -> str:
    if hi == math.inf:
        return f"{'>' if lo_open else '>='} {lo:g}"
    if lo == -math.inf:
        return f"{'<' if hi_open else '<='} {hi:g}"
    return f"in {'(' if lo_open else '['}{lo:g}, {hi:g}{')' if hi_open else ']'}"


def check_number(value: object, lo: float = -math.inf, hi: float = math.inf, *, integer: bool = False,
                 lo_open: bool = False, hi_open: bool = False) -> float | int:
    """`value` if it is a number (an int when `integer`; never a bool), finite as a float32, and in
    [lo, hi] (open ends with lo_open / hi_open); else ValueError saying which."""
    what = "an integer" if integer else "a number"
    if not _is_number(value) or (integer and not isinstance(value, int)):
        raise ValueError(f"must be {what}, got {value!r}")
    if isinstance(value, float) and not math.isfinite(value):
        raise ValueError(f"must be finite, got {value}")
    if abs(value) > FLOAT32_MAX:  # compared exactly: float() of a huge int would overflow
        shown = f"{value:.4g}" if isinstance(value, float) else f"an integer of {len(str(abs(value)))} digits"
        raise ValueError(f"must be finite in 32-bit floating point (at most {FLOAT32_MAX:.4g} in size), got {shown}")
    if value < lo or value > hi or (lo_open and value == lo) or (hi_open and value == hi):
        shown = f"{value:g}" if isinstance(value, float) else str(value)
        raise ValueError(f"must be {_range_text(lo, hi, lo_open, hi_open)}, got {shown}")
    return value


def number_option(lo: float = -math.inf, hi: float = math.inf):
    """An argparse `type` for a float option checked like a file's numbers: a bad value is
    argparse's one-line error and exit code 2, before the command starts."""
    def parse(text: str) -> float:
        try:
            value = float(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"expected a number, got {text!r}") from None
        try:
            return float(check_number(value, lo, hi))
        except ValueError as e:
            raise argparse.ArgumentTypeError(str(e)) from None
    return parse
