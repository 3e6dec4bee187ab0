"""A seeded, deterministic generator of Sparkov-format payments by customers the model never saw.

It works as the original Sparkov generator does: every customer belongs to a profile, and the
profile fixes the habits — how many payments a day (each customer draws its own rate), which
categories, whether a category is bought in the morning half of the day (00:00-11:59) or the
afternoon half, and the amounts by category. The profiles are learnt from the training year and
committed as a small table (PROFILES, written by `python -m fraud_devstack.stack.generate`):
the training cards are grouped by their category mix, and each group keeps only pooled figures
(at least MIN_CARDS cards each) and its demographics (share of men, age and city-size spread), so
no card of the training file is copied. Customers are new: a profile, then a gender, an age, a
city of the profile's size class, a first name, a last name, a street and a job drawn
independently from the table's lists (the generator never reads the training file).

Fraud follows the data too: an episode of about nine payments over two days on a compromised
card, in the profile's fraud categories (pooled with all frauds), with the fraud hours and amounts
of the data; as in Sparkov, the card's own payments stop on those two days.

Determinism is per minute: the payments of minute m depend only on (seed, m) and fraud episodes
only on (seed, day), so any window gives the same payments every time and adjacent windows
partition the stream. That is what the windowed payments API and the benchmarks rely on.
"""

from __future__ import annotations

import hashlib
import json
import sys
from dataclasses import dataclass
from datetime import datetime, timedelta
from functools import lru_cache
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from fraud_pipeline import clock
from fraud_pipeline.config import PACKAGE_ROOT, get_settings
from fraud_pipeline.schema import SPARKOV_COLUMNS

SOURCE = PACKAGE_ROOT / "data" / "sparkov_train_2019.csv.gz"
PROFILES = Path(__file__).with_name("generator_profiles.json")
N_PROFILES = 12  # as many as Sparkov's (3 age bands x 2 genders x urban/rural)
MIN_CARDS = 10  # a profile pools at least this many training cards
FRAUD_PRIOR = 50  # a profile's fraud categories: its frauds plus this many of everyone's
QUANTILES = np.linspace(0, 1, 11)
AMOUNT_QUANTILES = np.concatenate([np.linspace(0, 0.95, 20), [0.975, 0.99, 0.995, 0.999, 1]])
AGE_AT = pd.Timestamp("2019-07-01")  # training ages are measured here...
BORN_BEFORE = pd.Timestamp("2026-07-01")  # ...and new customers have those ages here
URBAN_POP = 2_500  # Sparkov's urban/rural line
AGE_BANDS = ((0, 25, "young_adults"), (25, 50, "adults_2550"), (50, 200, "adults_50up"))
YEAR_DAYS = 365  # a card goes through its profile's categories once a year


# --- Profiles: learnt once from the training year, committed as PROFILES ------------------------


def _amount_quantiles(amounts: pd.Series) -> list[float]:
    return [round(float(a), 2) for a in amounts.quantile(AMOUNT_QUANTILES)]


def _segment(male: float, age: float, urban: float) -> str:
    band = next(name for lo, hi, name in AGE_BANDS if lo <= age < hi)
    return f"{band}_{'male' if male >= 0.5 else 'female'}_{'urban' if urban >= 0.5 else 'rural'}"


