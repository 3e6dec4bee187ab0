"""Why a payment was flagged: the model's own SHAP reasons, with the card's baseline kept."""

from __future__ import annotations

import numpy as np

from fraud_pipeline.ingest.payments import to_payments
from fraud_pipeline.model.artifacts import load_model
from fraud_pipeline.model.reasons import BASELINE, top_reasons
from fraud_pipeline.wording import describe_reasons
from tests.support.factories import real_rows


def test_flagged_payments_keep_their_reasons_and_the_cards_baseline() -> None:
    model = load_model()
    payments = to_payments(real_rows().head(3000))
    named, matrix = model.feature_table(payments)
    flagged = np.flatnonzero(model.predict(matrix) >= model.threshold)
    assert len(flagged) >= 5
    reasons = top_reasons(model, matrix[flagged], named.iloc[flagged])
    names = model.feature_names
    for row, why in zip(flagged, reasons, strict=True):
        assert 1 <= len(why) <= 3
        contributions = [r["contribution"] for r in why]
        assert contributions == sorted(contributions, reverse=True) and min(contributions) > 0
        for reason in why:
            assert reason["value"] == float(matrix[row, names.index(reason["feature"])])
            # The card's own history, also what the model does not read (30-day figures).
            assert reason["baseline"] == {name: float(named.iloc[row][name]) for name in BASELINE}
        sentences = describe_reasons(why)
        assert 1 <= len(sentences) <= len(why)  # the amount and its log: one sentence
        assert not [s for s in sentences if "_" in s]  # sentences, not feature names
