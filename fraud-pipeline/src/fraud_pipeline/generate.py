"""A seeded, deterministic generator of realistic Sparkov-format payments.

Why it replays real cards: in the Sparkov data a card's category, daypart and place in the year
move together (its generator picks category and daypart with one random number, and in its
output both follow the date). A card spends weeks in one category after another, in a fixed
order, shopping only mornings (00-11 h) in the first categories and only afternoons (12-23 h) in
the last ones, with amounts typical of its profile; its one fraud episode fills two days (its
legitimate payments stop those days) and runs from small night payments in gas and grocery to
large ones online. The model's card-history features learnt exactly that, and a generator that
draws category, hour and amount independently makes honest cardholders look like thieves. So
each of our cards copies a source card of the Sparkov training year: its profile, its rate, its
year of payments (from the card's own phase, so that every day still has the year's category
mix; a new card number each new year, as every Sparkov card starts the year without history),
amounts drawn from its own amounts per category and, when compromised, its fraud episode.

Determinism is per minute: the payments of minute m depend only on (seed, m) and fraud episodes
only on (seed, day), so any window gives the same payments every time and adjacent windows
partition the stream. That is what the windowed payments API and the benchmarks rely on.
"""

from __future__ import annotations

import argparse
import hashlib
import sys
from dataclasses import dataclass
from datetime import datetime, timedelta
from functools import lru_cache
from pathlib import Path

import numpy as np
import pandas as pd

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
PAYMENTS_PER_CARD_PER_DAY = 2.2
YEAR_DAYS = 365.0  # a card replays its source card's year from its own phase, then starts again
REPLAY_JITTER_DAYS = 1.0  # how far from its place in the year a replayed payment may come from
DAYPART_ROWS = 8  # the source payments around a card's place in the year that tell its daypart
AMOUNT_JITTER = 0.05  # log-normal noise on replayed amounts, so that cards do not repeat each other
EPISODE_DAYS = 2  # a Sparkov fraud window covers its first day and the next
SECONDS_PER_DAY = 86_400


@dataclass(frozen=True, eq=False)
class Parameters:
    """What the generator learnt from the data: each source card's year and fraud episode."""

    profiles: pd.DataFrame  # one row per source card
    dob: np.ndarray  # per source card, datetime64[D]: moved with the replay, so ages stay true
    year_start: int  # the source year's first day, in days since 1970-01-01
    merchants: dict[str, np.ndarray]  # category -> merchant names
    categories: np.ndarray
    hour_weight: np.ndarray  # relative activity per hour, mean 1
    weekday_weight: np.ndarray  # relative activity per weekday, mean 1
    activity: np.ndarray  # per source card: its legitimate payments in the year
    morning_share: np.ndarray  # per source card: the share of them before noon
    # Legitimate payments sorted by group (2 * source card + 1 if afternoon), then place in year.
    replay_key: np.ndarray  # group + place in the year (in [0, 1))
    replay_category: np.ndarray  # index into categories
    group_start: np.ndarray  # per group: its first row; group_start[g + 1] ends it
    # Legitimate amounts sorted by source card and category: Sparkov draws them independently.
    pool_amount: np.ndarray
    pool_start: np.ndarray  # per source card * len(categories) + category; one more ends it
    # Fraud episodes, each one's payments in time order.
    episode_start: np.ndarray  # per episode: its first payment; one more entry ends the last
    episode_offset: np.ndarray  # seconds after midnight of the episode's first day
    episode_category: np.ndarray  # index into categories
    episode_amount: np.ndarray
    card_episode: np.ndarray  # per source card: its own episode, or -1