def derive_profiles(source: Path = SOURCE) -> dict[str, Any]:
    """The profile table, from the training year's payments (pooled figures only)."""
    from sklearn.cluster import KMeans

    data = pd.read_csv(source, dtype={"zip": str, "cc_num": str}, engine="pyarrow")
    times = pd.to_datetime(data["trans_date_trans_time"])
    data = data.assign(am=times.dt.hour < 12, day=times.dt.normalize(), hour=times.dt.hour)
    fraud, legit = data[data["is_fraud"] == 1], data[data["is_fraud"] == 0]
    categories = sorted(data["category"].unique())
    mix = pd.crosstab(legit["cc_num"], legit["category"], normalize="index")
    mix = mix.reindex(columns=categories, fill_value=0.0)
    kmeans = KMeans(N_PROFILES, n_init=10, random_state=0).fit(mix.to_numpy())
    sizes = np.bincount(kmeans.labels_)
    kept = np.flatnonzero(sizes >= MIN_CARDS)
    distance = ((mix.to_numpy()[:, None, :] - kmeans.cluster_centers_[None, kept]) ** 2).sum(-1)
    group = pd.Series(kept[distance.argmin(axis=1)], index=mix.index)  # small groups: nearest

    cards = data.drop_duplicates("cc_num").set_index("cc_num").loc[mix.index]
    age = (AGE_AT - pd.to_datetime(cards["dob"])).dt.days / 365.25
    active = legit.groupby("cc_num")["day"].agg(lambda d: (d.max() - d.min()).days + 1)
    rate = legit.groupby("cc_num").size() / active
    global_amount = {c: _amount_quantiles(g) for c, g in legit.groupby("category")["amt"]}
    fraud_mix = fraud["category"].value_counts().reindex(categories, fill_value=0)
    # The order in which a card's categories follow one another through its year.
    schedule = legit.groupby("category")["day"].median().sort_values().index
    profiles = []
    for g in sorted(set(group)):
        members = group.index[group == g]
        rows = legit[legit["cc_num"].isin(members)]
        by_category = rows.groupby("category")
        counts = by_category.size().reindex(categories, fill_value=0)
        amount = {
            c: _amount_quantiles(a) if len(a) >= 100 else global_amount[c]
            for c, a in by_category["amt"]
        }
        own_fraud = fraud[fraud["cc_num"].isin(members)]["category"].value_counts()
        fraud_weight = own_fraud.reindex(categories, fill_value=0) + FRAUD_PRIOR * (
            fraud_mix / fraud_mix.sum()
        )
        male = float((cards.loc[members, "gender"] == "M").mean())
        urban = float((cards.loc[members, "city_pop"] >= URBAN_POP).mean())
        ages = age.loc[members]
        profiles.append(
            {
                "segment": _segment(male, float(ages.median()), urban),
                "cards": len(members),
                "male_share": round(male, 3),
                "urban_share": round(urban, 3),
                "age_quantiles": [round(float(a), 1) for a in ages.quantile(QUANTILES)],
                "rate_quantiles": [
                    round(float(r), 3) for r in rate.loc[members].quantile(QUANTILES)
                ],
                "category_weight": [round(float(v), 5) for v in counts / counts.sum()],
                "morning_share": [
                    round(float(v), 4)
                    for v in by_category["am"].mean().reindex(categories, fill_value=0.5)
                ],
                "amount": [amount.get(c, global_amount[c]) for c in categories],
                "fraud_category_weight": [
                    round(float(v), 5) for v in fraud_weight / fraud_weight.sum()
                ],
            }
        )
    episode = fraud.groupby("cc_num").size()
    people = data.drop_duplicates("cc_num")
    cities = data.drop_duplicates(["city", "state"]).sort_values(["state", "city"])
    fraud_by_category = fraud.groupby("category")
    return {
        "source": source.name,
        "categories": categories,
        "schedule": [categories.index(c) for c in schedule],
        "fraud_rate": round(float(data["is_fraud"].mean()), 5),
        "weekday_weight": [
            round(float(v), 4)
            for v in legit["day"].dt.day_of_week.value_counts(normalize=True).sort_index() * 7
        ],
        "episode_size": {str(k): int(v) for k, v in episode.value_counts().sort_index().items()},
        "fraud_morning_share": [
            round(float(v), 4) for v in fraud_by_category["am"].mean().reindex(categories)
        ],
        "fraud_hour": [  # frauds per hour of the day (the morning and afternoon halves apart)
            int(v) for v in np.bincount(fraud["hour"], minlength=24)
        ],
        "fraud_amount": [
            _amount_quantiles(fraud_by_category["amt"].get_group(c)) for c in categories
        ],
        "profiles": profiles,
        # What a new customer's identity is drawn from, each part on its own.
        "merchants": [sorted(g.unique()) for _, g in data.groupby("category")["merchant"]],
        "cities": cities[["city", "state", "zip", "lat", "long", "city_pop"]].to_dict("split")[
            "data"
        ],
        "first_names": {
            g: sorted(people.loc[people["gender"] == g, "first"].unique()) for g in ("F", "M")
        },
        "last_names": sorted(people["last"].unique()),
        "streets": sorted(people["street"].str.replace(r"^\d+\s+", "", regex=True).unique()),
        "jobs": sorted(people["job"].unique()),
    }


# --- The tables the generator draws from ---------------------------------------------------------


