"""How the pipeline's facts read to a person: numbers, merchants and why a payment was flagged.

One definition for every place an analyst reads them (the morning report, the alert emails, the
catch-up digest, the morning summary), so a number or a reason never reads two ways.

Reasons are the facts `model.reasons.top_reasons` stores per flagged payment: a feature, its
value, its SHAP contribution and `baseline`, the card's own history the sentence compares with
("$2,168.00 spent in the 24 h before, 9× this card's daily average"). Rows scored before the
baseline was stored get the same sentence without the comparison.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterable, Mapping
from datetime import date
from typing import Any, Final
from urllib.parse import urlencode

from fraud_pipeline.model.features import WINDOWS

_DAYS: Final = ("Monday", "Tuesday", "Wednesday", "Thursday", "Friday", "Saturday", "Sunday")
_WINDOW_WORDS: Final = {"1h": "hour", "24h": "24 h", "7d": "7 days", "30d": "30 days"}


# -- numbers -------------------------------------------------------------------------------------
def format_count(value: float) -> str:
    """2793 -> '2,793'."""
    return f"{round(value):,}"


def format_money(value: float) -> str:
    """1024.906 -> '$1,024.91'."""
    return f"-${abs(value):,.2f}" if value < 0 else f"${value:,.2f}"


def format_signed_money(value: float) -> str:
    return f"{'+' if value >= 0 else '−'}${abs(value):,.2f}"


NO_FIGURE: Final = "—"  # a figure that cannot be computed (nothing to divide, no value)


def format_percent(value: float | None, digits: int = 1) -> str:
    """0.9731 -> '97.3%'; None or NaN (nothing to divide, a NULL read by pandas) -> '—'."""
    return NO_FIGURE if value is None or math.isnan(value) else f"{value * 100:.{digits}f}%"


def format_times(count: float) -> str:
    """How often: 'never', 'once', 'twice', '5 times'."""
    n = round(count)
    return {0: "never", 1: "once", 2: "twice"}.get(n, f"{n:,} times")


def _times_average(ratio: float, average: str) -> str:
    """'9.0× this card's daily average', 'below ...', 'about ...': how far from usual."""
    if ratio < 0.9:
        return f"below {average}"
    if ratio < _ABOVE_USUAL:
        return f"about {average}"
    return f"{ratio:,.0f}× {average}" if ratio >= 10 else f"{ratio:,.1f}× {average}"


# -- merchants -----------------------------------------------------------------------------------
def merchant_name(merchant: str) -> str:
    """Sparkov prefixes every merchant with 'fraud_': noise that would mislead a reader."""
    return merchant.removeprefix("fraud_")


# -- reasons -------------------------------------------------------------------------------------
Facts = Mapping[str, float]


_NO_HISTORY: Final = "no earlier payment by this card in 30 days"
_FACTS: Final = "; "  # the separator of facts inside one sentence
_ABOVE_USUAL: Final = 1.1  # below this ratio a figure reads "about" or "below" the average


def _spent(window: str) -> Callable[[float, Facts], str]:
    def sentence(value: float, facts: Facts) -> str:
        text = f"{format_money(value)} spent in the {_WINDOW_WORDS[window]} before"
        total = facts.get("card_sum_30d")
        if total is None or window == "30d":
            return text
        if total <= value:
            return f"{text}, nothing earlier in 30 days"
        days = max(WINDOWS[window] / WINDOWS["24h"], 1)  # an hour compares with a day
        usual = "this card's weekly average" if window == "7d" else "this card's daily average"
        return f"{text}, {_times_average(value / (total / 30 * days), usual)}"

    return sentence


def _payments(window: str) -> Callable[[float, Facts], str]:
    def sentence(value: float, facts: Facts) -> str:
        n = round(value)
        text = (
            f"{format_count(n)} payment{'s' if n != 1 else ''}" if n else "no payment"
        ) + f" in the {_WINDOW_WORDS[window]} before"
        total = facts.get("card_count_30d")
        if total is None or window == "30d":
            return text
        return f"{text} ({format_count(total)} in 30 days)"

    return sentence


