"""Amounts typed by people, and bill lines, turned into exact integers.

Money travels as an integer count of fen (分, 1/100 yuan) everywhere in the
API. A person types yuan (元): ``"120.00"``, ``"0.5"``, ``"1000"``. The
text is parsed digit by digit into fen, never through ``float`` (in binary
floating point ``0.29 * 100`` is ``28.999999999999996``), so every amount
that is accepted is exact, and one that is not exact is refused:

- digits, optionally a dot and one or two more digits: ``"12"``, ``"12.5"``,
  ``"12.50"``; ASCII digits only;
- refused: ``"1.234"`` (fractions of a fen), ``"-1"``, ``"+1"``, ``"1e3"``,
  ``".5"``, ``"5."``, ``"1,000"``, ``"¥12"``, ``"inf"``, ``"abc"``, ``""``.

Quantities (``SettleItem.quantity_milli``) work the same way with up to three
decimals: ``"2"`` is 2000, ``"0.5"`` is 500.

A bill line on the command line is ``CODE:NAME:QTY:UNIT:UNIT_PRICE:AMOUNT``
(see :func:`parse_item`); a file of them is JSON (see :func:`items_from_json`).
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping, Sequence
from typing import Any

from yibao.v1 import settlement_pb2

__all__ = [
    "MAX_FEN",
    "format_quantity",
    "format_yuan",
    "item_text",
    "items_from_json",
    "items_total",
    "parse_fen",
    "parse_item",
    "parse_quantity",
    "parse_yuan",
]

#: The largest amount an ``int64`` field can carry.
MAX_FEN = 2**63 - 1

_DECIMAL = re.compile(r"([0-9]+)(?:\.([0-9]+))?", re.ASCII)


def _decimal(text: object, places: int, what: str, unit: str) -> int:
    """``text`` (a plain decimal) times 10**places, exactly, as an int."""
    if not isinstance(text, str):
        raise TypeError(f"{what} must be text (str), not {type(text).__name__}")
    t = text.strip()
    m = _DECIMAL.fullmatch(t)
    if m is None:
        if t.startswith("-"):
            raise ValueError(f"{what} cannot be negative: {text!r}")
        if re.fullmatch(r"[+-]?[0-9.]*[eE][+-]?[0-9]+", t, re.ASCII):
            raise ValueError(f"write {what} as a plain decimal, without an exponent: {text!r}")
        if "," in t:
            raise ValueError(f"write {what} without thousands separators: {text!r}")
        example = "120.00" if places == 2 else "0.5"
        raise ValueError(f"{what} must be a decimal number such as {example}, in {unit}; got {text!r}")
    whole, frac = m.group(1), m.group(2) or ""
    if len(frac) > places:
        raise ValueError(
            f"{what} has more than {places} decimal places: {text!r}"
            + (" (the smallest amount is 0.01 yuan, one fen)" if places == 2 else "")
        )
    value = int(whole, 10) * 10**places + (int(frac.ljust(places, "0"), 10) if frac else 0)
    if value > MAX_FEN:
        raise ValueError(f"{what} is too large: {text!r}")
    return value


def parse_yuan(text: str, *, what: str = "amount") -> int:
    """``"120.00"`` yuan -> ``12000`` fen, exactly; ValueError for anything
    that is not a non-negative amount with at most two decimals."""
    return _decimal(text, 2, what, "yuan (元)")


def parse_fen(text: str, *, what: str = "amount") -> int:
    """``"12000"`` -> ``12000``: a whole, non-negative number of fen."""
    if not isinstance(text, str):
        raise TypeError(f"{what} must be text (str), not {type(text).__name__}")
    t = text.strip()
    if not re.fullmatch(r"[0-9]+", t, re.ASCII):
        raise ValueError(f"{what} must be a whole number of fen (分), e.g. 12000; got {text!r}")
    value = int(t, 10)
    if value > MAX_FEN:
        raise ValueError(f"{what} is too large: {text!r}")
    return value


def parse_quantity(text: str, *, what: str = "quantity") -> int:
    """``"2"`` -> ``2000``, ``"0.5"`` -> ``500``: thousandths, exactly."""
    return _decimal(text, 3, what, "units")


def format_yuan(fen: int) -> str:
    """``12000`` -> ``"120.00"`` (no thousands separators, so that it can be
    typed back); negative amounts get a minus sign."""
    if isinstance(fen, bool) or not isinstance(fen, int):
        raise TypeError(f"fen must be int, not {type(fen).__name__}")
    sign = "-" if fen < 0 else ""
    whole, cents = divmod(abs(fen), 100)
    return f"{sign}{whole}.{cents:02d}"


def format_quantity(milli: int) -> str:
    """``2000`` -> ``"2"``, ``500`` -> ``"0.5"``, ``1250`` -> ``"1.25"``."""
    whole, frac = divmod(int(milli), 1000)
    return f"{whole}.{frac:03d}".rstrip("0").rstrip(".") if frac else str(whole)


def _item(
    item_code: str, name: str, quantity_milli: int, unit: str, unit_price_fen: int, amount_fen: int
) -> settlement_pb2.SettleItem:
    return settlement_pb2.SettleItem(
        item_code=item_code,
        name=name,
        quantity_milli=quantity_milli,
        unit=unit,
        unit_price_fen=unit_price_fen,
        amount_fen=amount_fen,
    )


def parse_item(text: str) -> settlement_pb2.SettleItem:
    """One bill line (费用明细) from ``CODE:NAME:QTY:UNIT:UNIT_PRICE:AMOUNT``.

    CODE is the catalogue code (医保目录编码), and may be empty when unknown;
    NAME is required and may itself hold colons; QTY is a decimal with up to
    three places; UNIT is e.g. 盒, g or 次; UNIT_PRICE and AMOUNT are yuan
    with at most two decimals. For example
    ``XJ01CAA040A001:阿莫西林胶囊:2:盒:12.50:25.00``.
    """
    parts = text.split(":")
    if len(parts) < 6:
        raise ValueError(
            f"expected CODE:NAME:QTY:UNIT:UNIT_PRICE:AMOUNT (6 fields separated by ':'), "
            f"got {len(parts)} field{'s' if len(parts) != 1 else ''} in {text!r}"
        )
    code = parts[0].strip()
    qty, unit, price, amount = parts[-4:]
    name = ":".join(parts[1:-4]).strip()
    if not name:
        raise ValueError(f"NAME is empty in {text!r}")
    return _item(
        code,
        name,
        parse_quantity(qty, what="QTY"),
        unit.strip(),
        parse_yuan(price, what="UNIT_PRICE"),
        parse_yuan(amount, what="AMOUNT"),
    )


def item_text(item: settlement_pb2.SettleItem) -> str:
    """The ``CODE:NAME:QTY:UNIT:UNIT_PRICE:AMOUNT`` form of a line (parse_item's inverse)."""
    return ":".join(
        (
            item.item_code,
            item.name,
            format_quantity(item.quantity_milli),
            item.unit,
            format_yuan(item.unit_price_fen),
            format_yuan(item.amount_fen),
        )
    )


class _Number(str):
    """The text of a JSON number with a fraction or exponent, kept as text."""


def items_from_json(text: str | bytes) -> list[settlement_pb2.SettleItem]:
    """Bill lines from JSON: a list of objects, or ``{"items": [...]}``.

    Each object has ``name`` and optionally ``item_code`` and ``unit``
    (text), and for each amount one of two forms:

    - ``quantity`` (decimal, up to 3 places) or ``quantity_milli`` (integer);
    - ``unit_price`` (yuan) or ``unit_price_fen`` (integer fen);
    - ``amount`` (yuan) or ``amount_fen`` (integer fen).

    Yuan and quantities may be JSON strings (``"12.50"``) or numbers
    (``12.50``); numbers are read from their text, never as floats, so they
    are exact. The output of ``yibao --json settlement show`` (``items``)
    is accepted as it is. ValueError names the line and field at fault.
    """
    try:
        doc = json.loads(text, parse_float=_Number, parse_constant=_bad_constant)
    except json.JSONDecodeError as e:
        raise ValueError(f"not JSON: {e}") from None
    if isinstance(doc, Mapping) and "items" in doc:
        doc = doc["items"]
    if not isinstance(doc, list):
        raise ValueError('expected a JSON list of items, or {"items": [...]}')
    return [_json_item(i, obj) for i, obj in enumerate(doc)]


def _bad_constant(name: str) -> Any:
    raise ValueError(f"{name} is not an amount")


# The checks below raise ValueError for every kind of bad JSON content,
# wrong types included: it is bad input, reported as such (TRY004 does not apply).
def _json_item(i: int, obj: object) -> settlement_pb2.SettleItem:
    where = f"items[{i}]"
    if not isinstance(obj, Mapping):
        raise ValueError(f"{where}: expected an object, got {type(obj).__name__}")
    known = {
        "item_code",
        "name",
        "unit",
        "quantity",
        "quantity_milli",
        "unit_price",
        "unit_price_fen",
        "amount",
        "amount_fen",
    }
    unknown = sorted(set(obj) - known)
    if unknown:
        raise ValueError(
            f"{where}: unknown field {unknown[0]!r}; expected some of {', '.join(sorted(known))}"
        )

    def text(name: str, *, required: bool) -> str:
        v = obj.get(name, "")
        if not isinstance(v, str):
            raise ValueError(f"{where}.{name}: expected text, got {type(v).__name__}")
        if required and not v.strip():
            raise ValueError(f"{where}.{name}: missing or empty")
        return v.strip()

    def pair(decimal_name: str, int_name: str, places: int) -> int:
        has_d, has_i = decimal_name in obj, int_name in obj
        if has_d == has_i:
            raise ValueError(f"{where}: give exactly one of {decimal_name!r} and {int_name!r}")
        if has_i:
            v = obj[int_name]
            if isinstance(v, bool) or not isinstance(v, int):
                raise ValueError(f"{where}.{int_name}: expected a whole number, got {_json_text(v)}")
            if not 0 <= v <= MAX_FEN:
                raise ValueError(f"{where}.{int_name}: {v} is out of range")
            return v
        v = obj[decimal_name]
        if isinstance(v, bool) or not isinstance(v, (str, int)):  # _Number is a str
            raise ValueError(f"{where}.{decimal_name}: expected a decimal number, got {_json_text(v)}")
        what = f"{where}.{decimal_name}"
        return _decimal(str(v), places, what, "yuan (元)" if places == 2 else "units")

    return _item(
        text("item_code", required=False),
        text("name", required=True),
        pair("quantity", "quantity_milli", 3),
        text("unit", required=False),
        pair("unit_price", "unit_price_fen", 2),
        pair("amount", "amount_fen", 2),
    )


def _json_text(v: object) -> str:
    return str(v) if isinstance(v, _Number) else json.dumps(v, ensure_ascii=False)


def items_total(items: Sequence[settlement_pb2.SettleItem]) -> int:
    """Sum of the lines' amount_fen."""
    return sum(int(i.amount_fen) for i in items)
