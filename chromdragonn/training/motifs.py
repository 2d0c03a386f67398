"""MEME-format motif files -> position frequency matrices and log-odds matrices."""
from __future__ import annotations

import os
from dataclasses import dataclass

import numpy as np

from chromdragonn.errors import ChromDragoNNError


@dataclass(frozen=True)
class Motif:
    motif_id: str      # e.g. MA0139.2
    name: str          # TF name as the file gives it, e.g. CTCF or Ahr::Arnt
    pfm: np.ndarray    # (width, 4) letter probabilities, A C G T


def read_meme(path: str | os.PathLike) -> list[Motif]:
    """Every motif of a MEME file, in file order (alphabet must be ACGT)."""
    motifs: list[Motif] = []
    with open(path) as fh:
        lines = fh.read().splitlines()
    i = 0
    while i < len(lines):
        line = lines[i].strip()
        if line.startswith("ALPHABET") and "ACGT" not in line.replace(" ", ""):
            raise ChromDragoNNError(f"{path}:{i + 1}: alphabet is not ACGT: {line}")
        if line.startswith("MOTIF"):
            fields = line.split()
            if len(fields) < 2:
                raise ChromDragoNNError(f"{path}:{i + 1}: MOTIF line without an identifier")
            motif_id = fields[1]
            name = fields[2] if len(fields) > 2 else fields[1]
            j = i + 1
            while j < len(lines) and not lines[j].strip().startswith("letter-probability"):
                j += 1
            if j == len(lines):
                raise ChromDragoNNError(f"{path}:{i + 1}: motif {motif_id} has no letter-probability matrix")
            header = lines[j].replace("=", " = ").split()
            try:
                width = int(header[header.index("w") + 2])
            except (ValueError, IndexError):
                raise ChromDragoNNError(f"{path}:{j + 1}: cannot read the motif width (w=) of {motif_id}") from None
            rows = []
            for k in range(j + 1, j + 1 + width):
                try:
                    rows.append([float(x) for x in lines[k].split()[:4]])
                except (ValueError, IndexError):
                    raise ChromDragoNNError(f"{path}:{k + 1}: bad matrix row in motif {motif_id}") from None
            pfm = np.asarray(rows, dtype=np.float64)
            if pfm.shape != (width, 4):
                raise ChromDragoNNError(f"{path}:{j + 1}: motif {motif_id} matrix is not {width} x 4")
            motifs.append(Motif(motif_id, name, pfm))
            i = j + width
        i += 1
    if not motifs:
        raise ChromDragoNNError(f"{path}: no MOTIF entries found (is it a MEME motif file?)")
    return motifs


def log_odds(pfm: np.ndarray, pseudocount: float = 0.01, background: float = 0.25) -> np.ndarray:
    """log2(p / background) per position and base, with a pseudocount so no entry is -inf."""
    p = (pfm + pseudocount) / (pfm + pseudocount).sum(axis=1, keepdims=True)
    return np.log2(p / background)
