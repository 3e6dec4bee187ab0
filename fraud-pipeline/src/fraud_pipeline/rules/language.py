"""The rules' expression language: a small grammar, parsed here, evaluated column-wise. No `eval`.

    rule     := or
    or       := and ("or" and)*
    and      := not ("and" not)*
    not      := "not" not | compare
    compare  := sum [("<" | "<=" | ">" | ">=" | "==" | "!=") sum | ["not"] "in" "[" literal, ... "]"]
    sum      := product (("+" | "-") product)*
    product  := unary (("*" | "/") unary)*
    unary    := "-" unary | NUMBER | STRING | "true" | "false" | FIELD | "(" or ")"

e.g. `amt > 800 and category == "shopping_net" and card_count_30d < 3`. FIELD is one of FIELDS:
the payment's own fields and the model's named features (`model.features`), each with its type
(number, text or boolean), checked when the rule is written: an unknown field, `amt == "x"`, or a
rule that is not a condition is refused with the position and the reason. A compiled rule is a
tree of small functions over the payment's columns (numpy arrays), so 50 rules on a chunk of
thousands of payments are a few hundred vector operations.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from functools import lru_cache
from typing import Any, Final, Literal

import numpy as np

from fraud_pipeline.model.features import NUMERIC

Type = Literal["number", "text", "boolean"]
NUMBER: Final[Type] = "number"
TEXT: Final[Type] = "text"

# The payment's fields a rule may read (text and numbers) and the model's numeric features.
PAYMENT_FIELDS: Final[dict[str, Type]] = {
    "amt": NUMBER,
    "merchant": TEXT,
    "category": TEXT,
    "gender": TEXT,
    "state": TEXT,
    "city": TEXT,
    "zip": TEXT,
    "job": TEXT,
    "city_pop": NUMBER,
    "lat": NUMBER,
    "long": NUMBER,
    "merch_lat": NUMBER,
    "merch_long": NUMBER,
    "card_token": TEXT,
    "card_last4": TEXT,
}
FIELDS: Final[dict[str, Type]] = {
    **PAYMENT_FIELDS,
    **{name: "number" for name in NUMERIC if name not in PAYMENT_FIELDS},
}
MAX_LENGTH: Final = 2000  # characters of a rule

Columns = Mapping[str, np.ndarray]
Evaluate = Callable[[Columns], Any]


class RuleError(ValueError):
    """A rule that cannot be compiled: where and why, in the lead's words."""


@dataclass(frozen=True)
class Compiled:
    text: str
    fields: frozenset[str]
    evaluate: Callable[[Columns], np.ndarray]  # one boolean per payment


_TOKEN = re.compile(
    r"\s*(?:(?P<number>\d+(?:\.\d+)?)|(?P<string>\"[^\"\\]*\"|'[^'\\]*')"
    r"|(?P<name>[A-Za-z_][A-Za-z0-9_]*)|(?P<op><=|>=|==|!=|[<>()\[\],+\-*/]))"
)
_KEYWORDS: Final = frozenset({"and", "or", "not", "in", "true", "false"})
_COMPARE: Final[dict[str, Callable[[Any, Any], Any]]] = {
    "<": np.less,
    "<=": np.less_equal,
    ">": np.greater,
    ">=": np.greater_equal,
    "==": np.equal,
    "!=": np.not_equal,
}


@dataclass(frozen=True)
class _Token:
    kind: str  # number, string, name, keyword, op, end
    text: str
    at: int


def _tokens(text: str) -> list[_Token]:
    out, at = [], 0
    while at < len(text):
        if text[at:].strip() == "":
            break
        match = _TOKEN.match(text, at)
        if match is None or match.end() == at:
            start = at + len(text[at:]) - len(text[at:].lstrip())
            raise RuleError(f"unexpected character {text[start]!r} at position {start + 1}")
        group = match.lastgroup or "op"
        value = match.group(group)
        kind = "keyword" if group == "name" and value in _KEYWORDS else group
        out.append(_Token(kind, value, match.start(group) + 1))
        at = match.end()
    out.append(_Token("end", "", len(text) + 1))
    return out


_Node = tuple[Type, Evaluate]