@dataclass(frozen=True, eq=False)
class Parameters:
    """The profile table as arrays, and the lists a new customer is drawn from."""

    categories: np.ndarray  # C names
    schedule: np.ndarray  # C category indices, in the order a card's year goes through them
    share: np.ndarray  # P, share of customers per profile
    male_share: np.ndarray  # P
    urban_share: np.ndarray  # P
    age_quantiles: np.ndarray  # P x Q
    rate_quantiles: np.ndarray  # P x Q, payments per day
    boundaries: np.ndarray  # P x C: where each scheduled category ends in a card's year (0-1]
    morning: np.ndarray  # P x C: the share of a category's stretch bought in the morning half
    amount: np.ndarray  # P x C x AMOUNT_QUANTILES, legitimate amounts
    weekday_weight: np.ndarray  # 7, mean 1
    fraud_rate: float
    episode_sizes: np.ndarray
    episode_p: np.ndarray
    fraud_boundaries: np.ndarray  # P x C: as `boundaries`, through a fraud episode
    fraud_morning: np.ndarray  # C
    fraud_hour: np.ndarray  # 2 x 12: P(hour | half of the day)
    fraud_amount: np.ndarray  # C x AMOUNT_QUANTILES
    merchants: np.ndarray  # C x M padded merchant names
    merchant_count: np.ndarray  # C
    cities: pd.DataFrame  # city, state, zip, lat, long, city_pop
    first_names: dict[str, np.ndarray]  # gender -> first names
    last_names: np.ndarray
    streets: np.ndarray  # street names without their number
    jobs: np.ndarray


def _padded(groups: list[np.ndarray]) -> np.ndarray:
    table = np.full((len(groups), max(map(len, groups))), "", dtype=object)
    for row, values in enumerate(groups):
        table[row, : len(values)] = values
    return table


@lru_cache(maxsize=1)
def parameters(profiles_file: Path = PROFILES) -> Parameters:
    """The committed profile table, as arrays."""
    table = json.loads(profiles_file.read_text())
    profiles = table["profiles"]
    morning = np.array([p["morning_share"] for p in profiles])
    weight = np.array([p["category_weight"] for p in profiles])
    fraud_hour = np.array(table["fraud_hour"], dtype=float).reshape(2, 12)
    sizes = {int(k): v for k, v in table["episode_size"].items()}
    columns = ["city", "state", "zip", "lat", "long", "city_pop"]
    return Parameters(
        categories=np.array(table["categories"]),
        schedule=np.array(table["schedule"]),
        share=np.array([p["cards"] for p in profiles]) / sum(p["cards"] for p in profiles),
        male_share=np.array([p["male_share"] for p in profiles]),
        urban_share=np.array([p["urban_share"] for p in profiles]),
        age_quantiles=np.array([p["age_quantiles"] for p in profiles]),
        rate_quantiles=np.array([p["rate_quantiles"] for p in profiles]),
        boundaries=np.cumsum(weight[:, table["schedule"]], axis=1),
        morning=morning,
        amount=np.array([p["amount"] for p in profiles]),
        weekday_weight=np.array(table["weekday_weight"]),
        fraud_rate=float(table["fraud_rate"]),
        episode_sizes=np.array(sorted(sizes)),
        episode_p=np.array([sizes[k] for k in sorted(sizes)]) / sum(sizes.values()),
        fraud_boundaries=np.cumsum(
            np.array([p["fraud_category_weight"] for p in profiles])[:, table["schedule"]], axis=1
        ),
        fraud_morning=np.array(table["fraud_morning_share"]),
        fraud_hour=fraud_hour / fraud_hour.sum(axis=1, keepdims=True),
        fraud_amount=np.array(table["fraud_amount"]),
        merchants=_padded([np.array(m, dtype=object) for m in table["merchants"]]),
        merchant_count=np.array([len(m) for m in table["merchants"]]),
        cities=pd.DataFrame(table["cities"], columns=columns).astype({"zip": str}),
        first_names={g: np.array(names) for g, names in table["first_names"].items()},
        last_names=np.array(table["last_names"]),
        streets=np.array(table["streets"]),
        jobs=np.array(table["jobs"]),
    )


# --- The customers -------------------------------------------------------------------------------


