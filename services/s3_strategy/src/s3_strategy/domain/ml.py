"""L2 ML score: the scorer port, the default mock, and the probability → size multiplier table.

The port is async because a production scorer is a remote model server; the service layer gives
it a deadline (bundle `ml.deadline_ms`) and applies the documented fallback on timeout or error
(`MlParams`). The decision records what the scorer said (`p`, `model_version`, `fallback`,
`error`) so that a replay re-uses the recorded score instead of asking a model that may have
changed since: the score is an input of the decision, like the features.
"""

from __future__ import annotations

import abc
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from decimal import Decimal

from s3_strategy.domain.params import MlRow


class Scorer(abc.ABC):
    """Port: probability in [0, 1] that an entry on `symbol` is worth taking now."""

    model_version: str

    @abc.abstractmethod
    async def score(self, symbol: str, features: Mapping[str, float]) -> float: ...


class ConstantScorer(Scorer):
    """The mock of spec §C3: always p = 0.65 (→ size_mult 1.0 with the default ml_table)."""

    def __init__(self, p: float = 0.65, model_version: str = "mock-const-0.65") -> None:
        self.p = p
        self.model_version = model_version

    async def score(self, symbol: str, features: Mapping[str, float]) -> float:
        return self.p


@dataclass(frozen=True, slots=True)
class MlInput:
    """What the scorer answered (or why it did not): recorded in the signal, replayed as is."""

    p: float | None
    model_version: str
    fallback: bool = False
    error: str | None = None


def table_mult(table: Sequence[MlRow], p: float) -> Decimal | None:
    """The row with the highest `p_min` ≤ p; None when p is below every row (ML_LOW_SCORE).
    `table` is sorted ascending by p_min (BundleParams guarantees it)."""
    chosen: Decimal | None = None
    for row in table:
        if p >= row.p_min:
            chosen = row.size_mult
        else:
            break
    return chosen
