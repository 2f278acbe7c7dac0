"""Type stubs of lrp_rnn.ray."""

import os
from typing import Any, Literal, Optional, Tuple, Union

from typing_extensions import Unpack

from . import ExplainOptions

OUTPUT_COLUMNS: tuple[str, ...]
ERROR_COLUMN: str
ERRORS: tuple[str, ...]
PER_DIMENSION_COLUMN: str

def start(**init_options: Any) -> None:
    """Starts Ray quietly (ray.init with no dashboard, no worker output, warnings only), unless it runs."""

def explain_dataset(
    ds: Any,
    model: Union[str, os.PathLike[str]],
    *,
    text_column: str = "text",
    vectors_column: Optional[str] = None,
    batch_size: int = 256,
    concurrency: Union[None, int, Tuple[int, int]] = None,
    num_cpus: float = 1,
    errors: Literal["raise", "column"] = "raise",
    quiet: bool = True,
    **explain_options: Unpack[ExplainOptions],
) -> Any:
    """Explains every row of a Ray Dataset; returns a new ray.data.Dataset."""