@dataclass(frozen=True, eq=False)
class Population:
    """The customers, as numbers: the identity strings of a card are built only when it pays
    (`identities`), so a population sized for 20,000 payments a minute (millions of cards)
    takes about 100 bytes a card, not the ~700 of its strings."""

    card_numbers: np.ndarray  # int64, 16 digits
    profile: np.ndarray  # card -> profile
    rate: np.ndarray  # card -> payments per day
    phase: np.ndarray  # card -> where in its year the card stood on day 0 (days)
    city: np.ndarray  # card -> row of the parameters' cities
    male: np.ndarray
    first: np.ndarray  # card -> first name, in the male or female list
    last: np.ndarray
    street_number: np.ndarray
    street: np.ndarray
    job: np.ndarray
    age: np.ndarray  # years, at BORN_BEFORE

    def identities(self, params: Parameters, cards: np.ndarray) -> pd.DataFrame:
        """One row per entry of `cards`: city, first, last, gender, street, job, dob, cc_num."""
        male = self.male[cards]
        first = self.first[cards]
        dob = BORN_BEFORE - pd.to_timedelta(np.round(self.age[cards] * 365.25), unit="D")
        streets = params.streets[self.street[cards]]
        return (
            params.cities.iloc[self.city[cards]]
            .reset_index(drop=True)
            .assign(
                first=np.where(
                    male,
                    params.first_names["M"][np.where(male, first, 0)],
                    params.first_names["F"][np.where(male, 0, first)],
                ),
                last=params.last_names[self.last[cards]],
                gender=np.where(male, "M", "F"),
                street=np.char.add(
                    np.char.add(self.street_number[cards].astype(str), " "), streets
                ),
                job=params.jobs[self.job[cards]],
                dob=dob.strftime("%Y-%m-%d"),
                cc_num=self.card_numbers[cards].astype(str),
            )
        )


def _interpolate(quantiles: np.ndarray, u: np.ndarray) -> np.ndarray:
    """Draws from per-row quantile tables (one row per draw), linear between quantiles."""
    position = u * (quantiles.shape[1] - 1)
    low = np.minimum(position.astype(int), quantiles.shape[1] - 2)
    rows = np.arange(len(u))
    frac = position - low
    return quantiles[rows, low] * (1 - frac) + quantiles[rows, low + 1] * frac


@lru_cache(maxsize=8)
def population(seed: int, n_cards: int) -> Population:
    """`n_cards` new customers: each a profile, its own rate, and its own identity."""
    params = parameters()
    rng = np.random.default_rng([seed, 1])
    numbers = 4 * 10**15 + rng.integers(10**14, 10**15, size=n_cards)
    profile = rng.choice(len(params.share), size=n_cards, p=params.share)
    rate = _interpolate(params.rate_quantiles[profile], rng.random(n_cards))
    male = rng.random(n_cards) < params.male_share[profile]
    age = _interpolate(params.age_quantiles[profile], rng.random(n_cards))
    urban = rng.random(n_cards) < params.urban_share[profile]
    city_urban = np.flatnonzero(params.cities["city_pop"].to_numpy() >= URBAN_POP)
    city_rural = np.flatnonzero(params.cities["city_pop"].to_numpy() < URBAN_POP)
    city = np.where(
        urban | (len(city_rural) == 0),
        city_urban[rng.integers(0, len(city_urban), n_cards)],
        city_rural[rng.integers(0, max(len(city_rural), 1), n_cards) % max(len(city_rural), 1)],
    )
    first_male = rng.integers(0, len(params.first_names["M"]), n_cards)
    first = np.where(male, first_male, rng.integers(0, len(params.first_names["F"]), n_cards))
    street = rng.integers(0, len(params.streets), n_cards)
    last = rng.integers(0, len(params.last_names), n_cards)
    street_number = rng.integers(1, 99999, n_cards)
    job = rng.integers(0, len(params.jobs), n_cards)
    phase = rng.integers(0, YEAR_DAYS, n_cards)
    return Population(
        card_numbers=numbers,
        profile=profile,
        rate=rate,
        phase=phase,
        city=city,
        male=male,
        first=first,
        last=last,
        street_number=street_number,
        street=street,
        job=job,
        age=age,
    )


@dataclass(frozen=True, eq=False)
class Day:
    """What each card buys on one day, and how the day's payments spread over the cards."""

    category: np.ndarray  # card -> category index
    card_cdf: np.ndarray  # 2 x cards: cumulative P(card | half of the day)
    per_hour: np.ndarray  # 2: expected payments per hour of each half (before the weekday weight)