class _Parser:
    def __init__(self, text: str) -> None:
        self.tokens = _tokens(text)
        self.i = 0
        self.fields: set[str] = set()

    @property
    def token(self) -> _Token:
        return self.tokens[self.i]

    def take(self, text: str) -> bool:
        if self.token.text == text and self.token.kind in ("op", "keyword"):
            self.i += 1
            return True
        return False

    def expect(self, text: str) -> None:
        if not self.take(text):
            raise RuleError(f"expected {text!r} at position {self.token.at}, found {self._seen()}")

    def _seen(self) -> str:
        return "the end" if self.token.kind == "end" else repr(self.token.text)

    def parse(self) -> _Node:
        node = self.disjunction()
        if self.token.kind != "end":
            raise RuleError(f"unexpected {self._seen()} at position {self.token.at}")
        return node

    def _logical(self, word: str, operand: Callable[[], _Node], combine: Any) -> _Node:
        at = self.token.at
        kind, first = operand()
        parts = [first]
        while self.take(word):
            right_at = self.token.at
            right_kind, right = operand()
            _need("boolean", right_kind, word, right_at)
            parts.append(right)
        if len(parts) == 1:
            return kind, first
        _need("boolean", kind, word, at)
        return "boolean", lambda c: combine.reduce([p(c) for p in parts])

    def disjunction(self) -> _Node:
        return self._logical("or", self.conjunction, np.logical_or)

    def conjunction(self) -> _Node:
        return self._logical("and", self.negation, np.logical_and)

    def negation(self) -> _Node:
        at = self.token.at
        if self.take("not"):
            kind, inner = self.negation()
            _need("boolean", kind, "not", at)
            return "boolean", lambda c: np.logical_not(inner(c))
        return self.comparison()

    def comparison(self) -> _Node:
        at = self.token.at
        kind, left = self.sum()
        op = self.token.text if self.token.kind == "op" else ""
        if op in _COMPARE:
            self.i += 1
            right_kind, right = self.sum()
            if kind != right_kind:
                raise RuleError(f"{op!r} at position {at} compares a {kind} with a {right_kind}")
            if op not in ("==", "!=") and kind != "number":
                raise RuleError(f"{op!r} at position {at} needs numbers, not {kind}s")
            compare = _COMPARE[op]
            return "boolean", lambda c: compare(left(c), right(c))
        negated = self.token.text == "not" and self.tokens[self.i + 1].text == "in"
        if negated:
            self.i += 1
        if self.take("in"):
            values = self.literals(kind, at)
            if negated:
                return "boolean", lambda c: ~np.isin(left(c), values)
            return "boolean", lambda c: np.isin(left(c), values)
        return kind, left

    def literals(self, kind: Type, at: int) -> np.ndarray:
        self.expect("[")
        values: list[Any] = []
        while True:
            value_kind, value = self.literal()
            if value_kind != kind:
                raise RuleError(f"'in' at position {at}: a {value_kind} in a list of {kind}s")
            values.append(value)
            if not self.take(","):
                break
        self.expect("]")
        return np.array(values, dtype=object if kind == "text" else float)

    def literal(self) -> tuple[Type, Any]:
        token = self.token
        negative = token.text == "-" and self.tokens[self.i + 1].kind == "number"
        if negative:
            self.i += 1
            token = self.token
        self.i += 1
        if token.kind == "number":
            return "number", -float(token.text) if negative else float(token.text)
        if token.kind == "string":
            return "text", token.text[1:-1]
        if token.text in ("true", "false"):
            return "boolean", token.text == "true"
        raise RuleError(f'expected a number, a "text" or true/false at position {token.at}')

    def _arithmetic(self, ops: dict[str, Any], operand: Callable[[], _Node]) -> _Node:
        at = self.token.at
        kind, node = operand()
        while self.token.kind == "op" and self.token.text in ops:
            op = ops[self.token.text]
            symbol = self.token.text
            self.i += 1
            right_kind, right = operand()
            if kind != "number" or right_kind != "number":
                raise RuleError(f"{symbol!r} at position {at} needs numbers")
            node = _binary(op, node, right)
        return kind, node

    def sum(self) -> _Node:
        return self._arithmetic({"+": np.add, "-": np.subtract}, self.product)

    def product(self) -> _Node:
        return self._arithmetic({"*": np.multiply, "/": _divide}, self.unary)

    def unary(self) -> _Node:
        token = self.token
        if token.text == "-" and token.kind == "op":
            self.i += 1
            kind, inner = self.unary()
            if kind != "number":
                raise RuleError(f"'-' at position {token.at} needs a number")
            return "number", lambda c: np.negative(inner(c))
        if self.take("("):
            node = self.disjunction()
            self.expect(")")
            return node
        if token.kind == "name":
            self.i += 1
            if token.text not in FIELDS:
                raise RuleError(f"unknown field {token.text!r} at position {token.at}")
            self.fields.add(token.text)
            name = token.text
            return FIELDS[name], lambda c: c[name]
        if token.kind == "end":
            raise RuleError("the rule ends too early")
        kind, value = self.literal()
        return kind, lambda c: value


def _binary(op: Any, left: Evaluate, right: Evaluate) -> Evaluate:
    return lambda c: op(left(c), right(c))


def _divide(left: Any, right: Any) -> Any:
    with np.errstate(divide="ignore", invalid="ignore"):
        return np.divide(left, right)


def _need(expected: Type, found: Type, word: str, at: int) -> None:
    if found != expected:
        raise RuleError(f"{word!r} at position {at} needs conditions, not a {found}")


@lru_cache(maxsize=1024)
def compile_rule(text: str) -> Compiled:
    """Parse and type-check a rule (RuleError says where and why); cached by its text."""
    if not text.strip():
        raise RuleError("the rule is empty")
    if len(text) > MAX_LENGTH:
        raise RuleError(f"the rule is longer than {MAX_LENGTH} characters")
    parser = _Parser(text)
    kind, node = parser.parse()
    if kind != "boolean":
        raise RuleError(f"the rule is a {kind}, not a condition (e.g. amt > 800)")

    def evaluate(columns: Columns) -> np.ndarray:
        rows = len(next(iter(columns.values()))) if columns else 0
        with np.errstate(invalid="ignore"):
            out = np.asarray(node(columns), dtype=bool)
        return np.broadcast_to(out, (rows,)) if out.ndim == 0 else out

    return Compiled(text, frozenset(parser.fields), evaluate)
