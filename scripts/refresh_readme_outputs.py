"""Rewrite, or check, the README's output blocks: the printed outputs that change whenever weights/ does.

A block is a ```text fence right after a marker line

    <!-- output of: COMMAND (first N lines) -->

COMMAND runs with bash from the repository root, this venv's bin first on PATH. The block becomes the first N
lines of its stdout, then a `...` line when there were more. Each command must exit 0: a failed one stops the
script (its last line of stderr is shown), and README.md is left as it was (it is rewritten in one atomic step,
once every command has run). The commands write the README's own example outputs under output/ (overwritten).

    python scripts/refresh_readme_outputs.py            # after replacing weights/ (training/ship_folds.sh)
    python scripts/refresh_readme_outputs.py --check    # exit 1 naming each block whose output changed

Numbers count as unchanged within 1e-4 relative plus 2e-5 absolute (float32 sums differ in their last digits
between CPUs and batchings, and the printed rounding adds up to 5e-7; two trained models differ by 1e-3 and more),
every other word exactly: --check then exits 0, and a rewrite leaves such blocks as they are.
tests/test_readme_outputs.py checks the same blocks in-process.
"""
from __future__ import annotations

import argparse
import os
import re
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
README = REPO / "README.md"
MARKER = re.compile(r"^<!-- output of: (?P<command>.+) \(first (?P<lines>\d+) lines\) -->$")
NUMBER = re.compile(r"^[-+]?((\d+\.\d*|\.\d+)([eE][-+]?\d+)?|\d+[eE][-+]?\d+)$")  # integers compare exactly
RTOL, ATOL = 1e-4, 2e-5
TIMEOUT_S = 1800


@dataclass(frozen=True)
class OutputBlock:
    command: str
    n_lines: int
    body: list[str]  # the lines between the fences, as in the README
    start: int       # index of the first body line in the README's lines
    end: int         # index of the closing fence


def read_blocks(text: str, path: Path = README) -> list[OutputBlock]:
    lines = text.split("\n")
    blocks = []
    for i, line in enumerate(lines):
        m = MARKER.match(line)
        if not m:
            continue
        if i + 1 >= len(lines) or lines[i + 1] != "```text":
            raise ValueError(f"{path}:{i + 1}: output marker not followed by a ```text fence")
        end = next((j for j in range(i + 2, len(lines)) if lines[j] == "```"), None)
        if end is None:
            raise ValueError(f"{path}:{i + 2}: ```text fence never closed")
        blocks.append(OutputBlock(m["command"], int(m["lines"]), lines[i + 2:end], i + 2, end))
    return blocks


def run_block(block: OutputBlock) -> list[str]:
    env = dict(os.environ, PATH=f"{Path(sys.executable).parent}{os.pathsep}{os.environ.get('PATH', '')}")
    try:
        res = subprocess.run(["bash", "-c", block.command], cwd=REPO, env=env, capture_output=True, text=True,
                             encoding="utf-8", timeout=TIMEOUT_S)
    except subprocess.TimeoutExpired:
        raise RuntimeError(f"`{block.command}` ran past {TIMEOUT_S} s") from None
    if res.returncode != 0:
        last = (res.stderr.strip().splitlines() or ["(no stderr)"])[-1]
        raise RuntimeError(f"`{block.command}` exited {res.returncode}: {last}")
    out = res.stdout.rstrip("\n").split("\n")
    if len(out) < block.n_lines:
        raise RuntimeError(f"`{block.command}` printed {len(out)} lines, the marker asks for {block.n_lines}")
    return [line.rstrip() for line in out[:block.n_lines]] + (["..."] if len(out) > block.n_lines else [])


def same_output(old: list[str], new: list[str], rtol: float = RTOL, atol: float = ATOL) -> bool:
    if len(old) != len(new):
        return False
    for a, b in zip(old, new):
        wa, wb = a.split(), b.split()
        if len(wa) != len(wb):
            return False
        for x, y in zip(wa, wb):
            if NUMBER.match(x) and NUMBER.match(y):
                if abs(float(x) - float(y)) > rtol * max(abs(float(x)), abs(float(y))) + atol:
                    return False
            elif x != y:
                return False
    return True


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--check", action="store_true", help="only compare; exit 1 when a block is out of date")
    ap.add_argument("--readme", type=Path, default=README)
    args = ap.parse_args(argv)
    try:
        text = args.readme.read_text(encoding="utf-8")
        blocks = read_blocks(text, args.readme)
        if not blocks:
            raise ValueError(f"{args.readme}: no '<!-- output of: ... -->' markers")
        fresh = []
        for k, block in enumerate(blocks, 1):
            print(f"[{k}/{len(blocks)}] {block.command}", file=sys.stderr)
            fresh.append(run_block(block))
    except (OSError, ValueError, RuntimeError) as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    stale = [(b, new) for b, new in zip(blocks, fresh) if not same_output(b.body, new)]
    for b, _ in stale:
        print(f"{args.readme}:{b.start}: the output of `{b.command}` has changed", file=sys.stderr)
    if args.check or not stale:
        print(f"{len(blocks) - len(stale)} of {len(blocks)} output blocks up to date", file=sys.stderr)
        return 1 if stale else 0
    if args.readme.read_text(encoding="utf-8") != text:
        print(f"error: {args.readme} was edited while the commands ran; nothing rewritten, run again", file=sys.stderr)
        return 2
    lines = text.split("\n")
    for b, new in sorted(stale, key=lambda s: -s[0].start):  # from the end: earlier indices stay valid
        lines[b.start:b.end] = new
    sys.path.insert(0, str(REPO))
    from chromdragonn.outputs.atomic import atomic_output

    with atomic_output(args.readme) as tmp:
        Path(tmp).write_text("\n".join(lines), encoding="utf-8")
    print(f"rewrote {len(stale)} of {len(blocks)} output blocks in {args.readme}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
