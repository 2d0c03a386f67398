"""The annotated VCF: every input record, with per-allele scores as ``Number=A`` Float INFO fields.

Public VCFs often use INFO or FILTER tags their header does not declare (VEP's CSQ, ExAC-style
annotations); htslib reads them with a warning but refuses to write them.  A first pass over the
input finds such tags, and they are declared in the output header (INFO as ``Number=.,Type=String``,
as htslib itself assumed when reading), so every input record is written; the count is logged.
"""
from __future__ import annotations

import contextlib
import logging
import os
import re
from collections import Counter
from pathlib import Path

from chromdragonn.errors import ChromDragoNNError

log = logging.getLogger(__name__)

INFO_PREFIX = "CDN"
VCF_SUFFIXES = (".vcf", ".vcf.gz", ".vcf.bgz")


def is_vcf_output(path: str | os.PathLike) -> bool:
    return str(path).lower().endswith(VCF_SUFFIXES)


def info_id(context: str, score: str) -> str:
    """The INFO key of a (context, score): VCF keys are [A-Za-z_][0-9A-Za-z_.]*."""
    return f"{INFO_PREFIX}_{re.sub(r'[^0-9A-Za-z_.]', '_', context)}_{score}"


@contextlib.contextmanager
def _quiet_stderr():
    """htslib writes its warnings straight to file descriptor 2; silence them during the scan
    (what they say is reported in one line of ours)."""
    fd = os.dup(2)
    try:
        with open(os.devnull, "w") as null:
            os.dup2(null.fileno(), 2)
            yield
    finally:
        os.dup2(fd, 2)
        os.close(fd)


def undeclared_tags(vcf_path: str | os.PathLike, reader) -> tuple[list[str], list[str]]:
    """INFO and FILTER IDs the records of ``vcf_path`` use but its header (``reader``'s) does not declare."""
    import cyvcf2

    declared = {"INFO": set(), "FILTER": {"PASS"}}
    for h in reader.header_iter():
        if h.type in declared:
            declared[h.type].add(h.info().get("ID"))
    info, filters = set(), set()
    with _quiet_stderr():
        scan = cyvcf2.VCF(str(vcf_path))
        try:
            for v in scan:
                info.update(k for k, _ in v.INFO)
                if v.FILTER:
                    filters.update(v.FILTER.split(";"))
        finally:
            scan.close()
    return sorted(info - declared["INFO"]), sorted(filters - declared["FILTER"])


class ScoreVcfWriter:
    """Writes records of ``reader`` with score fields.

    ``fields``: (column, context, score, doc) per score column; ``write(variant, values, ref_mismatch)``
    takes ``values`` = {column: [(alt_index, value), ...]} for the record's scored alleles ('.' elsewhere).
    """

    def __init__(self, path: Path, reader, vcf_path, fields, compressed: bool, string_fields=()):
        import cyvcf2

        self.keys = [(col, info_id(ctx, score)) for col, ctx, score, _ in fields]
        seen = Counter(k for _, k in self.keys)
        if any(n > 1 for n in seen.values()):
            raise ChromDragoNNError("context names collide once made VCF-safe; rename them or write a TSV")
        info, filters = undeclared_tags(vcf_path, reader)
        for key in info:
            reader.add_info_to_header({"ID": key, "Number": ".", "Type": "String",
                                       "Description": "Not declared in the input VCF's header; declared by "
                                                      "ChromDragoNN so the record could be written unchanged"})
        for key in filters:
            reader.add_filter_to_header({"ID": key, "Description": "Not declared in the input VCF's header; "
                                                                   "declared by ChromDragoNN"})
        if info or filters:
            log.warning("%s uses %d INFO and %d FILTER tag(s) its header does not declare (%s); they are "
                        "declared in the output VCF so every record is kept", vcf_path, len(info), len(filters),
                        ", ".join((info + filters)[:8]) + (" ..." if len(info) + len(filters) > 8 else ""))
        for (col, key), (_, ctx, score, doc) in zip(self.keys, fields):
            reader.add_info_to_header({"ID": key, "Number": "A", "Type": "Float",
                                       "Description": f"ChromDragoNN {score} in context {ctx}: {doc}, "
                                                      "P = P(accessible) of the 1 kb window; '.' = not scored"})
        # (column, INFO key, description): Number=A strings ('.' for an ALT not scored)
        self.string_keys = [(col, key) for col, key, _ in string_fields]
        for _, key, doc in string_fields:
            reader.add_info_to_header({"ID": key, "Number": "A", "Type": "String", "Description": f"ChromDragoNN: {doc}"})
        self.string_columns = [col for col, _ in self.string_keys]
        self.flag = f"{INFO_PREFIX}_REF_MISMATCH"
        reader.add_info_to_header({"ID": self.flag, "Number": "0", "Type": "Flag",
                                   "Description": "ChromDragoNN: the VCF REF does not match the FASTA; scored with "
                                                  "the VCF alleles"})
        self.columns = [col for col, _ in self.keys]
        self.writer = cyvcf2.Writer(str(path), reader, mode="wz" if compressed else "w")

    def write(self, variant, values: dict, ref_mismatch: bool = False) -> None:
        if values:
            n_alt = len(variant.ALT)
            for col, key in self.keys:
                cells = ["."] * n_alt
                for alt_index, value in values[col]:
                    cells[alt_index] = f"{value:.6g}"
                variant.INFO[key] = ",".join(cells)
            for col, key in self.string_keys:
                cells = ["."] * len(variant.ALT)
                for alt_index, value in values[col]:
                    cells[alt_index] = str(value) if value else "."
                variant.INFO[key] = ",".join(cells)
        if ref_mismatch:
            variant.INFO[self.flag] = True
        self.writer.write_record(variant)

    def close(self) -> None:
        self.writer.close()
