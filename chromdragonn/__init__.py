"""ChromDragoNN: chromatin accessibility from DNA sequence and TF expression.

The Python API speaks one vocabulary: ``contexts`` (cell contexts, by name), ``expression``
(a user's RNA-seq table), ``model`` (the default ensemble, a fold, a model folder or weights files;
see :mod:`chromdragonn.inputs.session`).  The commands' functions live in their modules:
``chromdragonn.predict.predict``, ``chromdragonn.variants.score_variants``, ``chromdragonn.ism.run_ism``;
the networks and weights are in :mod:`chromdragonn.nn`.
"""
from chromdragonn.errors import ChromDragoNNError
from chromdragonn.nn.model import ChromDragoNN, ModelConfig
from chromdragonn.nn.trunks import ResNetTrunk
from chromdragonn.nn.weights import load_model, load_models, save_weights

__version__ = "0.1.0"

def load_original(path):
    """Load an original ChromDragoNN stage-2 checkpoint (``model_best.pth.tar``).

    See :mod:`chromdragonn.nn.original`; the pickle is read through an allow-list
    unpickler, so no code from the file runs."""
    from chromdragonn.nn.original import load_original as _load

    return _load(path)


__all__ = ["ChromDragoNN", "ChromDragoNNError", "ModelConfig", "ResNetTrunk", "load_model", "load_models",
           "save_weights", "load_original", "__version__"]
