"""A small SQL-like predicate language for ``wj scan --where``, compiled to pyarrow.

Grammar: ``or_expr := and_expr (OR and_expr)*``, ``and_expr := not_expr (AND not_expr)*``,
``not_expr := NOT not_expr | atom``, atoms are parenthesised expressions, comparisons
(``= == != <> < <= > >=``), ``x [NOT] IN (v, ...)``, ``x IS [NOT] NULL``, ``x [NOT] BETWEEN
a AND b``. Literals: numbers, 'strings' ('' escapes a quote), TRUE/FALSE/NULL,
DATE 'yyyy-mm-dd', TIMESTAMP 'yyyy-mm-dd hh:mm:ss'. Names may be dotted (struct fields) or
"double-quoted".
"""

from __future__ import annotations

import datetime as dt
import re

import pyarrow.compute as pc

from wjio.errors import InvalidPredicateError

_TOKEN = re.compile(
    r"""\s*(?:
        (?P<num>-?\d+\.\d*(?:[eE][-+]?\d+)?|-?\d+(?:[eE][-+]?\d+)?)
      | (?P<str>'(?:[^']|'')*')
      | (?P<qname>"(?:[^"]|"")+")
      | (?P<name>[A-Za-z_][A-Za-z_0-9]*(?:\.[A-Za-z_][A-Za-z_0-9]*)*)
      | (?P<op><=|>=|<>|!=|==|=|<|>|\(|\)|,)
    )""",
    re.VERBOSE,
)
_COMPARE = {
    "=": "__eq__", "==": "__eq__", "!=": "__ne__", "<>": "__ne__",
    "<": "__lt__", "<=": "__le__", ">": "__gt__", ">=": "__ge__",
}


def parse_where(text: str) -> pc.Expression:
    tokens = _tokenize(text)
    parser = _Parser(text, tokens)
    expr = parser.or_expr()
    if parser.peek() is not None:
        parser.fail(f"unexpected {parser.peek()[1]!r}")
    return expr


def _tokenize(text: str) -> list[tuple[str, str]]:
    out, pos = [], 0
    while pos < len(text):
        if text[pos:].strip() == "":
            break
        m = _TOKEN.match(text, pos)
        if not m or m.end() == pos:
            raise InvalidPredicateError(f"--where {text!r}: cannot read from {text[pos:]!r}")
        kind = m.lastgroup
        out.append((kind, m.group(kind)))
        pos = m.end()
    return out


class _Parser:
    def __init__(self, text: str, tokens: list[tuple[str, str]]) -> None:
        self.text, self.tokens, self.i = text, tokens, 0

    def fail(self, why: str):
        raise InvalidPredicateError(f"--where {self.text!r}: {why}")

    def peek(self) -> tuple[str, str] | None:
        return self.tokens[self.i] if self.i < len(self.tokens) else None

    def keyword(self, *words: str) -> bool:
        tok = self.peek()
        if tok and tok[0] == "name" and tok[1].upper() in words:
            self.i += 1
            return True
        return False

    def expect_op(self, op: str) -> None:
        tok = self.peek()
        if tok != ("op", op):
            self.fail(f"expected {op!r}, found {tok[1] if tok else 'end of input'!r}")
        self.i += 1

    def or_expr(self) -> pc.Expression:
        expr = self.and_expr()
        while self.keyword("OR"):
            expr = expr | self.and_expr()
        return expr

    def and_expr(self) -> pc.Expression:
        expr = self.not_expr()
        while self.keyword("AND"):
            expr = expr & self.not_expr()
        return expr

    def not_expr(self) -> pc.Expression:
        if self.keyword("NOT"):
            return ~self.not_expr()
        return self.atom()

    def atom(self) -> pc.Expression:
        if self.peek() == ("op", "("):
            self.i += 1
            expr = self.or_expr()
            self.expect_op(")")
            return expr
        left = self.operand()
        if self.keyword("IS"):
            negate = self.keyword("NOT")
            if not self.keyword("NULL"):
                self.fail("expected NULL after IS")
            return left.is_valid() if negate else left.is_null()
        negate = self.keyword("NOT")
        if self.keyword("IN"):
            self.expect_op("(")
            values = [self.literal()]
            while self.peek() == ("op", ","):
                self.i += 1
                values.append(self.literal())
            self.expect_op(")")
            expr = left.isin(values)
            return ~expr if negate else expr
        if self.keyword("BETWEEN"):
            low = self.operand()
            if not self.keyword("AND"):
                self.fail("expected AND in BETWEEN")
            expr = (left >= low) & (left <= self.operand())
            return ~expr if negate else expr
        if negate:
            self.fail("expected IN or BETWEEN after NOT")
        tok = self.peek()
        if not tok or tok[0] != "op" or tok[1] not in _COMPARE:
            self.fail(f"expected a comparison after {left}")
        self.i += 1
        return getattr(left, _COMPARE[tok[1]])(self.operand())

    def operand(self) -> pc.Expression:
        tok = self.peek()
        if tok is None:
            self.fail("unexpected end of input")
        if tok[0] == "name" and tok[1].upper() not in ("TRUE", "FALSE", "NULL", "DATE",
                                                       "TIMESTAMP"):
            self.i += 1
            return pc.field(*tok[1].split("."))
        if tok[0] == "qname":
            self.i += 1
            return pc.field(tok[1][1:-1].replace('""', '"'))
        return pc.scalar(self.literal())

    def literal(self):
        tok = self.peek()
        if tok is None:
            self.fail("expected a value")
        kind, text = tok
        self.i += 1
        if kind == "num":
            return float(text) if any(c in text for c in ".eE") else int(text)
        if kind == "str":
            return text[1:-1].replace("''", "'")
        if kind == "name":
            word = text.upper()
            if word in ("TRUE", "FALSE"):
                return word == "TRUE"
            if word == "NULL":
                return None
            if word in ("DATE", "TIMESTAMP"):
                raw = self.literal()
                try:
                    if word == "DATE":
                        return dt.date.fromisoformat(raw)
                    return dt.datetime.fromisoformat(raw)
                except (TypeError, ValueError):
                    self.fail(f"invalid {word} literal {raw!r}")
        self.fail(f"expected a value, found {text!r}")
