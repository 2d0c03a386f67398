"""Kipoi model class for ChromDragoNN (``defined_as: model.ChromDragoNNModel``).

Thin on purpose: loading and checking the declared model is the package's
(chromdragonn/inputs/session.py, the same code every ``chromdragonn`` command uses),
and the multi-context prediction is chromdragonn/nn/model.py's.
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
from chromdragonn.inputs.session import DeclaredModel
from chromdragonn.kipoi.compat import adapt_kipoi_cli, apply_kipoi_compat

apply_kipoi_compat()
adapt_kipoi_cli()


def _model_folder(weights):
    """The folder model.yaml's relative paths are relative to.

    kipoi constructs the model from inside its folder, but imports this file as the
    module "model" and may reuse one cached from another folder, so the current
    directory is tried first, then the folder this file was loaded from.
    """
    first = weights if isinstance(weights, str) else weights[0]
    return os.getcwd() if os.path.exists(first) else _HERE


class ChromDragoNNModel(BaseModel):
    """P(accessible) of each interval in each requested cell context.

    predict_on_batch(x): x["seq"] (N, 1000, 4), x["expression"] (N, C, G) and, for
    models with the mean input, x["mean_acc"] (N, 1) -> float32 (N, C).
    """

    def __init__(self, weights, md5s=None, gene_panel="weights/gene_panel.tsv", n_genes=None,
                 with_mean=None, device="auto"):
        declared = DeclaredModel.from_args(_model_folder(weights), weights, md5s, n_genes, with_mean, gene_panel)
        self.model, self.genes = declared.load()
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
