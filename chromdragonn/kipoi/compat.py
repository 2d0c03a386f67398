"""Kipoi 0.8.6 and kipoi-veff 0.3.1 on numpy 2, and the ``kipoi`` command's error and warning display.

One numpy stand-in (:class:`LegacyNumpy`) serves both: it is handed to the legacy modules in place
of their module-level ``np``; numpy itself and every other module are untouched.
"""
from __future__ import annotations

import logging
import sys
import types
from pathlib import Path

import numpy

from chromdragonn.errors import ChromDragoNNError


class LegacyNumpy(types.ModuleType):
    """numpy plus the names numpy 2 removed, as kipoi_veff 0.3.1 uses them."""

    def __init__(self):
        super().__init__("numpy")
        self._numpy = numpy
        legacy = {"int": int, "float": float, "bool": bool, "object": object, "str": str,
                  "string_": numpy.bytes_, "unicode_": numpy.str_, "float_": numpy.float64,
                  "in1d": _in1d}
        for name, value in legacy.items():
            if name not in vars(numpy):  # hasattr would warn for the names numpy 2 reserves
                setattr(self, name, value)

    def __getattr__(self, name):
        return getattr(self._numpy, name)


def _in1d(ar1, ar2, assume_unique=False, invert=False):
    """np.in1d (removed in numpy 2.4): np.isin on the flattened first array.

    Object arrays holding None (kipoi_veff's shape checks) are compared elementwise,
    as the numpy 1 in1d did."""
    a = numpy.asarray(ar1).ravel()
    b = numpy.asarray(ar2).ravel()
    if a.dtype == object or b.dtype == object:
        values = list(b)
        out = numpy.array([any(x is v or x == v for v in values) for x in a], dtype=bool)
        return ~out if invert else out
    return numpy.isin(a, b, assume_unique=assume_unique, invert=invert)


def apply_kipoi_compat() -> None:
    """Let kipoi 0.8.6's writers run on numpy 2; idempotent; touches nothing outside kipoi.writers.

    kipoi.writers tests ``dtype.type in [np.string_, np.str_, np.unicode_]`` when it
    writes HDF5 and TSV; numpy 2 removed both aliases, so ``kipoi predict -o out.h5``
    fails with AttributeError.  Only kipoi.writers' own reference to numpy is
    replaced (by :class:`LegacyNumpy`); numpy itself is not modified.
    """
    if hasattr(numpy, "string_"):  # numpy 1.x: nothing to do
        return
    try:
        import kipoi.writers as writers
    except ImportError:
        return
    if not isinstance(writers.np, LegacyNumpy):
        writers.np = LegacyNumpy()


def _running_kipoi_cli() -> bool:
    return Path(sys.argv[0] if sys.argv else "").name == "kipoi" or (
        getattr(sys.modules.get("__main__"), "__package__", None) == "kipoi")


def adapt_kipoi_cli() -> None:
    """Make the ``kipoi`` command show chromdragonn's warnings, and its errors on one line.

    - ``kipoi`` configures the root logger to print only CRITICAL records, which would
      hide warnings such as how many panel TFs were filled; a stderr handler for
      WARNING and above is added to the ``chromdragonn`` logger when that is the case.
    - Under the ``kipoi`` command only, an uncaught ChromDragoNNError (bad input) is
      printed as ``error: <message>`` instead of a traceback; other exceptions keep
      their traceback.  Plain Python, R and pytest are left as they are.
    """
    _show_warnings()
    if _running_kipoi_cli() and not getattr(sys.excepthook, "_chromdragonn", False):
        previous = sys.excepthook

        def hook(exc_type, exc, tb):
            if issubclass(exc_type, ChromDragoNNError):
                print(f"error: {exc}", file=sys.stderr)
            else:
                previous(exc_type, exc, tb)

        hook._chromdragonn = True
        sys.excepthook = hook


def _show_warnings() -> None:
    pkg = logging.getLogger("chromdragonn")
    if pkg.handlers or not pkg.propagate:
        return
    root = logging.getLogger()
    if not root.handlers or any(h.level <= logging.WARNING for h in root.handlers):
        return
    handler = logging.StreamHandler(sys.stderr)
    handler.setLevel(logging.WARNING)
    handler.setFormatter(logging.Formatter("%(levelname)s [%(name)s] %(message)s"))
    pkg.addHandler(handler)
    pkg.propagate = False


