"""``chromdragonn track``: genome-browser tracks of P(accessible) for any RNA-seq sample.

Regions (``--region``, ``--bed`` or whole ``--chromosomes`` of the FASTA) are tiled with 200 bp
bins every ``--step`` bp (default 50, the paper's tiling).  Each bin is scored like a
``chromdragonn predict`` interval (the 1,000 bp window centred on it) and its P(accessible) is
written over its central ``step`` bp, so the bins of a region tile it without gaps or overlaps.
One bigWig per context (``OUT_DIR/<context>.bw``, chromosome names and sizes from the FASTA);
``--reference-context C`` adds ``<context>_minus_<C>.bw``; ``--matrix OUT.h5ad`` the bins x
contexts matrix as AnnData.  Bins whose 200 bp are all N (assembly gaps) get no value: the N
rule of the package (docs/variant_effects.md); their count is logged.

The sequence-feature cache (``--cache DIR``).  Everything before the expression enters the model
is the same for every context: the trunk and fc1's trunk and mean columns, 1,000 numbers per bin
(:class:`chromdragonn.nn.head_math.SplitHead`).  They are stored once per (FASTA regions, step,
weights, mean track), as float16 memory maps, one per fold, with checksums; a later run in new
contexts reads them and runs only the per-context part of the head (about 1 MMAC per bin), never
the trunk.  A cache whose FASTA sequence, regions, step, weights or mean track differ from the
run's is refused with a one-line error naming what differs.

Scale: memory is flat in region length (bins stream in chunks of :data:`CHUNK`; results go to a
memory-mapped file beside the outputs).  Under ``torchrun --nproc-per-node N -m chromdragonn track
...`` the chunks are dealt to the ranks (each on its own GPU when there is one; the cache and the
result file must then be on a file system all ranks see); rank 0 writes the same files as a single
process.  A bin is always computed in the same chunk, whatever the number of ranks.
"""
from __future__ import annotations

import contextlib
import hashlib
import json
import logging
import os
import re
import shutil
import warnings
from dataclasses import dataclass, field
from pathlib import Path
from typing import Iterator, Sequence

import numpy as np
import torch
from tqdm import tqdm

from chromdragonn.cli import model_option
from chromdragonn.errors import ChromDragoNNError
from chromdragonn.inputs.genome import WINDOW, Genome, one_hot_batch, parse_region, read_bed
from chromdragonn.inputs.session import Session, positive_int
from chromdragonn.nn.fast_trunk import inference_trunk
from chromdragonn.nn.head_math import SplitHead
from chromdragonn.nn.weights import md5sum, tensor_checksum
from chromdragonn.outputs.atomic import PARTIAL_SUFFIX, atomic_outputs, check_output_dir, check_output_path

log = logging.getLogger(__name__)

BIN = 200            # bp per bin: the label resolution of the model
DEFAULT_STEP = 50    # the paper's tiling
CHUNK = 256          # bins per chunk: the unit of streaming, of batching and of sharding over ranks
HEAD_ROWS = 2048     # (bin, context) rows per head pass from the cache: a block of whole chunks
CACHE_FORMAT = "chromdragonn-track-cache/1"
FEATURES = 1000      # numbers per bin in the cache: fc1's pre-activation without the expression part
_CONTEXT_NAME = re.compile(r"^[^/\\\x00]+$")


# ---------------------------------------------------------------------------
# Regions and bins
# ---------------------------------------------------------------------------

