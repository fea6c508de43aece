"""Amounts typed in yuan -> exact integer fen, quantities, and bill lines
(yibao_client.money): exact, strict, and never through a float."""

from __future__ import annotations

import builtins
import json

import pytest
from hypothesis import given
from hypothesis import strategies as st
from yibao.v1 import settlement_pb2
from yibao_client import money, to_dict
from yibao_client.money import (
    format_quantity,
    format_yuan,
    item_text,
    items_from_json,
    parse_fen,
    parse_item,
    parse_quantity,
    parse_yuan,
)


@pytest.mark.parametrize(
    ("text", "fen"),
    [
        ("0", 0),
        ("0.01", 1),
        ("0.1", 10),
        ("0.29", 29),  # 0.29 * 100 == 28.999999999999996 in binary floating point
        ("1.15", 115),  # 1.15 * 100 == 114.99999999999999
        ("19.99", 1999),
        ("120.00", 12_000),
        ("1000", 100_000),
        (" 12.5 ", 1250),
        ("007.50", 750),
        ("90071992547409.93", 9_007_199_254_740_993),  # not a double: 2**53 + 1 fen
        ("92233720368547758.07", 2**63 - 1),  # the largest int64
    ],
)
def test_yuan_to_fen_is_exact(text: str, fen: int) -> None:
    got = parse_yuan(text)
    assert got == fen and type(got) is int


@pytest.mark.parametrize(
    ("text", "says"),
    [
        ("1.234", "more than 2 decimal places"),
        ("0.001", "more than 2 decimal places"),
        ("1.230", "more than 2 decimal places"),
        ("-1", "negative"),
        ("-0.01", "negative"),
        ("1e3", "exponent"),
        ("1E-2", "exponent"),
        ("abc", "decimal number"),
        ("", "decimal number"),
        (".5", "decimal number"),
        ("5.", "decimal number"),
        ("+1", "decimal number"),
        ("1,000.00", "thousands separators"),
        ("¥12", "decimal number"),
        ("inf", "decimal number"),
        ("nan", "decimal number"),
        ("1.2.3", "decimal number"),
        ("0x10", "decimal number"),
        ("1_000", "decimal number"),  # int() would take it
        ("１２", "decimal number"),  # full-width digits
        ("٣", "decimal number"),  # Arabic-Indic digit: str.isdigit() is True
        ("92233720368547758.08", "too large"),
    ],
)
def test_yuan_rejects(text: str, says: str) -> None:
    with pytest.raises(ValueError, match=says):
        parse_yuan(text)


def test_no_float_is_ever_made(monkeypatch: pytest.MonkeyPatch) -> None:
    """The parsers never call float(): with it broken they still work."""

    def no_float(*a: object) -> float:
        raise AssertionError("float() was called")

    monkeypatch.setattr(builtins, "float", no_float)
    assert parse_yuan("0.29") == 29
    assert parse_quantity("0.5") == 500
    assert parse_fen("12000") == 12000
    item = parse_item("XJ01:阿莫西林胶囊:2:盒:12.50:25.00")
    assert (item.unit_price_fen, item.amount_fen) == (1250, 2500)
    items = items_from_json('[{"name": "x", "quantity": 1.5, "unit_price": 1.15, "amount": 1.73}]')
    assert (items[0].quantity_milli, items[0].unit_price_fen, items[0].amount_fen) == (1500, 115, 173)
    with pytest.raises(ValueError):
        parse_yuan("1.234")


def test_a_float_argument_is_refused() -> None:
    with pytest.raises(TypeError):
        parse_yuan(1.5)  # type: ignore[arg-type]
    with pytest.raises(TypeError):
        format_yuan(1.5)  # type: ignore[arg-type]
    with pytest.raises(TypeError):
        format_yuan(True)


@given(st.integers(min_value=0, max_value=2**63 - 1))
def test_format_then_parse_round_trips(fen: int) -> None:
    assert parse_yuan(format_yuan(fen)) == fen


def test_format_yuan() -> None:
    assert format_yuan(0) == "0.00"
    assert format_yuan(5) == "0.05"
    assert format_yuan(12_000) == "120.00"
    assert format_yuan(-150) == "-1.50"


def test_fen_text() -> None:
    assert parse_fen(" 12000 ") == 12000
    for bad in ("1.00", "-1", "1e3", "", "１"):
        with pytest.raises(ValueError, match="whole number of fen"):
            parse_fen(bad)


def test_quantities() -> None:
    assert parse_quantity("2") == 2000
    assert parse_quantity("0.5") == 500
    assert parse_quantity("1.25") == 1250
    assert parse_quantity("0.001") == 1
    with pytest.raises(ValueError, match="more than 3 decimal places"):
        parse_quantity("0.0005")
    assert [format_quantity(m) for m in (2000, 500, 1250, 1, 0)] == ["2", "0.5", "1.25", "0.001", "0"]


