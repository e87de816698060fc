"""calkit: deep batch active learning that trains fast.

Each round continues training with continual-learning replay instead of retraining from scratch
(Continual Active Learning, Das et al., TMLR 2023). Importing calkit has no side effects.
"""

__version__ = "0.2.0"

from calkit.config import RunConfig  # noqa: E402
from calkit.data import Dataset, load_dataset  # noqa: E402
from calkit.errors import CalkitError  # noqa: E402
from calkit.loop import ActiveLoop, RunStatus  # noqa: E402

__all__ = ["ActiveLoop", "CalkitError", "Dataset", "RunConfig", "RunStatus", "__version__", "load_dataset"]
