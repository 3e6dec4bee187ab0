"""The payment schema: one list of fields for the API, validation, features and storage."""

from __future__ import annotations

from datetime import timedelta
from typing import Final

# The public Sparkov (Kaggle fraudTrain/fraudTest) columns, in file order.
SPARKOV_COLUMNS: Final[tuple[str, ...]] = (
    "trans_date_trans_time",
    "cc_num",
    "merchant",
    "category",
    "amt",
    "first",
    "last",
    "gender",
    "street",
    "city",
    "state",
    "zip",
    "lat",
    "long",
    "city_pop",
    "job",
    "dob",
    "trans_num",
    "unix_time",
    "merch_lat",
    "merch_long",
    "is_fraud",
)

CATEGORIES: Final[tuple[str, ...]] = (
    "entertainment",
    "food_dining",
    "gas_transport",
    "grocery_net",
    "grocery_pos",
    "health_fitness",
    "home",
    "kids_pets",
    "misc_net",
    "misc_pos",
    "personal_care",
    "shopping_net",
    "shopping_pos",
    "travel",
)

# After extract, the card number is replaced by these two (see cards.py); nothing downstream
# ever sees `cc_num`.
CARD_COLUMNS: Final[tuple[str, ...]] = ("card_token", "card_last4")

# A payment as it travels through the pipeline once extracted: event time is
# `trans_time` (timezone-aware), the label `is_fraud` is optional (None when unknown).
PAYMENT_COLUMNS: Final[tuple[str, ...]] = (
    "trans_num",
    "trans_time",
    *CARD_COLUMNS,
    "merchant",
    "category",
    "amt",
    "first",
    "last",
    "gender",
    "street",
    "city",
    "state",
    "zip",
    "lat",
    "long",
    "city_pop",
    "job",
    "dob",
    "merch_lat",
    "merch_long",
    "is_fraud",
)

# What scoring adds to a payment.
SCORE_COLUMNS: Final[tuple[str, ...]] = (
    "fraud_probability",
    "is_fraud_pred",
    "threshold",
    "model_version",
    "reasons",
    "scored_at",
    "rule_hits",  # what the rules and lists said (fraud_pipeline.rules)
    "rule_flagged",  # alerted by an enabled rule or a block list
)

# Columns of table payments_scored written by the upsert (created_at/updated_at and the
# alert bookkeeping columns are managed by the database and the alert step).
SCORED_COLUMNS: Final[tuple[str, ...]] = PAYMENT_COLUMNS + SCORE_COLUMNS

# The Sparkov fields by type, as the payments API sends them (the card number and the times apart).
TEXT_FIELDS: Final[tuple[str, ...]] = (
    "trans_num",
    "merchant",
    "category",
    "first",
    "last",
    "gender",
    "street",
    "city",
    "state",
    "zip",
    "job",
    "dob",
)
NUMBER_FIELDS: Final[tuple[str, ...]] = (
    "amt",
    "lat",
    "long",
    "city_pop",
    "merch_lat",
    "merch_long",
    "is_fraud",
    "unix_time",
)


# A card's history: what the card-history features (model.features) read of its earlier
# payments, and how far back; storage.history loads exactly these.
HISTORY_COLUMNS: Final[tuple[str, ...]] = (
    "trans_num",
    "trans_time",
    "card_token",
    "category",
    "amt",
)
LOOKBACK: Final = timedelta(days=30)