def _amount(window: str) -> Callable[[float, Facts], str]:
    """The payment's amount against the card's average over `window` (7d or 30d)."""

    def sentence(value: float, facts: Facts) -> str:
        amount = facts.get("amt")
        ratio, count = facts.get(f"amt_vs_card_mean_{window}"), facts.get(f"card_count_{window}")
        over = "" if window == "30d" else f" over {_WINDOW_WORDS[window]}"
        if amount is None:  # a row scored before the baseline was stored: the ratio alone
            average = "this card's average" + over
            return f"amount {_times_average(ratio or 1.0, average)}"
        text = f"{format_money(amount)} payment"
        if count == 0:
            return f"{text}; no earlier payment by this card in {_WINDOW_WORDS[window]}"
        if ratio is None or ratio <= 0:
            return text
        average = f"this card's average{over} ({format_money(amount / ratio)})"
        return f"{text}, {_times_average(ratio, average)}"

    return sentence


def _category_amount(value: float, facts: Facts) -> str:
    if facts.get("card_category_share_30d", 1) <= 0:
        return "first payment in this category in 30 days"
    text = _times_average(value, "this card's average in this category")
    return f"{format_money(facts['amt'])} payment, {text}" if "amt" in facts else text


def _night_history(share: float | None, count: float | None) -> str | None:
    if count == 0 or (share is not None and share < 0):
        return _NO_HISTORY
    if share is None or count is None:
        return None
    nights = round(share * count)
    if nights == 0:
        return "this card has not paid at night in 30 days"
    return f"this card has paid at night {format_times(nights)} in 30 days"


def _night(value: float, facts: Facts) -> str:
    text = "night payment" if value >= 0.5 else "daytime payment"
    history = _night_history(facts.get("card_night_share_30d"), facts.get("card_count_30d"))
    return f"{text}; {history}" if history else text


def _hour(value: float, facts: Facts) -> str:
    text = f"made at {round(value):02d}:00–{round(value):02d}:59 local time"
    if facts.get("is_night", 0.0) < 0.5:
        return text
    history = _night_history(facts.get("card_night_share_30d"), facts.get("card_count_30d"))
    return f"{text}; {history}" if history else text


def _night_share(value: float, facts: Facts) -> str:
    history = _night_history(value, facts.get("card_count_30d"))
    return history or f"{format_percent(value, 0)} of this card's payments in 30 days were at night"


def _new_category(value: float, facts: Facts) -> str:
    if value < 0.5:
        return "a category this card used in the 7 days before"
    if facts.get("card_count_30d") == 0:
        return _NO_HISTORY
    if facts.get("card_category_share_30d", 1) == 0:
        return "first payment in this category in 30 days"
    return "first payment in this category in 7 days"


def _category_share(value: float, facts: Facts) -> str:
    if value < 0:
        return _NO_HISTORY
    if value == 0:
        return "first payment in this category in 30 days"
    count = facts.get("card_count_30d")
    if count is None:
        return f"{format_percent(value, 0)} of this card's payments in 30 days are in this category"
    return (
        f"{format_count(value * count)} of this card's {format_count(count)} payments in 30 days "
        "were in this category"
    )


def _since_previous(value: float, facts: Facts) -> str:
    if value >= WINDOWS["7d"]:
        return "first payment by this card in 7 days"
    if value < 120:
        return f"{value:,.0f} s after this card's previous payment"
    if value < 2 * 3600:
        return f"{value / 60:,.0f} min after this card's previous payment"
    return f"{value / 3600:,.0f} h after this card's previous payment"


def _episode(window: str, some: str, none: str) -> Callable[[float, Facts], str]:
    """A sum or a largest amount of the card's payments in the `window` before: `some` with the
    amount ({money}) and the window ({window}), or `none` when it is 0 (nothing there)."""

    def sentence(value: float, facts: Facts) -> str:
        text = some if value > 0 else none
        return text.format(money=format_money(value), window=_WINDOW_WORDS[window])

    return sentence