def _scheduled(
    boundaries: np.ndarray, morning: np.ndarray, schedule: np.ndarray, u: np.ndarray
) -> tuple[np.ndarray, np.ndarray]:
    """Category and morning flag at position u of each row's schedule (Sparkov draws the date,
    the category and the half of the day from one number, so they move together)."""
    rows = np.arange(len(u))
    step = np.minimum((boundaries <= u[:, None]).sum(axis=1), boundaries.shape[1] - 1)
    low = np.where(step > 0, boundaries[rows, np.maximum(step - 1, 0)], 0.0)
    within = (u - low) / np.maximum(boundaries[rows, step] - low, 1e-12)
    category = schedule[step]
    return category, within < morning[rows, category]


@lru_cache(maxsize=16)
def _day(seed: int, n_cards: int, day: int) -> Day:
    params, pop = parameters(), population(seed, n_cards)
    u = ((day + pop.phase) % YEAR_DAYS + 0.5) / YEAR_DAYS
    category, morning = _scheduled(
        params.boundaries[pop.profile], params.morning[pop.profile], params.schedule, u
    )
    per_card = np.stack([np.where(morning, pop.rate, 0.0), np.where(morning, 0.0, pop.rate)]) / 12
    cdf = np.cumsum(per_card, axis=1)
    per_hour = cdf[:, -1].copy()
    return Day(category, cdf / np.maximum(per_hour[:, None], 1e-12), per_hour)


# --- The payments ---------------------------------------------------------------------------------


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


def _pick(weights: np.ndarray, u: np.ndarray) -> np.ndarray:
    """Per row, the index drawn from that row's (unnormalised) weights with uniform u."""
    cdf = np.cumsum(weights, axis=-1)
    target = u * cdf[:, -1]
    return np.minimum((cdf <= target[:, None]).sum(axis=1), weights.shape[-1] - 1)


def _amounts(quantiles: np.ndarray, u: np.ndarray) -> np.ndarray:
    """Amounts drawn from per-row quantile tables, log-linear between the quantiles."""
    step = np.searchsorted(AMOUNT_QUANTILES, u, side="right") - 1
    step = np.clip(step, 0, len(AMOUNT_QUANTILES) - 2)
    low, high = AMOUNT_QUANTILES[step], AMOUNT_QUANTILES[step + 1]
    frac = (u - low) / (high - low)
    rows = np.arange(len(u))
    log = np.log(np.maximum(quantiles[rows, step], 0.01)) * (1 - frac) + frac * np.log(
        np.maximum(quantiles[rows, step + 1], 0.01)
    )
    return np.exp(log)


def _trans_num(*parts: int) -> str:
    return hashlib.md5("-".join(map(str, parts)).encode(), usedforsecurity=False).hexdigest()


Draws = dict[str, np.ndarray]


