"""A seeded, deterministic generator of realistic Sparkov-format payments.

Its parameters are learnt from the Sparkov training year (customers and their home locations,
merchants by category, the hour-by-category and weekday rhythms, amounts by category) and fraud
follows the data: episodes of about nine payments over two days on a compromised card, mostly
between 22:00 and 03:59, in the fraud-heavy categories, with large amounts.

Determinism is per minute: the payments of minute m depend only on (seed, m) and fraud episodes
only on (seed, day), so any window gives the same payments every time and adjacent windows
partition the stream. That is what the windowed payments API and the benchmarks rely on.
"""

from __future__ import annotations

import hashlib
import sys
from dataclasses import dataclass
from datetime import datetime, timedelta
from functools import lru_cache
from pathlib import Path

import numpy as np
import pandas as pd

from fraud_pipeline import clock
from fraud_pipeline.config import PACKAGE_ROOT, get_settings
from fraud_pipeline.schema import SPARKOV_COLUMNS

SOURCE = PACKAGE_ROOT / "data" / "sparkov_train_2019.csv.gz"
PROFILE_COLUMNS = [
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
]
FRAUD_RATE = 0.0058  # the Sparkov training year's
EPISODE_PAYMENTS = (6, 13)  # frauds per episode: uniform in [6, 13)
EPISODE_DAYS = 2.0
PAYMENTS_PER_CARD_PER_DAY = 2.2
CATEGORY_PERIOD_DAYS = 14  # Sparkov cards keep one category for about two weeks
OTHER_CATEGORY_SHARE = 0.1  # the rest of the time they follow the hour's category mix


@dataclass(frozen=True, eq=False)
class Parameters:
    """What the generator learnt from the data."""

    profiles: pd.DataFrame  # one row per real customer profile
    merchants: dict[str, np.ndarray]  # category -> merchant names
    categories: np.ndarray
    hour_category: np.ndarray  # P(category | hour), 24 x C, legitimate payments
    hour_weight: np.ndarray  # relative activity per hour, mean 1
    weekday_weight: np.ndarray  # relative activity per weekday, mean 1
    category_mix: np.ndarray  # P(category), legitimate payments
    amount: dict[str, np.ndarray]  # category -> observed legitimate amounts (resampled)
    fraud_category: np.ndarray  # P(category) for frauds
    fraud_hour: np.ndarray  # P(hour) for frauds
    fraud_amount: dict[str, np.ndarray]


@lru_cache(maxsize=1)
def parameters(source: Path = SOURCE) -> Parameters:
    data = pd.read_csv(source, dtype={"zip": str, "cc_num": str}, engine="pyarrow")
    times = pd.to_datetime(data["trans_date_trans_time"])
    hour, weekday = times.dt.hour.to_numpy(), times.dt.day_of_week.to_numpy()
    fraud = data["is_fraud"].to_numpy() == 1
    categories = np.array(sorted(data["category"].unique()))
    legit = data[~fraud]
    table = pd.crosstab(hour[~fraud], legit["category"]).reindex(columns=categories, fill_value=0)
    hour_counts = np.bincount(hour[~fraud], minlength=24).astype(float)
    weekday_counts = np.bincount(weekday, minlength=7).astype(float)

    def amounts(rows: pd.DataFrame) -> dict[str, np.ndarray]:
        return {c: np.sort(g.to_numpy()) for c, g in rows.groupby("category")["amt"]}

    frauds = data[fraud]
    return Parameters(
        profiles=data.drop_duplicates("cc_num")[PROFILE_COLUMNS].reset_index(drop=True),
        merchants={
            c: np.array(sorted(g.unique())) for c, g in data.groupby("category")["merchant"]
        },
        categories=categories,
        hour_category=(table.to_numpy() / table.to_numpy().sum(axis=1, keepdims=True)),
        hour_weight=hour_counts / hour_counts.mean(),
        weekday_weight=weekday_counts / weekday_counts.mean(),
        category_mix=legit["category"]
        .value_counts(normalize=True)
        .reindex(categories, fill_value=0)
        .to_numpy(),
        amount=amounts(legit),
        fraud_category=frauds["category"]
        .value_counts(normalize=True)
        .reindex(categories, fill_value=0)
        .to_numpy(),
        fraud_hour=np.bincount(hour[fraud], minlength=24) / fraud.sum(),
        fraud_amount=amounts(frauds),
    )


