"""benchmarks/RESULTS.md holds one section per benchmark script; each run replaces its own."""
from __future__ import annotations

import datetime as _dt
import re
from pathlib import Path

from chromdragonn.outputs.atomic import atomic_output

RESULTS = Path(__file__).resolve().parent / "RESULTS.md"
HEADER = ("# Benchmark results\n\nEach section is written by the script named in it; rerun that "
          "command to reproduce. Speeds are ratios measured side by side in one run.\n")


def write_section(key: str, title: str, command: str, body: str, results: Path = RESULTS,
                  header: str = HEADER) -> None:
    """Replace (or append) the section ``key`` of ``results``, atomically."""
    text = results.read_text() if results.exists() else header
    start, end = f"<!-- {key}:start -->", f"<!-- {key}:end -->"
    stamp = _dt.date.today().isoformat()
    block = f"{start}\n## {title}\n\nCommand: `{command}` (run {stamp})\n\n{body}\n{end}"
    pattern = re.compile(re.escape(start) + ".*?" + re.escape(end), re.S)
    text = pattern.sub(lambda _: block, text) if pattern.search(text) else text.rstrip() + "\n\n" + block + "\n"
    with atomic_output(results) as tmp:
        tmp.write_text(text)
