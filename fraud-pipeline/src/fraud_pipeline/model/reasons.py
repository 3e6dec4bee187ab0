"""Why a payment was flagged: the features that raised its score most (XGBoost pred_contribs).

Each reason keeps, beside its feature's value, the card's `baseline`: the few history features
a person needs to judge it (its payments, spending and night payments over 30 days...), so the
sentence an analyst reads (`wording.describe_reason`) can say "9× this card's daily
average" long after the payment was scored.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, Final

import numpy as np

from fraud_pipeline.model.artifacts import Model

if TYPE_CHECKING:
    import pandas as pd
    import xgboost

Reason = dict[str, Any]

# The card's own history every reason carries, from the named features (the model itself does not
# read the 30-day ones: features.LONG_HISTORY).
BASELINE: Final = (
    "amt",
    "is_night",
    "card_count_7d",
    "card_count_30d",
    "card_sum_30d",
    "card_night_share_30d",
    "card_category_share_30d",
    "amt_vs_card_mean_30d",
)


def top_reasons(
    model_or_booster: Model | xgboost.Booster,
    matrix: np.ndarray,
    named: pd.DataFrame,
    k: int = 3,
) -> list[list[Reason]]:
    """Per row, up to `k` features with the largest positive contribution, strongest first.

    Contributions are XGBoost's own SHAP values (`pred_contribs`, log-odds); features that lowered
    the score are never reasons. One-hot columns keep their name (e.g. `category_shopping_net`).
    Each reason: `feature`, `value`, `contribution` and `baseline` (BASELINE's values of the
    row in `named`, the same rows' named features: `Model.feature_table`).
    """
    import xgboost  # heavy; only where a model is used

    if len(matrix) == 0:
        return []
    if isinstance(model_or_booster, Model):
        booster, names = model_or_booster.booster, model_or_booster.feature_names
    else:
        booster, names = model_or_booster, list(model_or_booster.feature_names or [])
    if len(names) != matrix.shape[1]:
        raise ValueError(f"matrix has {matrix.shape[1]} columns, the model {len(names)} features")
    if len(named) != len(matrix):
        raise ValueError(f"{len(named)} rows of named features for a matrix of {len(matrix)}")
    dmatrix = xgboost.DMatrix(matrix, feature_names=names)
    contributions = booster.predict(dmatrix, pred_contribs=True)[:, :-1]  # drop the bias
    order = np.argsort(-contributions, axis=1)[:, :k]
    known = [name for name in BASELINE if name in named.columns]
    baselines = named.loc[:, known].to_numpy(dtype=float)
    reasons: list[list[Reason]] = []
    for row, columns in enumerate(order):
        baseline = dict(zip(known, map(float, baselines[row]), strict=True))
        picked = []
        for column in columns:
            contribution = float(contributions[row, column])
            if contribution <= 0:
                break
            picked.append(
                {
                    "feature": names[column],
                    "value": float(matrix[row, column]),
                    "contribution": round(contribution, 4),
                    "baseline": baseline,
                }
            )
        reasons.append(picked)
    return reasons