def _draws(
    rng: np.random.Generator,
    when: np.ndarray,
    cards: np.ndarray,
    category: np.ndarray,
    amounts: np.ndarray,
    ids: list[str],
    is_fraud: int,
) -> Draws:
    """Everything random about these payments, drawn from their own generator (determinism)."""
    n = len(cards)
    return {
        "when": when.astype("datetime64[s]"),
        "card": cards,
        "category": category,
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
    customers = pop.identities(params, d["card"])
    category = d["category"]
    when = pd.DatetimeIndex(d["when"])
    frame = customers.assign(
        trans_date_trans_time=when.strftime("%Y-%m-%d %H:%M:%S"),
        merchant=params.merchants[
            category, (d["merchant_u"] * params.merchant_count[category]).astype(int)
        ],
        category=params.categories[category],
        amt=d["amt"],
        trans_num=d["trans_num"],
        unix_time=when.astype("int64") // 10**9 if when.unit == "ns" else when.astype("int64"),
        merch_lat=np.round(customers["lat"].to_numpy() + d["dlat"], 6),
        merch_long=np.round(customers["long"].to_numpy() + d["dlong"], 6),
        is_fraud=d["is_fraud"],
    )
    order = np.lexsort((frame["trans_num"].to_numpy().astype(str), d["when"]))
    return frame.iloc[order].loc[:, list(SPARKOV_COLUMNS)].reset_index(drop=True)


def _legit_minute(params: Parameters, pop: Population, seed: int, minute: pd.Timestamp) -> Draws:
    """A minute's payments: the cards buying in this half of the day, in their category of the
    day, with their profile's amounts."""
    key = int(minute.timestamp() // 60)
    rng = np.random.default_rng([seed, 2, key])
    half = int(minute.hour >= 12)
    day = _day(seed, len(pop.profile), key // 1440)
    n = int(rng.poisson(day.per_hour[half] / 60 * params.weekday_weight[minute.day_of_week]))
    cards = np.minimum(np.searchsorted(day.card_cdf[half], rng.random(n)), len(pop.profile) - 1)
    category = day.category[cards]
    amounts = _amounts(params.amount[pop.profile[cards], category], rng.random(n))
    seconds = np.sort(rng.integers(0, 60, size=n))
    when = np.datetime64(minute.to_datetime64(), "s") + seconds.astype("timedelta64[s]")
    ids = [_trans_num(seed, key, i) for i in range(n)]
    return _draws(rng, when, cards, category, amounts, ids, 0)


@lru_cache(maxsize=16)
def _fraud_day(
    seed: int, n_cards: int, day: pd.Timestamp, payments_per_day: float
) -> tuple[Draws, ...]:
    """The fraud episodes that start on `day`: they cover that day and the next. Cached: every
    window of those two days (a back-fill asks for them an hour at a time) cuts the same ones."""
    params, pop = parameters(), population(seed, n_cards)
    key = int(day.timestamp() // 86_400)
    rng = np.random.default_rng([seed, 3, key])
    mean_size = float(params.episode_sizes @ params.episode_p)
    expected = payments_per_day * params.weekday_weight[day.day_of_week] * params.fraud_rate
    episodes = []
    for episode in range(int(rng.poisson(expected / mean_size))):
        card = int(rng.integers(0, len(pop.profile)))
        k = int(rng.choice(params.episode_sizes, p=params.episode_p))
        u = np.sort(rng.random(k))  # through the two days, as through a card's year
        category, morning = _scheduled(
            np.tile(params.fraud_boundaries[pop.profile[card]], (k, 1)),
            np.tile(params.fraud_morning, (k, 1)),
            params.schedule,
            u,
        )
        afternoon = (~morning).astype(int)
        hours = _pick(params.fraud_hour[afternoon], rng.random(k)) + 12 * afternoon
        offsets = (u >= 0.5) * 86_400 + hours * 3_600 + rng.integers(0, 3_600, k)
        when = np.datetime64(day.to_datetime64(), "s") + offsets.astype("timedelta64[s]")
        amounts = _amounts(params.fraud_amount[category], rng.random(k))
        ids = [_trans_num(seed, key, 1_000_000 + episode, j) for j in range(k)]
        episodes.append(_draws(rng, when, np.full(k, card), category, amounts, ids, 1))
    return tuple(episodes)


def _card_days(part: Draws) -> np.ndarray:
    """One integer per payment for its (card, calendar day)."""
    return part["card"].astype(np.int64) * 1_000_000 + part["when"].astype("datetime64[D]").astype(
        np.int64
    )


def _keep(part: Draws, lo: np.datetime64, hi: np.datetime64, blocked: np.ndarray) -> Draws:
    """The payments inside [lo, hi), without a card's own payments on its fraud days."""
    keep = (part["when"] >= lo) & (part["when"] < hi)
    if not part["is_fraud"].any():
        keep &= ~np.isin(_card_days(part), blocked)
    return {key: values[keep] for key, values in part.items()}


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
    mean_rate = float(params.share @ np.trapezoid(params.rate_quantiles, QUANTILES, axis=1))
    pop = population(seed, max(50, int(rate_per_min * 1440 / mean_rate)))
    # Work in naive local wall-clock time, as Sparkov does.
    lo, hi = start_ts.tz_localize(None), end_ts.tz_localize(None)
    minutes = pd.date_range(lo.floor("min"), hi.ceil("min"), freq="min", inclusive="left")
    frauds: list[Draws] = []
    for day in pd.date_range(lo.normalize() - pd.Timedelta(days=1), hi.normalize(), freq="D"):
        frauds += _fraud_day(seed, len(pop.profile), day, rate_per_min * 1440)
    blocked = np.concatenate([_card_days(p) for p in frauds] + [np.zeros(0, np.int64)])
    parts = [_legit_minute(params, pop, seed, minute) for minute in minutes] + frauds
    inside = [
        kept
        for kept in (
            _keep(p, np.datetime64(lo, "s"), np.datetime64(hi, "s"), blocked) for p in parts
        )
        if len(kept["card"])
    ]
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
    """`fraud-dev generate`: write `days` of payments (or the last `rows`) before `end`.

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


if __name__ == "__main__":  # re-learn the committed profile table from the training year
    PROFILES.write_text(json.dumps(derive_profiles(), indent=1) + "\n")
    print(f"wrote {PROFILES}")