def _previous_amount(value: float, facts: Facts) -> str:
    if value <= 0:
        return "first payment by this card in 7 days"
    return f"this card's previous payment was {format_money(value)}"


_SENTENCES: Final[dict[str, Callable[[float, Facts], str]]] = {
    "amt": _amount("30d"),
    "log_amt": _amount("30d"),
    "hour": _hour,
    "is_night": _night,
    "weekday": lambda value, facts: f"made on a {_DAYS[round(value) % 7]}",
    "age": lambda value, facts: f"cardholder aged {value:.0f}",
    "distance_km": lambda value, facts: (
        f"merchant {format_count(value)} km from the cardholder's home"
    ),
    "log_city_pop": lambda value, facts: (
        f"cardholder's town of {format_count(math.expm1(value))} people"
    ),
    **{f"card_sum_{window}": _spent(window) for window in WINDOWS},
    **{f"card_count_{window}": _payments(window) for window in WINDOWS},
    "card_night_count_24h": lambda value, facts: (
        f"{format_count(value)} night payment{'s' if round(value) != 1 else ''} in the 24 h before"
    ),
    "card_night_share_30d": _night_share,
    "secs_since_prev": _since_previous,
    "amt_vs_card_mean_7d": _amount("7d"),
    "amt_vs_card_mean_30d": _amount("30d"),
    "new_category_7d": _new_category,
    "card_category_count_24h": lambda value, facts: (
        f"{format_count(value)} payment{'s' if round(value) != 1 else ''} "
        "in this category in the 24 h before"
    ),
    "card_category_share_30d": _category_share,
    "amt_vs_card_category_mean_30d": _category_amount,
    "prev_amt": _previous_amount,
    "prev_is_night": lambda value, facts: (
        "this card's previous payment was at night"
        if value >= 0.5
        else "this card's previous payment was by day"
    ),
    **{
        f"card_max_amt_{window}": _episode(
            window,
            "largest payment by this card in the {window} before: {money}",
            "first payment by this card in {window}",
        )
        for window in ("24h", "7d")
    },
    **{
        f"card_night_sum_{window}": _episode(
            window,
            "{money} spent at night in the {window} before",
            "no night payment by this card in the {window} before",
        )
        for window in ("24h", "7d")
    },
}


def describe_reason(reason: Mapping[str, Any]) -> str:
    """One reason as a short sentence, with the card's own baseline when it was stored."""
    feature = str(reason.get("feature", "?"))
    value = float(reason.get("value", math.nan))
    facts: dict[str, float] = {feature: value, **(reason.get("baseline") or {})}
    if feature == "log_amt":  # the amount, in dollars (older rows have no baseline)
        facts.setdefault("amt", math.expm1(value))
    sentence = _SENTENCES.get(feature)
    if sentence is not None:
        return sentence(value, facts)
    for prefix, what in (("category_", "category"), ("gender_", "cardholder gender")):
        if feature.startswith(prefix):  # one-hot columns name the value they encode
            name = feature.removeprefix(prefix).replace("_", " ")
            return f"{what} {name}" if value >= 0.5 else f"not {what} {name}"
    return f"{feature.replace('_', ' ')} {value:,.4g}"  # a feature newer than this list


