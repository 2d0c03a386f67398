"""Reader for the original ChromDragoNN release format, without running pickled code.

The original preprocessing (preprocess/make_joblib.py, make_rna_joblib.py) writes:
- one ``dnase.chr<N>.packbit.joblib`` per chromosome: a dict with ``features``
  (n, 1000, 1) uint8 = np.packbits of the (1000, 4) A,C,G,T one-hot along the last
  axis (so the bases sit in the top 4 bits of each byte), ``labels`` (n, ceil(T/8))
  uint8 = np.packbits of the 0/1 labels over the T tasks, ``label_metadata`` (task
  names), ``example_metadata`` ("chr:start-end", 1-based start) and ``num_cell_types``;
- one RNA joblib: ``rna_quants`` (contexts x genes, asinh TPM in the paper),
  ``genes`` and ``tasks``.

joblib files are pickles.  They are read here through joblib's own unpickler with
an allow-list: only numpy arrays (as joblib stores them), dtypes, dicts, lists,
strings and numbers can be built; anything else, and object arrays (which joblib
would read with a plain, unrestricted pickle), is refused.
"""
from __future__ import annotations

import os
import re
from pathlib import Path

import numpy as np

from chromdragonn.errors import ChromDragoNNError

_ALLOWED = {
    ("joblib.numpy_pickle", "NumpyArrayWrapper"),
    ("numpy", "ndarray"),
    ("numpy", "dtype"),
    ("numpy.core.multiarray", "_reconstruct"),
    ("numpy._core.multiarray", "_reconstruct"),
    ("numpy.core.multiarray", "scalar"),
    ("numpy._core.multiarray", "scalar"),
    ("numpy.dtypes", None),  # numpy 2 dtype classes, e.g. numpy.dtypes.UInt8DType
    ("builtins", "dict"), ("builtins", "list"), ("builtins", "str"), ("builtins", "int"),
    ("builtins", "float"), ("builtins", "tuple"), ("builtins", "bytes"),
    ("collections", "OrderedDict"),
}


def _safe_unpickler_class():
    from joblib.numpy_pickle import NumpyArrayWrapper, NumpyUnpickler

    class SafeNumpyUnpickler(NumpyUnpickler):
        dispatch = NumpyUnpickler.dispatch.copy()

        def find_class(self, module, name):
            if (module, name) in _ALLOWED or (module, None) in _ALLOWED:
                return super().find_class(module, name)
            raise ChromDragoNNError(f"{self.filename}: refusing to load {module}.{name} from a pickle "
                                    "(only numpy arrays, dicts, lists, strings and numbers are allowed)")

        def load_build(self):
            wrapper = self.stack[-2] if len(self.stack) >= 2 else None
            if isinstance(wrapper, NumpyArrayWrapper):
                state = self.stack[-1]
                dtype = state.get("dtype") if isinstance(state, dict) else None
                if dtype is not None and np.dtype(dtype).hasobject:
                    raise ChromDragoNNError(f"{self.filename}: refusing an object array (it would be unpickled "
                                            "without restrictions)")
            NumpyUnpickler.load_build(self)

        dispatch[__import__("pickle").BUILD[0]] = load_build

    return SafeNumpyUnpickler


def safe_joblib_load(path: str | os.PathLike):
    """``joblib.load`` through the allow-list unpickler above."""
    from joblib.numpy_pickle_utils import _validate_fileobject_and_memmap

    path = Path(path)
    if not path.is_file():
        raise ChromDragoNNError(f"joblib file not found: {path}")
    cls = _safe_unpickler_class()
    with open(path, "rb") as f:
        try:
            with _validate_fileobject_and_memmap(f, str(path), None) as (fobj, _):
                if isinstance(fobj, str):
                    raise ChromDragoNNError(f"{path}: old joblib format with companion files is not supported")
                try:
                    return cls(str(path), fobj, ensure_native_byte_order=True).load()
                except ChromDragoNNError:
                    raise
                except Exception as exc:
                    raise ChromDragoNNError(f"cannot read joblib file {path}: {type(exc).__name__}: {exc}") from None
        except ChromDragoNNError:
            raise
        except Exception as exc:
            raise ChromDragoNNError(f"cannot read joblib file {path}: {type(exc).__name__}: {exc}") from None


def decode_features(packed: np.ndarray) -> np.ndarray:
    """(n, 1000, 1) packbits bytes -> (n, 1000, 4) float32 one-hot (top 4 bits = A, C, G, T)."""
    packed = np.asarray(packed, dtype=np.uint8)
    if packed.ndim != 3 or packed.shape[2] != 1:
        raise ChromDragoNNError(f"release features must be (n, L, 1) packed bytes, got {packed.shape}")
    return np.unpackbits(packed, axis=-1)[:, :, :4].astype(np.float32)


