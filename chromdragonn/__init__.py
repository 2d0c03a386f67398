"""ChromDragoNN: chromatin accessibility from DNA sequence and TF expression."""
from chromdragonn.errors import ChromDragoNNError
from chromdragonn.model import ChromDragoNN, ModelConfig, ResNetTrunk
from chromdragonn.weights import load_model, load_models, save_weights

__version__ = "0.1.0"


def load_original(path):
    """Load an original ChromDragoNN stage-2 checkpoint (``model_best.pth.tar``).

    See :mod:`chromdragonn.original`; the pickle is read through an allow-list
    unpickler, so no code from the file runs."""
    from chromdragonn.original import load_original as _load

    return _load(path)


__all__ = ["ChromDragoNN", "ChromDragoNNError", "ModelConfig", "ResNetTrunk",
           "load_model", "load_models", "save_weights", "load_original", "__version__"]
