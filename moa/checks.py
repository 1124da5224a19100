"""Small input checks shared by the modules that refuse bad input.

numpy scalars are ordinary numbers to a user (``np.arange`` gives ``np.int64``, a float32 array
gives ``np.float32``), so they are accepted wherever a Python ``int``/``float`` is; ``bool`` is
refused although Python counts it as an integer, because ``amount=True`` is always a mistake.
"""

from __future__ import annotations

import math
import numbers
import pathlib

__all__ = ["is_finite_real", "is_integer", "read_utf8"]


def is_finite_real(x: object) -> bool:
    """True for a finite real number (int, float, numpy integer or floating), not a bool or a string."""
    return isinstance(x, numbers.Real) and not isinstance(x, bool) and math.isfinite(x)


def is_integer(x: object) -> bool:
    """True for an int or numpy integer, not a bool (``n_cycles=np.int64(3)`` is fine, ``2.0`` is not)."""
    return isinstance(x, numbers.Integral) and not isinstance(x, bool)


def read_utf8(path: str | pathlib.Path) -> str:
    """The text of ``path``; a file that is not UTF-8 is refused naming the file and the first bad byte."""
    path = pathlib.Path(path)
    data = path.read_bytes()
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise ValueError(
            f"{path}: not UTF-8 text (byte 0x{data[exc.start]:02x} at offset {exc.start}); save the file as UTF-8"
        ) from None
