"""Type stubs of lrp_rnn (see the module's docstrings for the details)."""

import os
from typing import Any, Literal, Optional, Sequence, Union, overload

import numpy as np
import numpy.typing as npt
from typing_extensions import TypedDict, Unpack

Input = Union[str, npt.ArrayLike]
Method = Literal["lrp", "sa", "gi", "occlusion", "ig"]
Precision = Literal["f64", "f32"]

class ExplainOptions(TypedDict, total=False):
    """The keywords of Model.explain, with their defaults."""

    method: Method  # "lrp"
    target: Optional[int]  # None: the predicted class
    eps: float  # 0.001
    bias_factor: float  # 0.0
    composite: str  # "epsilon"
    gate_rule: str  # "signal-take-all"
    per_dimension: bool  # False
    steps: int  # 50
    max_work: Optional[int]  # None: 2,000,000 position-passes, as --max-work
    max_memory: Optional[int]  # None: 2 GiB, as --max-memory

class Explanation:
    """One input's explanation: the keys of ``lrp explain``'s JSON as attributes."""

    scores: np.ndarray
    predicted: int
    target: int
    method: str
    token_relevance: np.ndarray
    initial_state_relevance: Optional[float]
    unexplained_relevance: Optional[float]
    input_relevance: Optional[np.ndarray]
    attention: Optional[np.ndarray]
    tokens: Optional[list[str]]
    unknown: Optional[list[int]]
    def __init__(self, record: dict[str, Any], dtype: Any = ...) -> None: ...
    def to_dict(self) -> dict[str, Any]:
        """The explanation as ``lrp explain --format json`` prints it."""

class Model:
    """A recurrent classifier lrp can explain."""

    @classmethod
    def load(cls, path: Union[str, os.PathLike[str]], *, precision: Precision = "f64") -> Model:
        """The model directory at ``path``."""
    @classmethod
    def default(cls, *, precision: Precision = "f64") -> Model:
        """The built-in SST model."""
    @classmethod
    def from_torch(
        cls,
        module: Any,
        *,
        vocab: Optional[Sequence[str]] = None,
        unk_token: Optional[str] = None,
        lowercase: Optional[bool] = None,
        labels: Optional[Sequence[str]] = None,
        precision: Precision = "f64",
        trust_forward: bool = False,
        cell: Literal["lstm", "gru"] = ...,
        input_size: int = ...,
        hidden_size: int = ...,
        num_layers: int = ...,
        bidirectional: bool = ...,
        attention: Optional[Literal["context", "additive", "dot", "general"]] = ...,
        attention_size: Optional[int] = ...,
        head_input: Literal["last", "context", "context+last", "mean", "max", "each"] = ...,
        task: Literal["classification", "regression"] = ...,
        num_classes: int = ...,
        head_bias: bool = ...,
        embedding: bool = ...,
        vocab_size: Optional[int] = ...,
    ) -> Model:
        """A model from a PyTorch module's state_dict() or a dict of tensors or arrays."""
    def save(self, path: Union[str, os.PathLike[str]]) -> list[str]:
        """Writes the model directory ``path`` (config.json, model.safetensors, vocab.txt)."""
    @property
    def config(self) -> dict[str, Any]: ...
    @property
    def labels(self) -> Optional[list[str]]: ...
    @property
    def precision(self) -> Precision: ...
    @overload
    def explain(  # type: ignore[overload-overlap]  # a str is also a Sequence: the first match wins
        self, inputs: Union[str, np.ndarray], **options: Unpack[ExplainOptions]
    ) -> Explanation:
        """Explains one input."""
    @overload
    def explain(self, inputs: Sequence[Input], **options: Unpack[ExplainOptions]) -> list[Explanation]:
        """Explains a list of inputs, in input order."""
    @overload
    def forward(self, inputs: Union[str, np.ndarray]) -> np.ndarray: ...  # type: ignore[overload-overlap]
    @overload
    def forward(self, inputs: Sequence[Input]) -> list[np.ndarray]: ...
