"""Build the shipped variant background of ``score-variants --background shipped``.

    python scripts/make_variant_background.py

Takes the biallelic SNVs with minor allele frequency >= 1% (INFO AF, folded) of the 1000 Genomes
phase 3 sites file of the project's shared data (``variants/1kg_phase3_chr22_ADA2_GAB4.sites.vcf.gz``,
hg19 chr22), scores them with the default model (model.yaml's five-fold ensemble) in the 56 Roadmap
contexts on one strand, exactly as ``chromdragonn score-variants --scores diff`` does, and writes
``weights/variant_background_1kg.tsv.gz`` (``#CHROM POS ID REF ALT AF`` and ``<context>/diff``) and
``weights/variant_background_1kg.json`` (what it was made from: source, filter, model md5s,
contexts, count). Rerun it whenever the default weights change.
"""
from __future__ import annotations

import gzip
import io
import json
import sys
import tempfile
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

import torch  # noqa: E402

from chromdragonn import paths  # noqa: E402
from chromdragonn.inputs.expression import ExpressionSource  # noqa: E402
from chromdragonn.inputs.session import DeclaredModel  # noqa: E402
from chromdragonn.variant_extras import SHIPPED_BACKGROUND, SHIPPED_BACKGROUND_INFO  # noqa: E402
from chromdragonn.variants import score_variants  # noqa: E402

SOURCE = paths.SHARED_DATA / "variants" / "1kg_phase3_chr22_ADA2_GAB4.sites.vcf.gz"
MIN_MAF = 0.01


def common_snvs(src: Path, dest: Path) -> tuple[int, int]:
    kept = total = 0
    with gzip.open(src, "rt") as fh, open(dest, "w") as out:
        for line in fh:
            if line.startswith("#"):
                out.write(line)
                continue
            f = line.split("\t")
            if len(f[3]) != 1 or len(f[4]) != 1 or "," in f[4]:
                continue
            total += 1
            info = dict(kv.split("=", 1) for kv in f[7].split(";") if "=" in kv)
            af = float(info.get("AF", "nan"))
            if min(af, 1 - af) >= MIN_MAF:
                out.write(line)
                kept += 1
    return kept, total


def main() -> None:
    torch.set_num_threads(1)
    contexts = ExpressionSource().contexts
    tmp = Path(tempfile.mkdtemp(prefix="background_"))
    vcf = tmp / "common_snvs.vcf"
    kept, total = common_snvs(SOURCE, vcf)
    df = score_variants(vcf, paths.EXAMPLE_DIR / "hg19_chr22_1-22000000.fa.gz", contexts, scores="diff",
                        progress=True)
    afs = {}
    with open(vcf) as fh:
        for line in fh:
            if not line.startswith("#"):
                f = line.split("\t")
                afs[(int(f[1]), f[3], f[4])] = dict(kv.split("=", 1) for kv in f[7].split(";") if "=" in kv)["AF"]
    df.insert(5, "AF", [afs[(p, r, a)] for p, r, a in zip(df["POS"], df["REF"], df["ALT"])])
    buf = io.StringIO()
    df.to_csv(buf, sep="\t", index=False, float_format="%.6g")
    with open(SHIPPED_BACKGROUND, "wb") as raw, gzip.GzipFile(fileobj=raw, mode="wb", mtime=0, filename="") as gz:
        gz.write(buf.getvalue().encode())
    declared = DeclaredModel.read()
    info = {
        "source": f"../shared/data/variants/{SOURCE.name}",
        "filter": f"biallelic SNVs with minor allele frequency (INFO AF, folded) >= {MIN_MAF}",
        "snvs_in_source": total, "common_snvs": kept, "scored": len(df),
        "model": "model.yaml's default (five-fold ensemble, mean of probabilities)",
        "weights_md5": [m for m in declared.md5s],
        "score": "diff = P(alt) - P(ref), one strand", "contexts": contexts,
        "command": "python scripts/make_variant_background.py",
    }
    SHIPPED_BACKGROUND_INFO.write_text(json.dumps(info, indent=1) + "\n")
    print(f"{kept} common SNVs of {total} SNVs; {len(df)} scored -> {SHIPPED_BACKGROUND}")


if __name__ == "__main__":
    main()