@dataclass(frozen=True, eq=False)
class Population:
    card_numbers: np.ndarray
    profile_index: np.ndarray  # card -> row of Parameters.profiles
    activity_cdf: np.ndarray  # cumulative share of legitimate payments (heavy and light users)
    phase: np.ndarray  # card -> offset in days of its category periods


@lru_cache(maxsize=8)
def population(seed: int, n_cards: int) -> Population:
    rng = np.random.default_rng([seed, 1])
    numbers = np.char.add("4", rng.integers(10**14, 10**15, size=n_cards).astype(str))
    profiles = rng.integers(0, len(parameters().profiles), size=n_cards)
    activity = rng.gamma(2.5, size=n_cards)
    phase = rng.integers(0, CATEGORY_PERIOD_DAYS, size=n_cards)
    return Population(numbers, profiles, np.cumsum(activity) / activity.sum(), phase)


def _mix(*values: np.ndarray | int) -> np.ndarray:
    """A vectorised integer hash (splitmix64) of the arguments, as uniforms in [0, 1)."""
    x = np.zeros(np.broadcast(*[np.asarray(v) for v in values]).shape, dtype=np.uint64)
    with np.errstate(over="ignore"):
        for value in values:
            x = x * np.uint64(0x9E3779B97F4A7C15) + np.asarray(value).astype(np.uint64)
            x ^= x >> np.uint64(30)
            x *= np.uint64(0xBF58476D1CE4E5B9)
            x ^= x >> np.uint64(27)
            x *= np.uint64(0x94D049BB133111EB)
            x ^= x >> np.uint64(31)
    return (x >> np.uint64(11)).astype(np.float64) / float(1 << 53)


def _resample(pool: dict[str, np.ndarray], categories: np.ndarray, u: np.ndarray) -> np.ndarray:
    """Amounts drawn from the observed amounts of each payment's category."""
    out = np.empty(len(categories))
    for category in np.unique(categories):
        rows = categories == category
        values = pool[category]
        out[rows] = values[(u[rows] * len(values)).astype(int)]
    return out


@lru_cache(maxsize=1)
def _merchant_table(params: Parameters) -> tuple[np.ndarray, np.ndarray]:
    """Merchants as a padded (category x merchant) array, for vectorised picks."""
    names = [params.merchants[c] for c in params.categories]
    table = np.full((len(names), max(map(len, names))), "", dtype=object)
    for row, merchants in enumerate(names):
        table[row, : len(merchants)] = merchants
    return table, np.array([len(m) for m in names])


def _trans_num(*parts: int) -> str:
    return hashlib.md5("-".join(map(str, parts)).encode(), usedforsecurity=False).hexdigest()


Draws = dict[str, np.ndarray]


def _draws(
    rng: np.random.Generator,
    when: np.ndarray,
    cards: np.ndarray,
    categories: np.ndarray,
    amounts: np.ndarray,
    ids: list[str],
    is_fraud: int,
) -> Draws:
    """Everything random about these payments, drawn from their own generator (determinism)."""
    n = len(cards)
    return {
        "when": when.astype("datetime64[s]"),
        "card": cards,
        "category": categories,
        "amt": np.round(amounts, 2),
        "trans_num": np.array(ids, dtype=object),
        "merchant_u": rng.random(n),
        "dlat": rng.uniform(-1, 1, n),
        "dlong": rng.uniform(-1, 1, n),
        "is_fraud": np.full(n, is_fraud),
    }