def decode_labels(packed: np.ndarray, n_tasks: int) -> np.ndarray:
    """(n, ceil(T/8)) packbits bytes -> (n, T) uint8 labels."""
    return np.unpackbits(np.asarray(packed, dtype=np.uint8), axis=-1)[:, :n_tasks]


def read_release_chromosome(path: str | os.PathLike) -> dict:
    d = safe_joblib_load(path)
    if not isinstance(d, dict):
        raise ChromDragoNNError(f"{path}: expected a dict, found {type(d).__name__}")
    missing = [k for k in ("features", "labels", "label_metadata") if k not in d]
    if missing:
        raise ChromDragoNNError(f"{path}: lacks key(s) {', '.join(missing)} of the release format")
    return d


def read_release_rna(path: str | os.PathLike) -> tuple[np.ndarray, list[str], list[str]]:
    """(rna_quants (contexts, genes) float32, genes, tasks)."""
    d = safe_joblib_load(path)
    if not isinstance(d, dict) or not {"rna_quants", "genes", "tasks"} <= set(d):
        raise ChromDragoNNError(f"{path}: expected a dict with rna_quants, genes and tasks")
    q = np.asarray(d["rna_quants"], dtype=np.float32)
    genes, tasks = [str(g) for g in d["genes"]], [str(t) for t in d["tasks"]]
    if q.shape != (len(tasks), len(genes)):
        raise ChromDragoNNError(f"{path}: rna_quants is {q.shape}, expected ({len(tasks)} tasks, {len(genes)} genes)")
    return q, genes, tasks


_META = re.compile(r"^(?P<chrom>[^:]+):(?P<start>-?\d+)-(?P<end>\d+)$")


def import_release(dnase_dir: str | os.PathLike, rna_joblib: str | os.PathLike, out_dir: str | os.PathLike,
                   chromosomes: list[str] | None = None):
    """Release files -> a training store in window mode (label_kind "original release")."""
    from chromdragonn.inputs.genome import WINDOW
    from chromdragonn.training.store import BIN_SIZE, write_store

    dnase_dir = Path(dnase_dir)
    files = sorted(dnase_dir.glob("dnase.*.packbit.joblib"))
    if chromosomes:
        files = [f for f in files if f.name.split(".")[1] in chromosomes or f.name.split(".")[1] in
                 ["chr" + c for c in chromosomes]]
    if not files:
        raise ChromDragoNNError(f"{dnase_dir}: no dnase.<chrom>.packbit.joblib files")
    rna, genes, tasks = read_release_rna(rna_joblib)
    windows, labels, bins, chroms = [], [], [], []
    for f in files:
        d = read_release_chromosome(f)
        feats = np.asarray(d["features"], dtype=np.uint8)
        if feats.shape[1] != WINDOW:
            raise ChromDragoNNError(f"{f}: windows are {feats.shape[1]} bp, expected {WINDOW}")
        if list(map(str, d["label_metadata"])) != tasks:
            raise ChromDragoNNError(f"{f}: its tasks differ from the RNA file's tasks")
        onehot = decode_features(feats)
        codes = np.where(onehot.sum(axis=2) > 0, onehot.argmax(axis=2), 4).astype(np.uint8)
        lab = decode_labels(d["labels"], len(tasks))
        meta = [str(m) for m in d.get("example_metadata", [])]
        chrom_name = f.name.split(".")[1]
        starts = np.zeros(len(codes), np.int64)
        for i, m in enumerate(meta):
            hit = _META.match(m)
            if not hit:
                raise ChromDragoNNError(f"{f}: example_metadata[{i}] = {m!r} is not chrom:start-end")
            # 1-based window start in the release; the bin is the central 200 bp
            starts[i] = int(hit["start"]) - 1 + (WINDOW - BIN_SIZE) // 2
        chroms.append((chrom_name, 0))
        bins.append(np.stack([np.full(len(codes), len(chroms) - 1), starts], axis=1))
        windows.append(codes)
        labels.append(lab)
    return write_store(out_dir, bins=np.concatenate(bins), labels=np.concatenate(labels), expression=rna,
                       contexts=tasks, genes=genes, chromosomes=chroms, label_kind="original release",
                       windows=np.concatenate(windows),
                       source={"dnase_dir": str(dnase_dir), "rna": str(rna_joblib)})