@lru_cache(maxsize=1)
def parameters(source: Path = SOURCE) -> Parameters:
    data = pd.read_csv(source, dtype={"zip": str, "cc_num": str}, engine="pyarrow")
    times = pd.to_datetime(data["trans_date_trans_time"])
    hour, weekday = times.dt.hour.to_numpy(), times.dt.day_of_week.to_numpy()
    fraud = data["is_fraud"].to_numpy() == 1
    legit = ~fraud
    categories = np.array(sorted(data["category"].unique()))
    category = np.searchsorted(categories, data["category"].to_numpy())
    card_numbers, card = np.unique(data["cc_num"].to_numpy(), return_inverse=True)
    year_start = times.min().normalize().replace(month=1, day=1)
    seconds = (times - year_start).dt.total_seconds().to_numpy()
    place = np.clip(seconds / (YEAR_DAYS * SECONDS_PER_DAY), 0, np.nextafter(1, 0))
    afternoon = (hour >= 12).astype(int)

    group = 2 * card[legit] + afternoon[legit]
    order = np.lexsort((place[legit], group))
    n_cards = len(card_numbers)
    pool = card[legit] * len(categories) + category[legit]
    pool_order = np.argsort(pool, kind="stable")
    hour_counts = np.bincount(hour[legit], minlength=24).astype(float)
    weekday_counts = np.bincount(weekday, minlength=7).astype(float)
    activity = np.bincount(card[legit], minlength=n_cards).astype(float)
    mornings = np.bincount(card[legit], weights=1 - afternoon[legit], minlength=n_cards)

    # The source holds at most one episode per card: a card's frauds, in time order.
    rows = np.flatnonzero(fraud)
    rows = rows[np.lexsort((seconds[rows], card[rows]))]
    episode_card, episode_start = np.unique(card[rows], return_index=True)
    first_midnight = seconds[rows][episode_start] // SECONDS_PER_DAY * SECONDS_PER_DAY
    sizes = np.diff(np.append(episode_start, len(rows)))
    card_episode = np.full(n_cards, -1)
    card_episode[episode_card] = np.arange(len(episode_card))

    profiles = data.drop_duplicates("cc_num").set_index("cc_num").loc[card_numbers]
    return Parameters(
        profiles=profiles[PROFILE_COLUMNS].reset_index(drop=True),
        dob=pd.to_datetime(profiles["dob"]).to_numpy().astype("datetime64[D]"),
        year_start=int(year_start.to_datetime64().astype("datetime64[D]").astype(np.int64)),
        merchants={
            c: np.array(sorted(g.unique())) for c, g in data.groupby("category")["merchant"]
        },
        categories=categories,
        hour_weight=hour_counts / hour_counts.mean(),
        weekday_weight=weekday_counts / weekday_counts.mean(),
        activity=activity,
        morning_share=mornings / np.maximum(activity, 1),
        replay_key=(group + place[legit])[order],
        replay_category=category[legit][order],
        group_start=np.searchsorted(group[order], np.arange(2 * n_cards + 1)),
        pool_amount=data["amt"].to_numpy(dtype=float)[legit][pool_order],
        pool_start=np.searchsorted(pool[pool_order], np.arange(n_cards * len(categories) + 1)),
        episode_start=np.append(episode_start, len(rows)),
        episode_offset=(seconds[rows] - np.repeat(first_midnight, sizes)).astype(np.int64),
        episode_category=category[rows],
        episode_amount=data["amt"].to_numpy(dtype=float)[rows],
        card_episode=card_episode,
    )


@dataclass(frozen=True, eq=False)
class Population:
    profile_index: np.ndarray  # card -> its source card (row of Parameters.profiles)
    phase: np.ndarray  # card -> its place in its source card's year on 1970-01-01


@lru_cache(maxsize=8)
def population(seed: int, n_cards: int) -> Population:
    rng = np.random.default_rng([seed, 1])
    return Population(
        rng.integers(0, len(parameters().profiles), size=n_cards), rng.random(n_cards)
    )


def _place(
    pop: Population, cards: np.ndarray, days: np.ndarray | float
) -> tuple[np.ndarray, np.ndarray]:
    """Each card's place in its source card's year `days` after 1970-01-01, and which year.

    Cards replay the year forwards; when it ends the customer gets a new card (a new number,
    no history) and starts again in January, as every Sparkov card starts the year afresh.
    """
    years = pop.phase[cards] + np.asarray(days) / YEAR_DAYS
    return years % 1.0, np.floor(years).astype(np.int64)


def _card_numbers(seed: int, cards: np.ndarray, years: np.ndarray) -> np.ndarray:
    """A 16-digit Visa-like number per (card, year of replay): splitmix64 of the three."""
    x = np.full(len(cards), seed, dtype=np.uint64)
    with np.errstate(over="ignore"):
        for value in (cards, years):
            x = x * np.uint64(0x9E3779B97F4A7C15) + value.astype(np.uint64)
            x ^= x >> np.uint64(30)
            x *= np.uint64(0xBF58476D1CE4E5B9)
            x ^= x >> np.uint64(27)
            x *= np.uint64(0x94D049BB133111EB)
            x ^= x >> np.uint64(31)
    digits = np.uint64(10**14) + x % np.uint64(9 * 10**14)
    return np.char.add("4", digits.astype(str))


def _rows_around(
    params: Parameters, group: np.ndarray, place: np.ndarray, days: np.ndarray
) -> np.ndarray:
    """How many replay rows of each group lie within `days` of `place`."""
    lo, hi = np.clip(place - days / YEAR_DAYS, 0, 1), np.clip(place + days / YEAR_DAYS, 0, 1)
    return np.searchsorted(params.replay_key, group + hi) - np.searchsorted(
        params.replay_key, group + lo
    )


