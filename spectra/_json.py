"""JSON encoding shared by the ``--json`` outputs: infinities spelled as strings.

JSON has no infinity; every document this package writes spells ``inf`` as
the string ``"inf"`` (``"-inf"``, ``"nan"`` likewise) and turns numpy scalars
into Python numbers.
"""

from __future__ import annotations

import math

import numpy as np

__all__ = ["jsonable"]


def jsonable(obj):
    """Return `obj` with nested dicts/lists converted and non-finite floats spelled out."""
    if isinstance(obj, dict):
        return {str(k): jsonable(v) for k, v in obj.items()}
    if isinstance(obj, list | tuple):
        return [jsonable(v) for v in obj]
    if isinstance(obj, np.generic):
        obj = obj.item()
    if isinstance(obj, float) and not math.isfinite(obj):
        return "inf" if obj > 0 else ("-inf" if obj < 0 else "nan")
    return obj
