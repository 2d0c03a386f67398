"""Kipoi model class for ChromDragoNN (``defined_as: model.ChromDragoNNModel``).

Thin on purpose: loading, checks and the multi-context prediction live in the
``chromdragonn`` package (chromdragonn/weights.py, chromdragonn/model.py).
"""
import os
import sys

# kipoi executes this file without setting __file__, from inside the model folder.
_HERE = os.path.dirname(os.path.abspath(globals()["__file__"])) if "__file__" in globals() else os.getcwd()
try:
    import chromdragonn  # noqa: F401  (installed: pip install -e .)
except ImportError:  # a model folder used without installing the package beside it
    sys.path.insert(0, _HERE)

import numpy as np
import torch
from kipoi.model import BaseModel

from chromdragonn.errors import ChromDragoNNError
from chromdragonn.kipoi_files import adapt_kipoi_cli, apply_kipoi_compat
from chromdragonn.weights import load_models, read_gene_panel

apply_kipoi_compat()
adapt_kipoi_cli()


def _here(path):
    """Paths in model.yaml are relative to the model folder.

    kipoi constructs the model from inside its folder, but imports this file as the
    module "model" and may reuse one cached from another folder, so the current
    directory is tried first, then the folder this file was loaded from.
    """
    if os.path.isabs(path) or os.path.exists(path):
        return os.path.abspath(path)
    return os.path.join(_HERE, path)


class ChromDragoNNModel(BaseModel):
    """P(accessible) of each interval in each requested cell context.

    predict_on_batch(x): x["seq"] (N, 1000, 4), x["expression"] (N, C, G) and, for
    models with the mean input, x["mean_acc"] (N, 1) -> float32 (N, C).
    """

    def __init__(self, weights, md5s=None, gene_panel="weights/gene_panel.tsv", n_genes=None,
                 with_mean=None, device="auto"):
        if isinstance(weights, str):
            weights = [weights]
        if isinstance(md5s, str):
            md5s = [md5s]
        paths = [_here(w) for w in weights]
        self.model, self.genes = load_models(paths, md5s, n_genes=n_genes, with_mean=with_mean)
        panel = read_gene_panel(_here(gene_panel))["gene_symbol"].tolist()
        if panel != list(self.genes):
            diff = next((i for i, (a, b) in enumerate(zip(panel, self.genes)) if a != b), min(len(panel), len(self.genes)))
            raise ChromDragoNNError(
                f"gene panel {_here(gene_panel)} ({len(panel)} genes) differs from the weights' panel "
                f"({len(self.genes)} genes) first at position {diff}")
        if device == "auto":
            device = "cuda" if torch.cuda.is_available() else "cpu"
        self.device = torch.device(device)
        self.model.to(self.device).eval()
        self.with_mean = self.model.with_mean
        self.n_genes = self.model.n_genes

    def predict_on_batch(self, x):
        seq = torch.as_tensor(np.asarray(x["seq"], dtype=np.float32), device=self.device)
        expression = torch.as_tensor(np.asarray(x["expression"], dtype=np.float32), device=self.device)
        if expression.shape[-1] != self.n_genes:
            raise ChromDragoNNError(
                f"expression has {expression.shape[-1]} genes per context, the weights take {self.n_genes} "
                "(use the gene panel shipped with the weights)")
        mean_acc = None
        if self.with_mean:
            if x.get("mean_acc") is None:
                raise ChromDragoNNError(
                    "this model uses the mean-accessibility input; give the dataloader a mean_bigwig")
            mean_acc = torch.as_tensor(np.asarray(x["mean_acc"], dtype=np.float32).reshape(-1),
                                       device=self.device)
        with torch.no_grad():
            probs = self.model.predict_grid(seq, expression, mean_acc)
        return probs.float().cpu().numpy()
