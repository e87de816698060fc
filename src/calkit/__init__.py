"""calkit: deep batch active learning that trains fast.

Each round continues training with continual-learning replay instead of retraining from scratch
(Continual Active Learning, Das et al., TMLR 2023). Importing calkit has no side effects, and
its public names load on first use (PEP 562), so `calkit --version` does not import torch.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING

__version__ = "0.6.0"

_PUBLIC = {
    "ActiveLoop": "calkit.loop",
    "CalkitError": "calkit.errors",
    "Item": "calkit.run",
    "register_acquisition": "calkit.acquisition",
    "register_policy": "calkit.policies",
    "LabelError": "calkit.errors",
    "Run": "calkit.run",
    "SubmitResult": "calkit.ledger",
    "Dataset": "calkit.data",
    "RunConfig": "calkit.config",
    "RunStatus": "calkit.loop",
    "load_dataset": "calkit.data",
}

__all__ = ["ActiveLoop", "CalkitError", "Dataset", "Item", "LabelError", "Run", "RunConfig", "RunStatus", "SubmitResult",
           "__version__", "errors", "load_dataset", "register_acquisition", "register_policy"]

if TYPE_CHECKING:
    from calkit.config import RunConfig
    from calkit.data import Dataset, load_dataset
    from calkit.errors import CalkitError, LabelError
    from calkit.ledger import SubmitResult
    from calkit.loop import ActiveLoop, RunStatus
    from calkit.acquisition import register_acquisition
    from calkit.policies import register_policy
    from calkit.run import Item, Run


def __getattr__(name: str):
    if name == "errors":
        return importlib.import_module("calkit.errors")
    if name not in _PUBLIC:
        raise AttributeError(f"module 'calkit' has no attribute {name!r}")
    value = getattr(importlib.import_module(_PUBLIC[name]), name)
    globals()[name] = value
    return value