def _assemble(params: Parameters, pop: Population, parts: list[Draws]) -> pd.DataFrame:
    """Sparkov rows from the draws of many minutes and episodes, built in one go."""
    d = {key: np.concatenate([part[key] for part in parts]) for key in parts[0]}
    profiles = params.profiles.iloc[pop.profile_index[d["card"]]].reset_index(drop=True)
    table, sizes = _merchant_table(params)
    category_index = np.searchsorted(params.categories, d["category"])
    when = pd.DatetimeIndex(d["when"])
    frame = profiles.assign(
        trans_date_trans_time=when.strftime("%Y-%m-%d %H:%M:%S"),
        cc_num=pop.card_numbers[d["card"]],
        merchant=table[category_index, (d["merchant_u"] * sizes[category_index]).astype(int)],
        category=d["category"],
        amt=d["amt"],
        trans_num=d["trans_num"],
        unix_time=when.astype("int64") // 10**9 if when.unit == "ns" else when.astype("int64"),
        merch_lat=np.round(profiles["lat"].to_numpy() + d["dlat"], 6),
        merch_long=np.round(profiles["long"].to_numpy() + d["dlong"], 6),
        is_fraud=d["is_fraud"],
    )
    order = np.lexsort((frame["trans_num"].to_numpy().astype(str), d["when"]))
    return frame.iloc[order].loc[:, list(SPARKOV_COLUMNS)].reset_index(drop=True)