def _replay_rows(params: Parameters, group: np.ndarray, place: np.ndarray) -> np.ndarray:
    """Each (non-empty) group's row nearest to `place` in the year."""
    first, end = params.group_start[group], params.group_start[group + 1]
    after = np.minimum(np.searchsorted(params.replay_key, group + place), end - 1)
    before = np.maximum(after - 1, first)
    key = params.replay_key
    nearer = np.abs(key[after] - group - place) <= np.abs(key[before] - group - place)
    return np.where(nearer, after, before)


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
    jitter = np.exp(rng.normal(0, AMOUNT_JITTER, n))
    return {
        "when": when.astype("datetime64[s]"),
        "card": cards,
        "category": categories,
        "amt": np.round(np.maximum(amounts * jitter, 1.0), 2),
        "trans_num": np.array(ids, dtype=object),
        "merchant_u": rng.random(n),
        "dlat": rng.uniform(-1, 1, n),
        "dlong": rng.uniform(-1, 1, n),
        "is_fraud": np.full(n, is_fraud),
    }


@lru_cache(maxsize=64)
def _episodes(seed: int, n_cards: int, rate_per_min: float, day: int) -> tuple[Draws, ...]:
    """The fraud episodes that start on `day` (days since 1970-01-01); they run into the next."""
    params, pop = parameters(), population(seed, n_cards)
    rng = np.random.default_rng([seed, 3, day])
    mean_size = np.diff(params.episode_start).mean()
    midnight = np.datetime64(day, "D").astype("datetime64[s]")
    episodes = []
    for number in range(int(rng.poisson(rate_per_min * 1440 * FRAUD_RATE / mean_size))):
        card = int(rng.integers(0, n_cards))
        own = int(params.card_episode[pop.profile_index[card]])
        episode = own if own >= 0 else int(rng.integers(0, len(params.episode_start) - 1))
        rows = slice(params.episode_start[episode], params.episode_start[episode + 1])
        k = rows.stop - rows.start
        when = midnight + params.episode_offset[rows].astype("timedelta64[s]")
        categories = params.categories[params.episode_category[rows]]
        ids = [_trans_num(seed, day, 1_000_000 + number, j) for j in range(k)]
        draws = _draws(rng, when, np.full(k, card), categories, params.episode_amount[rows], ids, 1)
        episodes.append(draws)
    return tuple(episodes)


@dataclass(frozen=True, eq=False)
class Day:
    """Who pays on a day: cards shopping that daypart, none whose card is being defrauded."""

    cdf: np.ndarray  # 2 x cards: cumulative share of the morning's / the afternoon's payments
    blocked: np.ndarray  # per card: fraud that day? (Sparkov drops its legitimate payments then)


@lru_cache(maxsize=64)
def _day(seed: int, n_cards: int, rate_per_min: float, day: int) -> Day:
    params, pop = parameters(), population(seed, n_cards)
    source = pop.profile_index
    place = _place(pop, np.arange(n_cards), day + 0.5)[0]
    days = np.clip(DAYPART_ROWS / 2 * YEAR_DAYS / np.maximum(params.activity[source], 1), 1, 30)
    mornings = _rows_around(params, 2 * source, place, days)
    seen = mornings + _rows_around(params, 2 * source + 1, place, days)
    share = np.where(seen > 0, mornings / np.maximum(seen, 1), params.morning_share[source])
    weight = params.activity[source] * np.stack([share, 1 - share])
    blocked = [
        episode["card"][episode["when"].astype("datetime64[D]").astype(np.int64) == day]
        for start in range(day - EPISODE_DAYS, day + 1)
        for episode in _episodes(seed, n_cards, rate_per_min, start)
    ]
    return Day(
        cdf=np.cumsum(weight, axis=1) / weight.sum(axis=1, keepdims=True),
        blocked=np.isin(
            np.arange(n_cards), np.concatenate([np.empty(0, dtype=np.int64), *blocked])
        ),
    )


@lru_cache(maxsize=1)
def _merchant_table(params: Parameters) -> tuple[np.ndarray, np.ndarray]:
    """Merchants as a padded (category x merchant) array, for vectorised picks."""
    names = [params.merchants[c] for c in params.categories]
    table = np.full((len(names), max(map(len, names))), "", dtype=object)
    for row, merchants in enumerate(names):
        table[row, : len(merchants)] = merchants
    return table, np.array([len(m) for m in names])


