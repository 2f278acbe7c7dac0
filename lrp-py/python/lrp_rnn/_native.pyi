"""Type stubs of the native module (use lrp_rnn.Model instead)."""

from typing import Any, Optional, Sequence

class NativeModel:
    @staticmethod
    def load(path: Optional[str], precision: str) -> NativeModel: ...
    @staticmethod
    def from_tensors(
        config: str, tensors: Sequence[tuple[str, Any]], vocab: Optional[str], precision: str
    ) -> NativeModel: ...
    def config(self) -> dict[str, Any]: ...
    def precision(self) -> str: ...
    def explain(
        self,
        inputs: Sequence[Any],
        method: str,
        target: Optional[int],  # any size: checked natively
        eps: float,
        bias_factor: float,
        composite: str,
        gate_rule: str,
        per_dimension: bool,
        steps: int,  # any size: checked natively
        max_work: Optional[int],  # any size: checked natively
        max_memory: Optional[int],  # any size: checked natively
    ) -> list[dict[str, Any]]: ...
    def forward(self, inputs: Sequence[Any]) -> list[list[float]]: ...

def save_model_dir(
    dir: str, config: str, tensors: Sequence[tuple[str, Any]], vocab: Optional[str], double: bool
) -> list[str]: ...