# -- bill lines ---------------------------------------------------------------------
def test_item_from_text() -> None:
    i = parse_item("XJ01CAA040A001:阿莫西林胶囊:2:盒:12.50:25.00")
    assert i == settlement_pb2.SettleItem(
        item_code="XJ01CAA040A001",
        name="阿莫西林胶囊",
        quantity_milli=2000,
        unit="盒",
        unit_price_fen=1250,
        amount_fen=2500,
    )
    assert item_text(i) == "XJ01CAA040A001:阿莫西林胶囊:2:盒:12.50:25.00"
    # no catalogue code; a name holding colons; a fractional quantity
    i = parse_item(":检查: CT 平扫:0.5:次:300:150.00")
    assert (i.item_code, i.name, i.quantity_milli, i.unit) == ("", "检查: CT 平扫", 500, "次")
    assert (i.unit_price_fen, i.amount_fen) == (30_000, 15_000)
    assert parse_item(item_text(i)) == i


@pytest.mark.parametrize(
    ("text", "says"),
    [
        ("XJ01:name:2:盒:12.50", "6 fields"),
        ("XJ01", "got 1 field "),
        ("XJ01::2:盒:12.50:25.00", "NAME is empty"),
        ("XJ01:x:two:盒:12.50:25.00", "QTY"),
        ("XJ01:x:2:盒:12.505:25.00", "UNIT_PRICE has more than 2 decimal places"),
        ("XJ01:x:2:盒:12.50:-25", "AMOUNT cannot be negative"),
        ("XJ01:x:2:盒:12.50:2.5e1", "AMOUNT.*exponent"),
    ],
)
def test_item_errors_name_the_field(text: str, says: str) -> None:
    with pytest.raises(ValueError, match=says):
        parse_item(text)


def test_items_from_json_exact_numbers_and_forms() -> None:
    doc = """[
      {"item_code": "A1", "name": "药", "quantity": 2, "unit": "盒", "unit_price": 0.29, "amount": 0.58},
      {"name": "挂号费", "quantity_milli": 1000, "unit": "次", "unit_price_fen": 1000, "amount_fen": 1000},
      {"name": "text form", "quantity": "0.5", "unit_price": "1.15", "amount": "0.58"}
    ]"""
    a, b, c = items_from_json(doc)
    assert (a.quantity_milli, a.unit_price_fen, a.amount_fen, a.item_code) == (2000, 29, 58, "A1")
    assert (b.quantity_milli, b.unit_price_fen, b.amount_fen, b.item_code) == (1000, 1000, 1000, "")
    assert (c.quantity_milli, c.unit_price_fen, c.amount_fen) == (500, 115, 58)
    assert money.items_total([a, b, c]) == 1116
    # {"items": [...]} and the output of `yibao --json settlement show` are accepted as they are
    shown = {"items": [to_dict(a), to_dict(b)]}
    assert items_from_json(json.dumps(shown)) == [a, b]


@pytest.mark.parametrize(
    ("doc", "says"),
    [
        ("{", "not JSON"),
        ('{"x": 1}', "a JSON list"),
        ("[1]", r"items\[0\]: expected an object"),
        ('[{"quantity": 1, "unit_price": 1, "amount": 1}]', r"items\[0\].name: missing"),
        ('[{"name": "x", "unit_price": 1, "amount": 1}]', "exactly one of 'quantity' and 'quantity_milli'"),
        (
            '[{"name": "x", "quantity": 1, "unit_price": 1, "unit_price_fen": 100, "amount": 1}]',
            "exactly one of 'unit_price'",
        ),
        ('[{"name": "x", "quantity": 1, "unit_price": 1.234, "amount": 1}]', r"unit_price has more than 2"),
        ('[{"name": "x", "quantity": 1, "unit_price": 1e2, "amount": 1}]', "exponent"),
        ('[{"name": "x", "quantity": 1, "unit_price": true, "amount": 1}]', "expected a decimal number"),
        (
            '[{"name": "x", "quantity": 1, "unit_price": 1, "amount_fen": 1.0}]',
            "amount_fen: expected a whole",
        ),
        ('[{"name": "x", "quantity": 1, "unit_price": NaN, "amount": 1}]', "NaN is not an amount"),
        ('[{"name": "x", "quantity": 1, "unit_price": 1, "amount": 1, "price": 2}]', "unknown field 'price'"),
        ('[{"name": "x", "quantity": 1, "unit_price": 1, "amount": 1}, {"name": ""}]', r"items\[1\].name"),
    ],
)
def test_items_json_errors(doc: str, says: str) -> None:
    with pytest.raises(ValueError, match=says):
        items_from_json(doc)
