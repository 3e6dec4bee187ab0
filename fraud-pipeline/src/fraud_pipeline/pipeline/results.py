"""What the pipeline's steps hand each other: ids and small frozen results, no payments.

The DAG passes them through XCom as plain JSON (`to_xcom` / `from_xcom`): Airflow 3 can
serialise a dataclass itself, but only deserialises classes its `allowed_deserialization_classes`
names, and a plain dict keeps the XCom readable in the UI and independent of where the class
lives. Imports nothing heavy: the DAG file imports it at parse time.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, fields
from typing import Any, NewType, Self

# A run of the pipeline (an Airflow run id, a back-fill chunk's or `run-interval`'s own).
RunId = NewType("RunId", str)
# Whose claim an inbox row is under (`steps.claim`): the run that scores it.
BatchId = NewType("BatchId", str)


def batch_for(run_id: RunId) -> BatchId:
    """The batch a run claims and scores under: its own id (a retry of the run takes back its
    own rows; a run and its zombie share them)."""
    return BatchId(run_id)


class _Xcom:
    """`to_xcom` / `from_xcom` for a frozen dataclass of JSON values."""

    def to_xcom(self) -> dict[str, Any]:
        return asdict(self)  # type: ignore[call-overload]

    @classmethod
    def from_xcom(cls, value: dict[str, Any]) -> Self:
        names = {field.name for field in fields(cls)}  # type: ignore[arg-type]
        return cls(**{key: item for key, item in value.items() if key in names})


@dataclass(frozen=True)
class Ingested(_Xcom):
    """`steps.ingest` (or `steps.admit`): the run's payments fetched, checked, in the inbox.

    `fetched`: rows landed (look-back re-reads kept included); `good`: rows that passed
    validation and could be stored; `new`: payments new to the inbox (the others were there or
    stored already: `redelivered`, of which `conflicts` with other contents, quarantined);
    `late`: new payments that came in a look-back or re-check (`storage/late.py`); `reread`:
    payments fetched again by the look-back and re-check (new or not).
    """

    run_id: RunId
    fetched: int = 0
    good: int = 0
    quarantined: int = 0
    new: int = 0
    redelivered: int = 0
    conflicts: int = 0
    late: int = 0
    reread: int = 0
    start: str | None = None  # the interval fetched (a catch-up may widen the run's own)
    end: str | None = None


@dataclass(frozen=True)
class Loaded(_Xcom):
    """`steps.score_and_load`: the batch's payments scored and stored (those the model
    refused quarantined); the stored payments' time range, by which the shadow task finds
    them (trans_time index); None when none was stored."""

    batch_id: BatchId
    loaded: int = 0
    inserted: int = 0
    refused: int = 0
    frauds: int = 0
    model_version: str | None = None
    trans_time_from: str | None = None
    trans_time_to: str | None = None

    def plus(self, other: Loaded) -> Loaded:
        """Two chunks of the same batch as one result."""
        firsts = [t for t in (self.trans_time_from, other.trans_time_from) if t]
        lasts = [t for t in (self.trans_time_to, other.trans_time_to) if t]
        return Loaded(
            batch_id=self.batch_id,
            loaded=self.loaded + other.loaded,
            inserted=self.inserted + other.inserted,
            refused=self.refused + other.refused,
            frauds=self.frauds + other.frauds,
            model_version=other.model_version or self.model_version,
            trans_time_from=min(firsts) if firsts else None,
            trans_time_to=max(lasts) if lasts else None,
        )
