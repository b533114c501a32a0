"""Evaluate an arithmetic expression written by a model, without ``eval``.

Some scorers (SynLogic's game of 24, two KOR-Bench puzzle rules) decide by
evaluating the model's expression. The upstream code calls ``eval`` on model
text; here the text is parsed with Python's own grammar (``ast.parse``, so what
is a syntax error for ``eval`` is one here) and only numbers, ``+ - * / // % **``,
unary signs and parentheses are evaluated. Sizes are bounded so that an answer
like ``9**9**9**9`` is rejected at once instead of hanging.

``evaluate`` returns None for anything it refuses or that fails (syntax error,
division by zero, a name, a call, an exponent tower); the caller scores that 0.
"""

from __future__ import annotations

import ast
import operator
from fractions import Fraction

MAX_CHARS = 1000  # longer "expressions" are never a puzzle answer
MAX_EXPONENT = 1000
MAX_BITS = 4096  # bound on the size of any intermediate integer / fraction part

_BINARY = {
    ast.Add: operator.add,
    ast.Sub: operator.sub,
    ast.Mult: operator.mul,
    ast.Div: operator.truediv,
    ast.FloorDiv: operator.floordiv,
    ast.Mod: operator.mod,
    ast.Pow: operator.pow,
}
_UNARY = {ast.UAdd: operator.pos, ast.USub: operator.neg}


class _Refused(Exception):
    """The expression uses something outside the whitelist or exceeds a bound."""


def _too_big(x) -> bool:
    if isinstance(x, Fraction):
        return x.numerator.bit_length() > MAX_BITS or x.denominator.bit_length() > MAX_BITS
    if isinstance(x, int):
        return x.bit_length() > MAX_BITS
    return False  # floats overflow to inf on their own


def _power(base, exponent, exact: bool):
    if isinstance(exponent, Fraction):
        if exponent.denominator != 1:
            raise _Refused("fractional exponent")  # not rational in general
        exponent = exponent.numerator
    if abs(exponent) > MAX_EXPONENT:
        raise _Refused("exponent too large")
    if isinstance(base, (int, Fraction)) and isinstance(exponent, int):
        size = base.numerator.bit_length() + base.denominator.bit_length() if isinstance(base, Fraction) \
            else base.bit_length()
        if size * abs(exponent) > MAX_BITS:
            raise _Refused("power too large")
    return base ** exponent


def _eval(node, exact: bool, binary=_BINARY):
    if isinstance(node, ast.Expression):
        return _eval(node.body, exact, binary)
    if isinstance(node, ast.Constant) and type(node.value) in (int, float):
        return Fraction(node.value) if exact else node.value
    if isinstance(node, ast.UnaryOp) and type(node.op) in _UNARY:
        return _UNARY[type(node.op)](_eval(node.operand, exact, binary))
    if isinstance(node, ast.BinOp) and type(node.op) in binary:
        left, right = _eval(node.left, exact, binary), _eval(node.right, exact, binary)
        if isinstance(node.op, ast.Pow):
            value = _power(left, right, exact)
        else:
            value = _BINARY[type(node.op)](left, right)
        if _too_big(value):
            raise _Refused("intermediate value too large")
        return value
    raise _Refused(f"unsupported syntax: {type(node).__name__}")


FOUR_OPERATIONS = "+-*/"  # what arithmetic puzzles such as the game of 24 allow
_SYMBOLS = {ast.Add: "+", ast.Sub: "-", ast.Mult: "*", ast.Div: "/", ast.FloorDiv: "//", ast.Mod: "%", ast.Pow: "**"}


def evaluate(expression: str, exact: bool = False, operators: str | None = None):
    """Value of ``expression`` or None.

    exact=False follows Python's arithmetic (int / float, as ``eval`` would);
    exact=True computes with Fractions, so ``8/(3-8/3)`` is exactly 24.
    ``operators``: the binary operators allowed, as symbols (e.g. ``FOUR_OPERATIONS``;
    ``**``, ``//`` and ``%`` are then refused); None allows all of Python's arithmetic.
    """
    binary = _BINARY
    if operators is not None:
        allowed = {op for op, sym in _SYMBOLS.items() if sym in _tokens(operators)}
        binary = {op: fn for op, fn in _BINARY.items() if op in allowed}
    if not isinstance(expression, str) or len(expression) > MAX_CHARS:
        return None
    try:
        tree = ast.parse(expression.strip(), mode="eval")
        value = _eval(tree, exact, binary)
    except (SyntaxError, ValueError, ZeroDivisionError, OverflowError, RecursionError, MemoryError, _Refused):
        # The model's expression is not valid arithmetic: it scores 0, as eval's error would.
        return None
    if isinstance(value, complex):  # (-8) ** 0.5 in float mode
        return None
    return value


def _tokens(operators: str) -> set[str]:
    """'+-*/' -> {'+', '-', '*', '/'}; '**' and '//' count as themselves."""
    out, i = set(), 0
    while i < len(operators):
        pair = operators[i:i + 2]
        if pair in ("**", "//"):
            out.add(pair)
            i += 2
        else:
            out.add(operators[i])
            i += 1
    return out