def _assemble(params: Parameters, pop: Population, seed: int, parts: list[Draws]) -> pd.DataFrame:
    """Sparkov rows from the draws of many minutes and episodes, built in one go."""
    d = {key: np.concatenate([part[key] for part in parts]) for key in parts[0]}
    days = d["when"].astype(np.int64) / SECONDS_PER_DAY
    year = _place(pop, d["card"], days)[1]
    source = pop.profile_index[d["card"]]
    profiles = params.profiles.iloc[source].reset_index(drop=True)
    # The cardholder is as old as the source cardholder at the same place in the year.
    replay_start = (year - pop.phase[d["card"]]) * YEAR_DAYS
    moved = np.round(replay_start - params.year_start).astype(np.int64).astype("timedelta64[D]")
    table, sizes = _merchant_table(params)
    category_index = np.searchsorted(params.categories, d["category"])
    when = pd.DatetimeIndex(d["when"])
    frame = profiles.assign(
        dob=np.datetime_as_string(params.dob[source] + moved, unit="D"),
        trans_date_trans_time=when.strftime("%Y-%m-%d %H:%M:%S"),
        cc_num=_card_numbers(seed, d["card"], year),
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
    params: Parameters,
    pop: Population,
    seed: int,
    minute: pd.Timestamp,
    rate_per_min: float,
) -> Draws:
    key = int(minute.timestamp() // 60)
    n_cards = len(pop.phase)
    day = _day(seed, n_cards, rate_per_min, key // 1440)
    rng = np.random.default_rng([seed, 2, key])
    weight = params.hour_weight[minute.hour] * params.weekday_weight[minute.day_of_week]
    n = int(rng.poisson(rate_per_min * weight))
    afternoon = int(minute.hour >= 12)
    cards = np.searchsorted(day.cdf[afternoon], rng.random(n), side="right")
    cards = np.minimum(cards, n_cards - 1)
    jitter = rng.uniform(-REPLAY_JITTER_DAYS, REPLAY_JITTER_DAYS, n) / YEAR_DAYS
    # Within this card's year: December's habits never leak into a new card's January.
    place = np.clip(_place(pop, cards, key / 1440)[0] + jitter, 0, np.nextafter(1, 0))
    source = pop.profile_index[cards]
    category = params.replay_category[_replay_rows(params, 2 * source + afternoon, place)]
    pool = source * len(params.categories) + category
    first, size = params.pool_start[pool], np.diff(params.pool_start)[pool]
    amounts = params.pool_amount[first + (rng.random(n) * size).astype(int)]
    seconds = np.sort(rng.integers(0, 60, size=n))
    when = np.datetime64(minute.to_datetime64(), "s") + seconds.astype("timedelta64[s]")
    ids = [_trans_num(seed, key, i) for i in range(n)]
    draws = _draws(rng, when, cards, params.categories[category], amounts, ids, 0)
    keep = ~day.blocked[cards]
    return {name: values[keep] for name, values in draws.items()}


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
    n_cards = max(50, int(rate_per_min * 1440 / PAYMENTS_PER_CARD_PER_DAY))
    pop = population(seed, n_cards)
    # Work in naive local wall-clock time, as Sparkov does.
    lo, hi = start_ts.tz_localize(None), end_ts.tz_localize(None)
    minutes = pd.date_range(lo.floor("min"), hi.ceil("min"), freq="min", inclusive="left")
    parts = [_legit_minute(params, pop, seed, minute, rate_per_min) for minute in minutes]
    first_day = (lo - pd.Timedelta(days=EPISODE_DAYS + 1)).normalize()
    for day in pd.date_range(first_day, hi.normalize(), freq="D"):
        key = int(day.timestamp() // SECONDS_PER_DAY)
        parts += [dict(e) for e in _episodes(seed, n_cards, rate_per_min, key)]
    low, high = np.datetime64(lo, "s"), np.datetime64(hi, "s")
    inside = []
    for part in parts:  # keep only event times inside the window
        keep = (part["when"] >= low) & (part["when"] < high)
        if keep.any():
            inside.append({name: values[keep] for name, values in part.items()})
    if not inside:
        return pd.DataFrame(columns=list(SPARKOV_COLUMNS))
    return _assemble(params, pop, seed, inside)


def main(args: argparse.Namespace) -> int:
    end = pd.Timestamp(args.end) if args.end else pd.Timestamp.now().floor("D")
    if args.rows:
        minutes = int(np.ceil(2 * args.rows / args.rate)) + 60  # quiet hours: ask for more
        start = end - pd.Timedelta(minutes=minutes)
    else:
        start = end - pd.Timedelta(days=args.days)
    chunks, written = [], 0
    day = start
    while day < end:  # a day at a time, with progress
        upper = min(day + timedelta(days=1), end)
        chunk = payments_between(day, upper, seed=args.seed, rate_per_min=args.rate)
        chunks.append(chunk)
        written += len(chunk)
        print(
            f"  {day:%Y-%m-%d %H:%M} -> {upper:%Y-%m-%d %H:%M}: {written:,} payments",
            file=sys.stderr,
        )
        day = upper
    frame = pd.concat(chunks, ignore_index=True)
    if args.rows:
        frame = frame.tail(args.rows)
    frame.to_csv(args.out, index=False)
    print(f"wrote {len(frame):,} payments ({int(frame['is_fraud'].sum()):,} frauds) to {args.out}")
    return 0
