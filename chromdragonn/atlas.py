"""``chromdragonn atlas-plot``: contexts embedded by their predicted accessibility, beside their TF expression.

The paper's Fig. 3B analogue.  Input: the bins x contexts matrix of ``chromdragonn track --matrix``
(AnnData).  Each context is a point: on the left placed by its predicted accessibility profile over
the bins, on the right by its TF expression (arcsinh TPM of the gene panel), both by t-SNE (default;
scikit-learn, on the first principal components) or PCA.  Points are coloured by their Roadmap group
(weights/roadmap_context_groups.tsv); contexts of the user's own RNA-seq are labelled stars.
"""
from __future__ import annotations

import logging
import os
import warnings
from pathlib import Path

import numpy as np
import pandas as pd

from chromdragonn import paths
from chromdragonn.errors import ChromDragoNNError
from chromdragonn.inputs.files import check_readable
from chromdragonn.inputs.session import expression_source
from chromdragonn.outputs.atomic import atomic_output, check_output_path

log = logging.getLogger(__name__)

METHODS = ("tsne", "pca")
USER_GROUP = "your RNA-seq"


def read_matrix(path: str | os.PathLike):
    """(contexts, bins x contexts float32) from a ``track --matrix`` h5ad file."""
    path = check_readable(path, "matrix file")
    try:
        with warnings.catch_warnings():
            warnings.filterwarnings("ignore", message=".*future.infer_string.*")  # anndata asking pandas 3
            warnings.filterwarnings("ignore", message="Variable names are not unique")  # refused below, in one line
            import anndata

            adata = anndata.read_h5ad(path)
    except Exception as exc:  # h5py / anndata raise many types for a file that is not an h5ad
        raise ChromDragoNNError(f"{path} is not an AnnData (.h5ad) file: {type(exc).__name__}") from None
    contexts = list(map(str, adata.var_names))
    x = np.asarray(adata.X, dtype=np.float32)
    if adata.n_vars < 3:
        raise ChromDragoNNError(f"{path} has {adata.n_vars} context(s); an embedding needs at least 3")
    if adata.n_obs < 2:
        raise ChromDragoNNError(f"{path} has {adata.n_obs} bin(s); an embedding needs at least 2")
    twice = sorted({c for c in contexts if contexts.count(c) > 1})
    if twice:
        raise ChromDragoNNError(f"{path} names context(s) {', '.join(twice)} more than once")
    if not np.isfinite(x).all():
        raise ChromDragoNNError(f"{path} holds {int((~np.isfinite(x)).sum())} missing or infinite value(s); "
                                "`chromdragonn track --matrix` writes none")
    return contexts, x


def embed(profiles: np.ndarray, method: str, seed: int = 0) -> np.ndarray:
    """(contexts, features) -> (contexts, 2): PCA, or t-SNE on the first (at most 50) components."""
    from sklearn.decomposition import PCA

    x = profiles - profiles.mean(axis=0, keepdims=True)
    n_pc = min(50, x.shape[0] - 1, x.shape[1])
    pcs = PCA(n_components=n_pc, random_state=seed).fit_transform(x)
    if method == "pca":
        return pcs[:, :2] if n_pc >= 2 else np.column_stack([pcs[:, 0], np.zeros(len(pcs))])
    from sklearn.manifold import TSNE

    perplexity = float(min(15.0, max(2.0, (x.shape[0] - 1) / 3)))
    # The exact gradient: a few hundred contexts at most, and Barnes-Hut crashes on identical points
    # (replicate samples whose profiles coincide).
    return TSNE(n_components=2, perplexity=perplexity, init="pca", random_state=seed,
                method="exact").fit_transform(pcs)


def context_groups(contexts) -> pd.DataFrame:
    """group, color, name per context; contexts outside the Roadmap table are 'your RNA-seq'."""
    table = pd.read_csv(paths.CONTEXT_GROUPS, sep="\t", dtype=str).set_index("context")
    rows = [table.loc[c].to_dict() if c in table.index else {"group": USER_GROUP, "color": "#000000", "name": c}
            for c in contexts]
    return pd.DataFrame(rows, index=list(contexts))


def atlas_plot(matrix, output, expression=None, expression_units: str = "tpm", method: str = "tsne") -> Path:
    output = check_output_path(output, "atlas PNG", suffixes=(".png",), inputs=[matrix, expression])
    if method not in METHODS:
        raise ChromDragoNNError(f"--method must be one of {', '.join(METHODS)}, got {method!r}")
    contexts, x = read_matrix(matrix)
    source = expression_source(expression, expression_units)
    unknown = [c for c in contexts if c not in source.contexts]
    if unknown:
        raise ChromDragoNNError(f"context {unknown[0]!r} of {matrix} is not in the expression tables; give the "
                                "--expression table the track was made with")
    expr = source.matrix(contexts)
    groups = context_groups(contexts)
    panels = [(embed(x.T, method), f"predicted accessibility ({x.shape[0]:,} bins)"),
              (embed(expr, method), f"TF expression ({expr.shape[1]:,} panel TFs, arcsinh TPM)")]

    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, 2, figsize=(13, 6), constrained_layout=True)
    for ax, (xy, title) in zip(axes, panels):
        for group, rows in groups.groupby("group", sort=False):
            idx = [contexts.index(c) for c in rows.index]
            mine = group == USER_GROUP  # a star: Roadmap's own ENCODE2012 colour is black too
            ax.scatter(xy[idx, 0], xy[idx, 1], c=rows["color"].iloc[0], s=140 if mine else 42, label=group,
                       marker="*" if mine else "o", edgecolors="white", linewidths=0.5)
        for i, c in enumerate(contexts):
            if groups.loc[c, "group"] == USER_GROUP or len(contexts) <= 20:
                ax.annotate(c, xy[i], fontsize=7, xytext=(3, 3), textcoords="offset points")
        ax.set_title(f"{title}, {method.upper() if method == 'pca' else 't-SNE'}", fontsize=10)
        ax.set_xticks([]), ax.set_yticks([])
    axes[1].legend(fontsize=7, loc="center left", bbox_to_anchor=(1.0, 0.5), frameon=False)
    fig.suptitle(f"{len(contexts)} cell contexts: predicted accessibility (left) and TF expression (right)")
    with atomic_output(output) as tmp:
        fig.savefig(tmp, dpi=110, format="png")
    plt.close(fig)
    log.info("wrote %s (%d contexts)", output, len(contexts))
    return output


def _run(args) -> int:
    atlas_plot(args.matrix, args.output, args.expression, args.expression_units, args.method)
    return 0


def add_cli(subparsers, common) -> None:
    p = subparsers.add_parser(
        "atlas-plot", help="embed contexts by predicted accessibility and by TF expression (PNG)",
        description="From the bins x contexts matrix of `chromdragonn track --matrix`, embed the contexts by their "
                    "predicted accessibility and, beside it, by their TF expression; coloured by Roadmap group.")
    p.add_argument("--matrix", required=True, help="the .h5ad of `chromdragonn track --matrix`")
    p.add_argument("--expression", default=None, help="the RNA-seq table the track used for your own contexts")
    p.add_argument("--expression-units", default="tpm", choices=["tpm", "rpkm"],
                   help="units of --expression (default: tpm)")
    p.add_argument("--method", default="tsne", choices=list(METHODS),
                   help="t-SNE on the first principal components (default) or the first two principal components")
    p.add_argument("-o", "--output", required=True, help="output .png")
    p.set_defaults(func=_run)