def _legit_minute(
    params: Parameters, pop: Population, seed: int, minute: pd.Timestamp, rate_per_min: float
) -> Draws:
    key = int(minute.timestamp() // 60)
    rng = np.random.default_rng([seed, 2, key])
    weight = params.hour_weight[minute.hour] * params.weekday_weight[minute.day_of_week]
    n = int(rng.poisson(rate_per_min * weight))
    cards = np.minimum(np.searchsorted(pop.activity_cdf, rng.random(n)), len(pop.card_numbers) - 1)
    period = (key // 1440 + pop.phase[cards]) // CATEGORY_PERIOD_DAYS
    usual = np.searchsorted(np.cumsum(params.category_mix), _mix(seed, cards, period), side="right")
    usual = params.categories[np.minimum(usual, len(params.categories) - 1)]
    other = rng.choice(params.categories, size=n, p=params.hour_category[minute.hour])
    categories = np.where(rng.random(n) < OTHER_CATEGORY_SHARE, other, usual)
    amounts = _resample(params.amount, categories, rng.random(n))
    seconds = np.sort(rng.integers(0, 60, size=n))
    when = np.datetime64(minute.to_datetime64(), "s") + seconds.astype("timedelta64[s]")
    return _draws(
        rng, when, cards, categories, amounts, [_trans_num(seed, key, i) for i in range(n)], 0
    )


def _fraud_day(
    params: Parameters, pop: Population, seed: int, day: pd.Timestamp, rate_per_min: float
) -> list[Draws]:
    """The fraud episodes that start on `day` (they may run into the next days)."""
    key = int(day.timestamp() // 86_400)
    rng = np.random.default_rng([seed, 3, key])
    episodes_per_day = rate_per_min * 1440 * FRAUD_RATE / np.mean(EPISODE_PAYMENTS)
    episodes = []
    for episode in range(int(rng.poisson(episodes_per_day))):
        card = int(rng.integers(0, len(pop.card_numbers)))
        k = int(rng.integers(*EPISODE_PAYMENTS))
        hours = rng.choice(24, size=k, p=params.fraud_hour)
        days = np.sort(rng.uniform(0, EPISODE_DAYS, size=k)).astype(int)
        offsets = days * 86_400 + hours * 3_600 + rng.integers(0, 3_600, size=k)
        when = np.datetime64(day.to_datetime64(), "s") + offsets.astype("timedelta64[s]")
        categories = rng.choice(params.categories, size=k, p=params.fraud_category)
        amounts = _resample(params.fraud_amount, categories, rng.random(k))
        ids = [_trans_num(seed, key, 1_000_000 + episode, j) for j in range(k)]
        episodes.append(_draws(rng, when, np.full(k, card), categories, amounts, ids, 1))
    return episodes


def payments_between(
    start: datetime, end: datetime, *, seed: int = 42, rate_per_min: float = 60.0
) -> pd.DataFrame:
    """Raw Sparkov rows with event time in [start, end), in time order, card numbers included.

    Times are wall-clock strings in BUSINESS_TZ (naive aware inputs are read in that zone).
    """
    tz = get_settings().business_tz
    start_ts, end_ts = (pd.Timestamp(t) for t in (start, end))
    start_ts = start_ts.tz_localize(tz) if start_ts.tzinfo is None else start_ts.tz_convert(tz)
    end_ts = end_ts.tz_localize(tz) if end_ts.tzinfo is None else end_ts.tz_convert(tz)
    params = parameters()
    pop = population(seed, max(50, int(rate_per_min * 1440 / PAYMENTS_PER_CARD_PER_DAY)))
    # Work in naive local wall-clock time, as Sparkov does.
    lo, hi = start_ts.tz_localize(None), end_ts.tz_localize(None)
    minutes = pd.date_range(lo.floor("min"), hi.ceil("min"), freq="min", inclusive="left")
    parts = [_legit_minute(params, pop, seed, minute, rate_per_min) for minute in minutes]
    first_day = (lo - pd.Timedelta(days=EPISODE_DAYS + 1)).normalize()
    for day in pd.date_range(first_day, hi.normalize(), freq="D"):
        parts += _fraud_day(params, pop, seed, day, rate_per_min)
    inside = [p for p in parts if len(p["card"])]
    if not inside:
        return pd.DataFrame(columns=list(SPARKOV_COLUMNS))
    for part in inside:  # keep only event times inside the window
        keep = (part["when"] >= np.datetime64(lo, "s")) & (part["when"] < np.datetime64(hi, "s"))
        for key in part:
            part[key] = part[key][keep]
    inside = [p for p in inside if len(p["card"])]
    if not inside:
        return pd.DataFrame(columns=list(SPARKOV_COLUMNS))
    return _assemble(params, pop, inside)


def main(
    *,
    out: str | Path,
    rows: int | None = None,
    days: float = 1.0,
    end: str | datetime | None = None,
    rate: float = 60.0,
    seed: int = 42,
) -> int:
    """`fraud-pipeline generate`: write `days` of payments (or the last `rows`) before `end`.

    `end` defaults to today 00:00 in the business time zone; `rate` is payments per minute; `out` is
    FILE.csv or FILE.csv.gz.
    """
    end_at = pd.Timestamp(end) if end else pd.Timestamp(clock.today())  # local midnight
    if rows:
        minutes = int(np.ceil(2 * rows / rate)) + 60  # quiet hours: ask for more
        start = end_at - pd.Timedelta(minutes=minutes)
    else:
        start = end_at - pd.Timedelta(days=days)
    chunks, written = [], 0
    day = start
    while day < end_at:  # a day at a time, with progress
        upper = min(day + timedelta(days=1), end_at)
        chunk = payments_between(day, upper, seed=seed, rate_per_min=rate)
        chunks.append(chunk)
        written += len(chunk)
        print(
            f"  {day:%Y-%m-%d %H:%M} -> {upper:%Y-%m-%d %H:%M}: {written:,} payments",
            file=sys.stderr,
        )
        day = upper
    frame = pd.concat(chunks, ignore_index=True)
    if rows:
        frame = frame.tail(rows)
    frame.to_csv(out, index=False)
    print(f"wrote {len(frame):,} payments ({int(frame['is_fraud'].sum()):,} frauds) to {out}")
    return 0
