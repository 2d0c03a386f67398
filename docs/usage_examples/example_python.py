"""P(accessible) from Python, two ways: the Kipoi API, and the package's own predict().

    source .venv/bin/activate
    python docs/usage_examples/example_python.py [MODEL_FOLDER]    # default: this repository

Paths are relative to the model folder; outputs go to its output/.
"""
import os
import sys

REPO = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..")
os.chdir(sys.argv[1] if len(sys.argv) > 1 else REPO)
os.makedirs("output", exist_ok=True)

# 1. Kipoi: the model folder's default model (model.yaml) and dataloader.
import kipoi

model = kipoi.get_model(".", source="dir")
preds = model.pipeline.predict({
    "intervals_file": "example/intervals.bed",           # BED, hg19, any width
    "fasta_file": "example/hg19_chr22_1-22000000.fa.gz",
    "cell_types": "E003,E116,E123,my_H1_sample",         # Roadmap EIDs and a context of your own table
    "expression_file": "example/user_rnaseq_tpm.tsv",    # your RNA-seq: genes x contexts, TPM
})
print("kipoi:", preds.shape)  # (intervals, contexts): P(accessible), contexts in cell_types order

# 2. The package: the same numbers as a table with coordinates and one column per context.
from pathlib import Path

from chromdragonn.predict import predict

table = predict(
    "example/intervals.bed", "example/hg19_chr22_1-22000000.fa.gz",
    ["E003", "E116", "E123", "my_H1_sample"],
    expression="example/user_rnaseq_tpm.tsv",
    model=sorted(Path("weights").glob("fold*.with_mean.pt")),  # None: the repository's model.yaml
    mean_bigwig="weights/mean_accessibility_chr22.bw",           # None: the shipped track
    progress=False,
)
print(table.head().to_string(index=False))
table.to_csv("output/example_python.tsv", sep="\t", index=False)