def raises_risk(reason: Mapping[str, Any]) -> bool:
    """Whether a reason says something that makes the payment riskier, as a person reads it.

    A feature can push XGBoost's score up while its fact reads as ordinary ("about this card's
    average", "daytime payment", "not category travel"): such a fact explains nothing, and a
    contribution at or below 0 lowered the score. Neither is listed under *why*.
    """
    contribution = reason.get("contribution")
    if contribution is not None and float(contribution) <= 0:
        return False
    feature = str(reason.get("feature", "?"))
    value = float(reason.get("value", math.nan))
    facts: Mapping[str, float] = reason.get("baseline") or {}
    if feature in ("amt", "log_amt", "amt_vs_card_mean_7d", "amt_vs_card_mean_30d"):
        window = "7d" if feature.endswith("7d") else "30d"
        ratio = value if feature.startswith("amt_vs") else facts.get(f"amt_vs_card_mean_{window}")
        if facts.get(f"card_count_{window}") == 0:
            return True  # no history: a first payment is the news
        return ratio is None or ratio <= 0 or ratio >= _ABOVE_USUAL
    if feature == "amt_vs_card_category_mean_30d":
        return facts.get("card_category_share_30d", 1) <= 0 or value >= _ABOVE_USUAL
    if feature.startswith("card_sum_") and feature != "card_sum_30d":
        total = facts.get("card_sum_30d")
        if total is None or total <= value:
            return True
        days = max(WINDOWS[feature.removeprefix("card_sum_")] / WINDOWS["24h"], 1)
        return value / (total / 30 * days) >= _ABOVE_USUAL
    if feature in ("is_night", "new_category_7d", "prev_is_night"):
        return value >= 0.5
    if feature.startswith(("category_", "gender_")):
        return value >= 0.5
    return True


def describe_reasons(reasons: Iterable[Mapping[str, Any]] | None) -> list[str]:
    """The reasons that raise a payment's risk, strongest first, each fact said once.

    Reasons are ordered by contribution; those that do not raise the risk (`raises_risk`) are
    left out. A sentence is made of facts joined by "; ": a fact an earlier sentence already
    said is dropped ("made at 22:00–22:59; this card has paid at night once in 30 days" then
    "this card has paid at night once in 30 days" reads once), and so is a sentence left empty.
    Mail, report and queue all read reasons through this function.
    """
    ranked = sorted(
        (reason for reason in reasons or [] if raises_risk(reason)),
        key=lambda reason: -float(reason.get("contribution") or 0.0),
    )
    said: set[str] = set()
    sentences: list[str] = []
    for reason in ranked:
        facts = [fact for fact in describe_reason(reason).split(_FACTS) if fact not in said]
        said.update(facts)
        if facts:
            sentences.append(_FACTS.join(facts))
    return sentences


# -- what flagged a payment ----------------------------------------------------------------------
def flagged_by(
    is_fraud_pred: bool, hits: list[dict[str, Any]], card_last4: str | None = None
) -> list[str]:
    """What alerted a payment, in words: the model, the enabled rules (none on an allow-listed
    payment), the block lists (`rule_hits` as `rules.engine.check` stores them)."""
    out = ["model"] if is_fraud_pred else []
    allowed = [h for h in hits if h.get("kind") == "allow"]
    if not allowed:
        out += [
            f"rule “{h['name']}” (v{h['version']})"
            for h in hits
            if h.get("kind") == "rule" and h.get("mode") == "enabled"
        ]
    for h in hits:
        if h.get("kind") == "block":
            value = h.get("value") or (f"card ending {card_last4}" if card_last4 else "card")
            out.append(f"block list: {h['field'].replace('_token', '')} {value}")
    return out


# -- links ---------------------------------------------------------------------------------------
REPORT_DAY_PARAM: Final = "day"
CASE_PARAM: Final = "case"
REVIEW_PATH: Final = "review"  # the To review page's url_path


def report_link(report_url: str, day: date | None = None) -> str:
    """The morning report, opened on `day` when given (`?day=2026-03-27`)."""
    if day is None:
        return report_url
    return f"{report_url.rstrip('/')}/?{REPORT_DAY_PARAM}={day.isoformat()}"


def queue_link(report_url: str) -> str:
    """The To review page (its queue)."""
    return f"{report_url.rstrip('/')}/{REVIEW_PATH}"


def case_link(report_url: str, trans_num: str) -> str:
    """The To review page opened on the case of one alert (`/review?case=...`); a person who
    is not signed in signs in first and lands on it."""
    return f"{queue_link(report_url)}?{urlencode({CASE_PARAM: trans_num})}"