@dataclass(frozen=True)
class Tiling:
    """200 bp bins every ``step`` bp over sorted, non-overlapping regions of the FASTA."""

    regions: tuple[tuple[str, int, int], ...]   # (FASTA chromosome name, start, end), 0-based half-open
    step: int

    def bins_per_region(self) -> list[int]:
        return [max(0, (e - s - BIN) // self.step + 1) for _, s, e in self.regions]

    @property
    def n_bins(self) -> int:
        return sum(self.bins_per_region())

    def bin_coordinates(self, lo: int, hi: int) -> tuple[list[str], np.ndarray]:
        """Chromosome and start of bins ``lo`` .. ``hi - 1`` (global order)."""
        chroms, starts, first = [], [], 0
        for (chrom, s, _), n in zip(self.regions, self.bins_per_region()):
            a, b = max(lo, first), min(hi, first + n)
            if a < b:
                chroms += [chrom] * (b - a)
                starts.append(s + (np.arange(a, b) - first) * self.step)
            first += n
        return chroms, (np.concatenate(starts) if starts else np.zeros(0, dtype=np.int64)).astype(np.int64)

    def chunks(self, chunks_per_block: int = 1) -> list[tuple[int, int]]:
        """Bins ``[lo, hi)`` of consecutive blocks of ``chunks_per_block`` chunks (fixed boundaries,
        whatever the number of ranks)."""
        size = CHUNK * chunks_per_block
        return [(lo, min(lo + size, self.n_bins)) for lo in range(0, self.n_bins, size)]

    def value_span(self, starts: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """The central ``step`` bp of each bin, where its value is written."""
        lo = starts + BIN // 2 - self.step // 2
        return lo, lo + self.step


def _merge(regions: list[tuple[str, int, int]], order: dict[str, int]) -> list[tuple[str, int, int]]:
    regions = sorted(regions, key=lambda r: (order[r[0]], r[1], r[2]))
    merged: list[list] = []
    for c, s, e in regions:
        if merged and merged[-1][0] == c and s <= merged[-1][2]:
            merged[-1][2] = max(merged[-1][2], e)
        else:
            merged.append([c, s, e])
    return [tuple(r) for r in merged]


def make_tiling(genome: Genome, step: int, region: str | None = None, bed=None,
                chromosomes: str | Sequence[str] | None = None) -> Tiling:
    """The bins of exactly one of ``region``, ``bed`` or ``chromosomes``, checked against the FASTA."""
    step = positive_int(step, "--step")
    if step > BIN:
        raise ChromDragoNNError(f"--step {step} is larger than the {BIN} bp bins: the track would have gaps")
    given = [x is not None for x in (region, bed, chromosomes)]
    if sum(given) != 1:
        raise ChromDragoNNError("give exactly one of --region, --bed or --chromosomes")
    raw: list[tuple[str, int, int, str]] = []
    if region is not None:
        chrom, s, e = parse_region(region)
        raw.append((chrom, s, e, f"region {region}"))
    elif bed is not None:
        df = read_bed(bed)
        if len(df) == 0:
            raise ChromDragoNNError(f"BED file {bed} has no regions")
        raw += [(r.chrom, int(r.start), int(r.end), f"{bed}: region {r.name}") for r in df.itertuples()]
    else:
        names = chromosomes.split(",") if isinstance(chromosomes, str) else list(chromosomes)
        for name in [n.strip() for n in names if n.strip()]:
            fasta_name = genome.resolve(name)
            raw.append((fasta_name, 0, genome.lengths[fasta_name], f"chromosome {name}"))
        if not raw:
            raise ChromDragoNNError("--chromosomes names no chromosome")
    regions = []
    for chrom, s, e, where in raw:
        try:
            name = genome.resolve(chrom)
        except ChromDragoNNError as exc:
            raise ChromDragoNNError(f"{where}: {exc}") from None
        if e > genome.lengths[name]:
            raise ChromDragoNNError(f"{where} ({chrom}:{s + 1}-{e}) runs past the end of {name} "
                                    f"({genome.lengths[name]:,} bp) in {genome.path}; is the FASTA the right assembly?")
        if e - s < BIN:
            raise ChromDragoNNError(f"{where} is {e - s} bp, shorter than one {BIN} bp bin")
        regions.append((name, s, e))
    merged = _merge(regions, {c: i for i, c in enumerate(genome.chromosomes)})
    if len(merged) < len(regions):
        log.info("%d overlapping or adjacent regions merged into %d", len(regions), len(merged))
    return Tiling(tuple(merged), step)


def _windows(genome: Genome, chroms: list[str], starts: np.ndarray) -> list[str]:
    """The 1,000 bp window of each bin: its centre, as kipoiseq resizes a 200 bp interval."""
    left = (WINDOW - BIN) // 2
    return [genome.fetch(c, int(s) - left, int(s) - left + WINDOW) for c, s in zip(chroms, starts)]


def region_digest(genome: Genome, tiling: Tiling) -> str:
    """sha256 of the sequence the bins read (regions plus the windows' flanks): the cache's FASTA identity."""
    h = hashlib.sha256()
    left = (WINDOW - BIN) // 2
    for chrom, s, e in tiling.regions:
        h.update(f"{chrom}:{s}-{e}|".encode())
        for lo in range(s - left, e + left, 1 << 20):
            h.update(genome.fetch(chrom, lo, min(lo + (1 << 20), e + left)).encode())
    return h.hexdigest()


# ---------------------------------------------------------------------------
# Ranks (torchrun) and the per-fold model parts
# ---------------------------------------------------------------------------

class Ranks:
    """This process's share of the chunks: all of them, or every WORLD_SIZE-th under torchrun."""

    def __init__(self, device: torch.device):
        self.world = int(os.environ.get("WORLD_SIZE", "1"))
        self.rank = int(os.environ.get("RANK", "0"))
        self.device = device
        if self.world > 1:
            import torch.distributed as dist

            if device.type == "cuda":
                self.device = torch.device(f"cuda:{int(os.environ.get('LOCAL_RANK', '0'))}")
                torch.cuda.set_device(self.device)
            if not dist.is_initialized():
                dist.init_process_group("nccl" if self.device.type == "cuda" else "gloo")

    @property
    def main(self) -> bool:
        return self.rank == 0

    def mine(self, chunks: list) -> list:
        return chunks[self.rank::self.world]

    def barrier(self) -> None:
        if self.world > 1:
            import torch.distributed as dist

            dist.barrier()

    def share(self, value):
        """Rank 0's ``value`` on every rank."""
        if self.world == 1:
            return value
        import torch.distributed as dist

        box = [value]
        dist.broadcast_object_list(box, src=0)
        return box[0]


def _members(model) -> list:
    return list(model.members) if hasattr(model, "members") else [model]


@dataclass
class FoldParts:
    trunk: torch.nn.Module
    head: SplitHead
    checksum: str
    compiled: bool = False   # a compiled trunk always gets full chunks (one shape, one compilation)


# torch.compile of the inference trunk costs about 40 s per fold once and then saves about 10% of the
# trunk's time on this CPU (benchmarks/bench_track.py); worth it from about this many trunk passes.
COMPILE_FROM_PASSES = 20_000
COMPILE_CHOICES = ("auto", "yes", "no")


def fold_parts(model, compile_trunk: bool = False) -> list[FoldParts]:
    parts = []
    for m in _members(model):
        trunk = inference_trunk(m.trunk)
        if compile_trunk:
            trunk = torch.compile(trunk, dynamic=False)
        parts.append(FoldParts(trunk, SplitHead(m), tensor_checksum(m.state_dict()), compile_trunk))
    return parts


# ---------------------------------------------------------------------------
# The sequence-feature cache
# ---------------------------------------------------------------------------

def _file_sha256(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as fh:
        for block in iter(lambda: fh.read(1 << 22), b""):
            h.update(block)
    return h.hexdigest()


@dataclass
class CacheKey:
    """What a cache was computed from; a cache is used only when all of it matches."""

    fasta_sequence_sha256: str
    regions: list
    step: int
    weights: list          # tensor checksum of each fold, in order
    mean_track_md5: str | None

    def describe_difference(self, other: "CacheKey") -> str | None:
        # The sequence digest covers the regions too, so it is compared last.
        for name, what in (("regions", "different regions"), ("step", "a different step"),
                           ("weights", "different weights"), ("mean_track_md5", "a different mean-accessibility track"),
                           ("fasta_sequence_sha256", "a different FASTA sequence")):
            if json.loads(json.dumps(getattr(self, name))) != json.loads(json.dumps(getattr(other, name))):
                return what
        return None


class FeatureCache:
    """``DIR/meta.json``, ``DIR/valid.npy`` (bins with sequence) and ``DIR/fold<i>.f16`` (bins x 1000)."""

    def __init__(self, path: Path, key: CacheKey, n_bins: int):
        self.path, self.key, self.n_bins = Path(path), key, n_bins

    def fold_file(self, i: int, folder: Path | None = None) -> Path:
        return (folder or self.path) / f"fold{i}.f16"

    def exists(self) -> bool:
        return (self.path / "meta.json").is_file()

    def check(self) -> None:
        """A one-line error when the cache at ``path`` is not this run's, or is damaged."""
        try:
            meta = json.loads((self.path / "meta.json").read_text())
        except (OSError, ValueError) as exc:
            raise ChromDragoNNError(f"cache {self.path}: meta.json is not readable ({exc})") from None
        if meta.get("format") != CACHE_FORMAT:
            raise ChromDragoNNError(f"cache {self.path} is not a track cache of format {CACHE_FORMAT}")
        stored = CacheKey(**meta["key"])
        differs = stored.describe_difference(self.key)
        if differs:
            raise ChromDragoNNError(
                f"cache {self.path} was computed with {differs} than this run's; give another --cache "
                "folder (or delete this one to rebuild it)")
        files = ["valid.npy"] + [self.fold_file(i).name for i in range(len(self.key.weights))]
        for name in files:
            if _file_sha256(self.path / name) != meta["sha256"].get(name):
                raise ChromDragoNNError(f"cache {self.path}: {name} is damaged (its checksum differs); delete the "
                                        "cache folder to rebuild it")

    def open_fold(self, i: int) -> np.memmap:
        return np.memmap(self.fold_file(i), dtype=np.float16, mode="r", shape=(self.n_bins, FEATURES))

    def valid(self) -> np.ndarray:
        return np.load(self.path / "valid.npy")


# ---------------------------------------------------------------------------
# The computation
# ---------------------------------------------------------------------------

@dataclass
class TrackRun:
    """Everything resolved and checked before the work starts."""

    session: Session = field(repr=False)
    genome: Genome
    tiling: Tiling = field(repr=False)
    parts: list[FoldParts] = field(repr=False)
    ranks: Ranks = field(repr=False)
    trunk_passes: int = 0   # windows run through a trunk by this process (0 with a warm cache)


@dataclass(frozen=True)
class _Win:
    chrom: str
    start: int
    end: int


def _chunk_inputs(run: TrackRun, chroms, starts) -> tuple[torch.Tensor, torch.Tensor | None, np.ndarray]:
    """One-hot windows (n, 1000, 4), their mean accessibility (or None), and which bins have
    sequence (not all N in the bin's 200 bp)."""
    seqs = _windows(run.genome, chroms, starts)
    left = (WINDOW - BIN) // 2
    valid = np.array([set(s[left:left + BIN]) != {"N"} for s in seqs], dtype=bool)
    x = torch.from_numpy(one_hot_batch(seqs)).to(run.ranks.device)
    mean = run.session.mean_values([_Win(c, int(s) - left, int(s) - left + WINDOW) for c, s in zip(chroms, starts)])
    return x, (None if mean is None else mean.to(run.ranks.device)), valid


def _per_bin(run: TrackRun, fold: FoldParts, x: torch.Tensor, mean) -> torch.Tensor:
    n = len(x)
    if fold.compiled and n < CHUNK:  # the last chunk, padded to the compiled shape
        x = torch.cat([x, x.new_zeros(CHUNK - n, *x.shape[1:])])
    with torch.no_grad():
        feats = fold.trunk(x)[:n]
    run.trunk_passes += n
    return fold.head.per_bin(feats, mean)


@contextlib.contextmanager
def _cache_lock(cache: FeatureCache, ranks: Ranks) -> Iterator[None]:
    """One builder per cache folder: ``<DIR>.lock``, created exclusively by rank 0, removed at the end."""
    lock = cache.path.with_name(cache.path.name + ".lock")
    problem = None
    if ranks.main:
        try:
            fd = os.open(lock, os.O_CREAT | os.O_EXCL | os.O_WRONLY)
            os.write(fd, f"{os.getpid()}\n".encode())
            os.close(fd)
        except FileExistsError:
            problem = (f"cache {cache.path} is being built by another run ({lock} exists); wait for it, or delete "
                       "the lock file if no run is building it")
    problem = ranks.share(problem)
    if problem:
        raise ChromDragoNNError(problem)
    try:
        yield
    finally:
        if ranks.main:
            lock.unlink(missing_ok=True)


def build_cache(run: TrackRun, cache: FeatureCache, progress: bool) -> None:
    """Fill ``cache`` (trunk passes) under its lock, writing to ``<DIR>.partial`` and renaming when
    complete; the partial folder is removed when the build fails or is interrupted."""
    with _cache_lock(cache, run.ranks):
        tmp = cache.path.with_name(cache.path.name + ".partial")
        try:
            _fill_cache(run, cache, tmp, progress)
        finally:
            if run.ranks.main:
                shutil.rmtree(tmp, ignore_errors=True)


def _fill_cache(run: TrackRun, cache: FeatureCache, tmp: Path, progress: bool) -> None:
    n = run.tiling.n_bins
    if run.ranks.main:
        if tmp.exists():
            shutil.rmtree(tmp)
        tmp.mkdir(parents=True)
        for i in range(len(run.parts)):
            np.memmap(cache.fold_file(i, tmp), dtype=np.float16, mode="w+", shape=(n, FEATURES)).flush()
        np.lib.format.open_memmap(tmp / "valid.npy", mode="w+", dtype=bool, shape=(n,)).flush()
    run.ranks.barrier()
    valid = np.lib.format.open_memmap(tmp / "valid.npy", mode="r+")
    mine = run.ranks.mine(run.tiling.chunks())
    bar = tqdm(total=sum(b - a for a, b in mine) * len(run.parts), unit="bin", desc="sequence features",
               disable=not progress or not run.ranks.main)
    outs = [np.memmap(cache.fold_file(i, tmp), dtype=np.float16, mode="r+", shape=(n, FEATURES))
            for i in range(len(run.parts))]
    for lo, hi in mine:
        x, mean, ok = _chunk_inputs(run, *run.tiling.bin_coordinates(lo, hi))
        valid[lo:hi] = ok
        for out, fold in zip(outs, run.parts):
            out[lo:hi] = _per_bin(run, fold, x, mean).cpu().numpy().astype(np.float16)
            bar.update(hi - lo)
    for out in outs:
        out.flush()
    bar.close()
    valid.flush()
    del valid
    run.ranks.barrier()
    if run.ranks.main:
        files = ["valid.npy"] + [cache.fold_file(i).name for i in range(len(run.parts))]
        meta = {"format": CACHE_FORMAT, "n_bins": n, "features": FEATURES, "dtype": "float16",
                "key": cache.key.__dict__, "sha256": {f: _file_sha256(tmp / f) for f in files}}
        (tmp / "meta.json").write_text(json.dumps(meta, indent=1))
        if cache.path.exists():
            cache.path.rmdir()  # an empty folder the user named (check_cache_location allows only that)
        os.replace(tmp, cache.path)
    run.ranks.barrier()


def compute_tracks(run: TrackRun, results_path: Path, cache: FeatureCache | None, progress: bool) -> np.ndarray:
    """P(accessible) of every bin in every context into the (bins x contexts) float32 file
    ``results_path`` (fold average); returns the bins' 'has sequence' mask."""
    n, c = run.tiling.n_bins, len(run.session.contexts)
    if run.ranks.main:
        np.lib.format.open_memmap(results_path, mode="w+", dtype=np.float32, shape=(n, c)).flush()
        np.lib.format.open_memmap(results_path.with_name("valid.npy"), mode="w+", dtype=bool, shape=(n,)).flush()
    run.ranks.barrier()
    results = np.lib.format.open_memmap(results_path, mode="r+")
    valid_out = np.lib.format.open_memmap(results_path.with_name("valid.npy"), mode="r+")
    expression = run.session.expression_tensor().to(run.ranks.device)
    contexts_parts = [fold.head.per_context(expression) for fold in run.parts]
    # From the cache, the head runs on blocks of about HEAD_ROWS (bin, context) rows: fewer, larger
    # passes; without it, chunk by chunk as the trunk runs.
    per_block = max(1, HEAD_ROWS // (CHUNK * c)) if cache is not None else 1
    mine = run.ranks.mine(run.tiling.chunks(per_block))
    bar = tqdm(total=sum(b - a for a, b in mine), unit="bin", desc=f"tracks ({c} contexts)",
               disable=not progress or not run.ranks.main)
    cached = [cache.open_fold(i) for i in range(len(run.parts))] if cache is not None else None
    valid_cached = cache.valid() if cache is not None else None
    for lo, hi in mine:
        total = torch.zeros(hi - lo, c, dtype=torch.float32, device=run.ranks.device)
        if cached is None:
            x, mean, ok = _chunk_inputs(run, *run.tiling.bin_coordinates(lo, hi))
        else:
            ok = valid_cached[lo:hi]
        for i, fold in enumerate(run.parts):
            if cached is not None:
                per_bin = torch.from_numpy(np.array(cached[i][lo:hi])).to(run.ranks.device)
            else:
                per_bin = _per_bin(run, fold, x, mean)
            total += fold.head.probability(per_bin, contexts_parts[i])
        results[lo:hi] = (total / len(run.parts)).cpu().numpy()
        valid_out[lo:hi] = ok
        bar.update(hi - lo)
    bar.close()
    results.flush()
    valid_out.flush()
    run.ranks.barrier()
    return np.lib.format.open_memmap(results_path.with_name("valid.npy"), mode="r")


# ---------------------------------------------------------------------------
# Outputs
# ---------------------------------------------------------------------------

def output_names(contexts: Sequence[str], reference: str | None) -> list[str]:
    names = [f"{c}.bw" for c in contexts]
    if reference is not None:
        names += [f"{c}_minus_{reference}.bw" for c in contexts if c != reference]
    return names


def write_bigwigs(run: TrackRun, results: np.ndarray, valid: np.ndarray, paths: list[Path],
                  reference: str | None) -> None:
    """One bigWig per context (and difference tracks), streamed chunk by chunk in genome order."""
    import pyBigWig

    contexts = run.session.contexts
    header = [(c, run.genome.lengths[c]) for c in run.genome.chromosomes]
    handles = []
    try:
        for p in paths:
            bw = pyBigWig.open(str(p), "w")
            bw.addHeader(header)
            handles.append(bw)
        ref = contexts.index(reference) if reference is not None else None
        columns = [(j, None) for j in range(len(contexts))] + \
                  ([(j, ref) for j in range(len(contexts)) if j != ref] if ref is not None else [])
        for lo, hi in run.tiling.chunks():
            chroms, starts = run.tiling.bin_coordinates(lo, hi)
            keep = np.asarray(valid[lo:hi], dtype=bool)
            if not keep.any():
                continue
            a, b = run.tiling.value_span(starts[keep])
            names = [c for c, k in zip(chroms, keep) if k]
            block = np.asarray(results[lo:hi], dtype=np.float64)[keep]
            for bw, (j, r) in zip(handles, columns):
                values = block[:, j] - (block[:, r] if r is not None else 0.0)
                bw.addEntries(names, a.tolist(), ends=b.tolist(), values=values.tolist())
    finally:
        for bw in handles:
            bw.close()


def write_matrix(run: TrackRun, results: np.ndarray, valid: np.ndarray, path: Path) -> None:
    """The bins (with sequence) x contexts matrix as AnnData: obs chrom/start/end, var the contexts."""
    import pandas as pd

    keep = np.flatnonzero(np.asarray(valid, dtype=bool))
    chroms, starts = run.tiling.bin_coordinates(0, run.tiling.n_bins)
    chrom = np.asarray(chroms, dtype=object)[keep]
    start = starts[keep]
    # object-dtype index and categorical chrom: what anndata writes on pandas 2 and 3 alike
    obs = pd.DataFrame({"chrom": pd.Categorical(chrom), "start": start, "end": start + BIN},
                       index=pd.Index([f"{c}:{s}-{s + BIN}" for c, s in zip(chrom, start)], dtype=object))
    var = pd.DataFrame(index=pd.Index(list(run.session.contexts), dtype=object))
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message=".*future.infer_string.*")  # anndata asking pandas 3
        import anndata

        adata = anndata.AnnData(X=np.asarray(results[keep], dtype=np.float32), obs=obs, var=var)
        adata.uns["description"] = (f"P(accessible) of 200 bp bins every {run.tiling.step} bp (ChromDragoNN); "
                                    "obs: bins (0-based, half-open), var: cell contexts")
        adata.write_h5ad(path)


# ---------------------------------------------------------------------------
# Entry point
# ---------------------------------------------------------------------------

def check_cache_location(path: Path) -> None:
    if path.exists() and not path.is_dir():
        raise ChromDragoNNError(f"--cache {path} is not a folder")
    if path.is_dir() and not (path / "meta.json").is_file() and any(path.iterdir()):
        raise ChromDragoNNError(f"--cache {path} is a folder with other files in it; give an empty or new folder")
    check_output_dir(path.parent, "the cache's parent folder")


@contextlib.contextmanager
def _work_folder(out_dir: Path, ranks: Ranks) -> Iterator[Path]:
    """This run's own scratch folder beside the outputs (for the results memory map), removed at the end;
    runs sharing an output folder never share it."""
    import tempfile

    work = Path(ranks.share(tempfile.mkdtemp(prefix=".chromdragonn-track-", suffix=PARTIAL_SUFFIX, dir=out_dir)
                            if ranks.main else None))
    try:
        yield work
    finally:
        ranks.barrier()
        if ranks.main:
            shutil.rmtree(work, ignore_errors=True)


def make_track(fasta, contexts, out_dir, region: str | None = None, bed=None, chromosomes=None,
               expression=None, expression_units: str = "tpm", model=None, mean_bigwig=None,
               step: int = DEFAULT_STEP, cache=None, reference_context: str | None = None, matrix=None,
               device: str = "cpu", compile_trunk: str = "auto", progress: bool = True) -> TrackRun:
    """Write ``OUT_DIR/<context>.bw`` for every context (``contexts="all"``: every context of the
    expression tables) and the optional difference tracks and matrix.  Returns the run, whose
    ``trunk_passes`` says how many windows went through a trunk (0 with a warm cache)."""
    out_dir = check_output_dir(out_dir)
    inputs = [fasta, bed, expression, mean_bigwig]
    matrix = check_output_path(matrix, "--matrix", suffixes=(".h5ad",), inputs=inputs) if matrix is not None else None
    genome = Genome(fasta)
    tiling = make_tiling(genome, step, region, bed, chromosomes)
    if isinstance(contexts, str) and contexts.strip().lower() == "all":
        from chromdragonn.inputs.session import expression_source

        contexts = expression_source(expression, expression_units).contexts
    session = Session.open(contexts, model, expression, expression_units, mean_bigwig, device)
    bad = [c for c in session.contexts if not _CONTEXT_NAME.match(c) or c.startswith(".")]
    if bad:
        raise ChromDragoNNError(f"context name {bad[0]!r} cannot be a file name of {out_dir}; rename it in the table")
    if reference_context is not None and reference_context not in session.contexts:
        raise ChromDragoNNError(f"--reference-context {reference_context} is not among --contexts "
                                f"({', '.join(session.contexts)})")
    session.check_chromosomes([c for c, _, _ in tiling.regions])
    finals = [out_dir / name for name in output_names(session.contexts, reference_context)]
    if matrix is not None:
        finals.append(matrix)
    seen: dict[Path, str] = {}
    for path in finals:  # every target checked, and told apart, before any work
        check_output_path(path, "output", inputs=inputs, check_folder=path.parent != out_dir)
        if path.resolve() in seen:
            raise ChromDragoNNError(f"two outputs would be the same file {path}; a context named like a difference "
                                    "track? rename it in the table")
        seen[path.resolve()] = path.name
    if reference_context is not None and len(session.contexts) == 1:
        log.info("--reference-context %s is the only context: no difference track to write", reference_context)
    cache_dir = Path(cache) if cache is not None else None
    if cache_dir is not None:
        check_cache_location(cache_dir)
    if compile_trunk not in COMPILE_CHOICES:
        raise ChromDragoNNError(f"--compile must be one of {', '.join(COMPILE_CHOICES)}, got {compile_trunk!r}")
    n_bins = tiling.n_bins
    will_run_trunk = cache_dir is None or not (cache_dir / "meta.json").is_file()
    passes = n_bins * len(getattr(session.model, "members", [session.model]))
    use_compile = will_run_trunk and (compile_trunk == "yes"
                                      or (compile_trunk == "auto" and passes >= COMPILE_FROM_PASSES))
    if use_compile:
        log.info("compiling the inference trunk (torch.compile; about 40 s per fold, once)")
    run = TrackRun(session, genome, tiling, fold_parts(session.model, use_compile), Ranks(session.device))
    log.info("%s bins of %d bp every %d bp over %d region(s); %d context(s); %d fold model(s)",
             f"{n_bins:,}", BIN, tiling.step, len(tiling.regions), len(session.contexts), len(run.parts))

    feature_cache = None
    if cache_dir is not None:
        mean_md5 = md5sum(session.mean_track.path) if session.mean_track is not None else None
        key = CacheKey(region_digest(genome, tiling), [list(r) for r in tiling.regions], tiling.step,
                       [p.checksum for p in run.parts], mean_md5)
        feature_cache = FeatureCache(cache_dir, key, n_bins)
        if feature_cache.exists():
            feature_cache.check()
            log.info("using the sequence-feature cache %s: no trunk pass", cache_dir)
        else:
            log.info("building the sequence-feature cache %s (%d fold(s) x %s bins)", cache_dir, len(run.parts),
                     f"{n_bins:,}")
            build_cache(run, feature_cache, progress)

    with _work_folder(out_dir, run.ranks) as work:
        results_path = work / "results.npy"
        valid = compute_tracks(run, results_path, feature_cache, progress)
        if run.ranks.main:
            results = np.lib.format.open_memmap(results_path, mode="r")
            with atomic_outputs(*finals) as temps:
                n_tracks = len(finals) - (matrix is not None)
                write_bigwigs(run, results, valid, temps[:n_tracks], reference_context)
                if matrix is not None:
                    write_matrix(run, results, valid, temps[-1])
            gaps = int(n_bins - np.count_nonzero(valid))
            log.info("wrote %d bigWig track(s)%s to %s%s", n_tracks, " and the matrix" if matrix else "", out_dir,
                     f"; {gaps:,} bins whose 200 bp are all N have no value" if gaps else "")
            if gaps == n_bins:
                log.warning("every bin of the regions is all N in %s (an assembly gap?): the tracks have no values",
                            genome.path)
    return run


def _run(args) -> int:
    make_track(args.fasta, args.contexts, args.output, region=args.region, bed=args.bed,
               chromosomes=args.chromosomes, expression=args.expression, expression_units=args.expression_units,
               model=model_option(args), mean_bigwig=args.mean_bigwig, step=args.step, cache=args.cache,
               reference_context=args.reference_context, matrix=args.matrix, device=args.device,
               compile_trunk=args.compile, progress=not args.quiet)
    return 0


def add_cli(subparsers, common) -> None:
    p = subparsers.add_parser(
        "track", parents=[common], help="bigWig tracks of P(accessible) over regions, for any RNA-seq sample",
        description="Tile regions with 200 bp bins every --step bp and write one bigWig of P(accessible) per "
                    "context (each bin's value over its central --step bp). --contexts all: every context of "
                    "the expression tables (the 56 Roadmap epigenomes and the columns of --expression). --cache DIR keeps the sequence features, so later runs in new "
                    "contexts skip the trunk. Runs sharded under torchrun.")
    where = p.add_mutually_exclusive_group(required=True)
    where.add_argument("--region", help="CHROM:START-END, 1-based inclusive")
    where.add_argument("--bed", help="BED file of regions (overlapping ones are merged)")
    where.add_argument("--chromosomes", help="comma-separated whole chromosomes of the FASTA, e.g. 22")
    p.add_argument("-o", "--output", required=True, help="output folder (must exist): <context>.bw per context")
    p.add_argument("--step", type=int, default=DEFAULT_STEP,
                   help=f"bp between bins, 1 to {BIN} (default {DEFAULT_STEP}, the paper's tiling)")
    p.add_argument("--cache", default=None, help="sequence-feature cache folder (built when new or empty)")
    p.add_argument("--reference-context", default=None, help="also write <context>_minus_<this>.bw")
    p.add_argument("--matrix", default=None, help="bins x contexts matrix as AnnData (.h5ad)")
    p.add_argument("--compile", default="auto", choices=list(COMPILE_CHOICES),
                   help=f"torch.compile the trunk (auto: from {COMPILE_FROM_PASSES:,} trunk passes, where it pays)")
    p.set_defaults(func=_run)
