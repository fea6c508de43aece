"""The settlement, account and audit commands of `yibao`: argument errors
(exit 2, naming the option), what they send, what they print, exit codes,
against the stand-in peer. tests/clients/test_client_e2e_node.py runs them
against a real node."""

from __future__ import annotations

import asyncio
import io
import json
import threading
import time
from pathlib import Path

import pytest
from client_fake_peer import CREDENTIAL_ID, INSTITUTION, RECEIPT, SETTLEMENT_ID, SIGNATURE, FakeNode
from yibao.v1 import common_pb2, settlement_pb2
from yibao_client import AsyncClient, Client, signature_der
from yibao_client.cli import main


class Run:
    def __init__(self, code: int, out: str, err: str) -> None:
        self.code, self.out, self.err = code, out, err


def run(*argv: str, stdin: str | None = None) -> Run:
    out, err = io.StringIO(), io.StringIO()
    sin = None if stdin is None else io.StringIO(stdin)
    code = main(list(argv), stdout=out, stderr=err, stdin=sin)
    return Run(code, out.getvalue(), err.getvalue())


def net(node: FakeNode) -> list[str]:
    return ["--insecure", "--target", node.target, "--timeout", "5", "--retries", "1"]


SETTLE = ["--token", "tok-1", "--institution", INSTITUTION, "--order-id", "o-1"]
OPEN = [
    "account",
    "open",
    CREDENTIAL_ID,
    "--region",
    "440300",
    "--balance",
    "1000.00",
    "--per-payment-limit",
    "500",
    "--daily-limit",
    "800.00",
]


# -- usage errors: exit 2, naming the option, nothing sent ---------------------------
@pytest.mark.parametrize(
    ("argv", "named"),
    [
        (["settle", *SETTLE[2:], "--total", "1", "--account-pay", "1"], "--token"),
        (["settle", *SETTLE, "--account-pay", "1"], "--total"),
        (["settle", *SETTLE, "--total", "1.234", "--account-pay", "1"], "--total"),
        (["settle", *SETTLE, "--total", "-1", "--account-pay", "1"], "--total"),
        (["settle", *SETTLE, "--total", "1e3", "--account-pay", "1"], "--total"),
        (["settle", *SETTLE, "--total", "abc", "--account-pay", "1"], "--total"),
        (["settle", *SETTLE, "--total", "0", "--account-pay", "0"], "--total"),
        (["settle", *SETTLE, "--total", "1", "--total-fen", "100", "--account-pay", "1"], "--total"),
        (["settle", *SETTLE, "--total-fen", "1.5", "--account-pay", "1"], "--total-fen"),
        (["settle", *SETTLE, "--total", "1", "--account-pay", "0.001"], "--account-pay"),
        (["settle", *SETTLE, "--total", "1"], "--account-pay"),
        (["settle", *SETTLE[:4], "--order-id", "x" * 65, "--total", "1", "--account-pay", "1"], "--order-id"),
        (
            [
                "settle",
                *SETTLE[:2],
                "--institution",
                "X1",
                "--order-id",
                "o",
                "--total",
                "1",
                "--account-pay",
                "1",
            ],
            "--institution",
        ),
        (["settle", *SETTLE, "--total", "1", "--account-pay", "1", "--item", "a:b:c"], "--item"),
        (["settle", *SETTLE, "--total", "1", "--account-pay", "1", "--item", "a:b:1:盒:1.001:1"], "--item"),
        (
            ["settle", *SETTLE, "--total", "1", "--account-pay", "1", "--receipt-out", "/nonexistent/r.bin"],
            "--receipt-out",
        ),
        (
            ["settle", *SETTLE, "--total", "1", "--account-pay", "1", "--signature-out", "/"],
            "--signature-out",
        ),
        (
            ["presettle", *SETTLE, "--total", "1", "--account-pay", "1", "--receipt-out", "r.bin"],
            "--receipt-out",
        ),
        (
            ["refund", SETTLEMENT_ID, "--refund-id", "r", "--amount", "0", "--institution", INSTITUTION],
            "--amount",
        ),
        (
            ["refund", SETTLEMENT_ID, "--refund-id", "r", "--amount", "1.234", "--institution", INSTITUTION],
            "--amount",
        ),
        (["refund", SETTLEMENT_ID, "--amount", "1", "--institution", INSTITUTION], "--refund-id"),
        (
            ["refund", "44XYZ", "--refund-id", "r", "--amount", "1", "--institution", INSTITUTION],
            "SETTLEMENT_ID",
        ),
        (["settlement", "show", "nope"], "SETTLEMENT_ID"),
        (
            [
                "account",
                "open",
                CREDENTIAL_ID,
                "--region",
                "440300",
                "--per-payment-limit",
                "1",
                "--daily-limit",
                "1",
            ],
            "--balance",
        ),
        ([*OPEN[:5], "--balance", "1.234", *OPEN[7:]], "--balance"),
        ([*OPEN, "--balance-fen", "100"], "--balance"),
        ([*OPEN[:7], "--per-payment-limit", "0", *OPEN[9:]], "--per-payment-limit"),
        ([*OPEN[:3], "--region", "4403", *OPEN[5:]], "--region"),
        (["account", "open", "00", *OPEN[3:]], "CREDENTIAL_ID"),
        (["account", "show", CREDENTIAL_ID, "--region", "999999"], "--region"),
        (["account", "melt", CREDENTIAL_ID], "ACTION"),
        (["audit", "--count", "0"], "--count"),
        (["audit", "--count", "10001"], "--count"),
        (["audit", "--since", "yesterday"], "--since"),
        (["audit", "--region", "440300"], "--region"),
        (["audit", "--follow", "--max-seconds", "0"], "--max-seconds"),
        (["node-key", "--pem-out", "/nonexistent/dir/k.pem"], "--pem-out"),
    ],
)
def test_usage_errors_exit_2_naming_the_option(argv: list[str], named: str) -> None:
    r = run(*argv)
    assert r.code == 2, r.err
    assert named in r.err, r.err
    assert r.out == ""


def test_handler_usage_errors_exit_2_before_any_call(fake_node: FakeNode, tmp_path: Path) -> None:
    base = [*net(fake_node), "settle", *SETTLE]
    r = run(*base, "--total", "100.00", "--account-pay", "100.01")
    assert r.code == 2 and "--account-pay" in r.err and "more than --total 100.00" in r.err
    r = run(
        *base,
        "--total",
        "100.00",
        "--account-pay",
        "1",
        "--item",
        "A:x:1:盒:60:60",
        "--item",
        ":y:1:次:30:30",
    )
    assert (
        r.code == 2 and "--item" in r.err and "add up to 90.00 yuan (9000 fen), not --total 100.00" in r.err
    )
    r = run(*base, "--total", "1", "--account-pay", "1", "--items-json", str(tmp_path / "missing.json"))
    assert r.code == 2 and "--items-json" in r.err and "missing.json" in r.err
    bad = tmp_path / "items.json"
    bad.write_text('[{"name": "x", "quantity": 1, "unit_price": 0.001, "amount": 1}]')
    r = run(*base, "--total", "1", "--account-pay", "1", "--items-json", str(bad))
    assert r.code == 2 and "--items-json: items[0].unit_price has more than 2 decimal places" in r.err
    r = run(
        *net(fake_node),
        "settle",
        "--token",
        "-",
        *SETTLE[2:],
        "--total",
        "1",
        "--account-pay",
        "1",
        "--items-json",
        "-",
        stdin="tok",
    )
    assert r.code == 2 and "--items-json" in r.err
    r = run(
        *net(fake_node),
        "settle",
        "--token",
        "-",
        *SETTLE[2:],
        "--total",
        "1",
        "--account-pay",
        "1",
        stdin="\n",
    )
    assert r.code == 2 and "--token" in r.err
    r = run(*net(fake_node), "audit", "--max-seconds", "3")
    assert r.code == 2 and "--max-seconds: only with --follow" in r.err
    assert fake_node.calls == []


def test_help_has_examples() -> None:
    for argv in (
        ["settle", "--help"],
        ["presettle", "--help"],
        ["refund", "--help"],
        ["settlement", "show", "--help"],
        ["account", "--help"],
        ["account", "open", "--help"],
        ["account", "show", "--help"],
        ["account", "freeze", "--help"],
        ["audit", "--help"],
        ["node-key", "--help"],
    ):
        r = run(*argv)
        assert r.code == 0, argv
        assert "example" in r.out, argv


# -- settle / presettle ---------------------------------------------------------------
def test_settle_sends_exact_fen_and_items(fake_node: FakeNode, tmp_path: Path) -> None:
    receipt, sig = tmp_path / "r.bin", tmp_path / "r.sig"
    r = run(
        *net(fake_node),
        "settle",
        *SETTLE,
        "--total",
        "120.29",
        "--account-pay",
        "100.29",
        "--item",
        "XJ01:阿莫西林胶囊:2:盒:50.145:100.29",
    )
    assert r.code == 2 and "UNIT_PRICE" in r.err  # 50.145 is not a whole number of fen
    r = run(
        *net(fake_node),
        "settle",
        *SETTLE,
        "--total",
        "120.29",
        "--account-pay",
        "100.29",
        "--item",
        "XJ01:阿莫西林胶囊:2:盒:50.14:100.28",
        "--item",
        ":挂号费:1:次:20.01:20.01",
        "--receipt-out",
        str(receipt),
        "--signature-out",
        str(sig),
    )
    assert r.code == 0, r.err
    sent = fake_node.calls_to("Settle")[0]
    assert (sent.ec_token, sent.institution_code, sent.order_id) == ("tok-1", INSTITUTION, "o-1")
    assert (sent.total_fen, sent.account_pay_fen) == (12_029, 10_029)
    assert [
        (i.item_code, i.name, i.quantity_milli, i.unit, i.unit_price_fen, i.amount_fen) for i in sent.items
    ] == [
        ("XJ01", "阿莫西林胶囊", 2000, "盒", 5014, 10_028),
        ("", "挂号费", 1000, "次", 2001, 2001),
    ]
    out = r.out
    assert out.splitlines()[0].split() == ["outcome", "SETTLED", "结算成功"]
    assert "settlement_id      " + SETTLEMENT_ID in out
    assert "total              120.29 元 (12029 fen)" in out
    assert "account_pay        100.29 元 (10029 fen)" in out
    assert "cash_pay           20.00 元 (2000 fen)" in out
    assert "balance_after      899.71 元 (89971 fen)" in out
    assert "settled_at         2026-05-29 04:26:40.123 +08:00" in out
    assert f"receipt            {RECEIPT.hex()}" in out
    assert f"receipt_signature  {SIGNATURE.hex()}" in out
    assert receipt.read_bytes() == RECEIPT
    assert sig.read_bytes() == signature_der(SIGNATURE)
    assert "yibao node-key --region 44 --pem-out node-44.pem" in out
    assert (
        f"openssl dgst -sm3 -verify node-44.pem -sigopt distid:1234567812345678 -signature {sig} {receipt}"
        in out
    )


def test_settle_items_json_and_token_from_stdin(fake_node: FakeNode, tmp_path: Path) -> None:
    items = tmp_path / "items.json"
    items.write_text(json.dumps([{"name": "药", "quantity": 1, "unit_price": "0.29", "amount": "0.29"}]))
    r = run(
        *net(fake_node),
        "--json",
        "settle",
        "--token",
        "-",
        *SETTLE[2:],
        "--total-fen",
        "29",
        "--account-pay-fen",
        "29",
        "--items-json",
        str(items),
        stdin="tok-from-stdin\n",
    )
    assert r.code == 0, r.err
    sent = fake_node.calls_to("Settle")[0]
    assert sent.ec_token == "tok-from-stdin" and sent.items[0].unit_price_fen == 29
    d = json.loads(r.out)
    assert d["outcome"] == "SETTLED" and d["account_pay_fen"] == 29 and d["receipt"] == RECEIPT.hex()


def test_presettle_and_not_settled_exit_1(fake_node: FakeNode) -> None:
    r = run(*net(fake_node), "presettle", *SETTLE, "--total", "120", "--account-pay", "100")
    assert r.code == 0, r.err
    assert "nothing was paid" in r.out and "receipt" not in r.out
    assert fake_node.calls_to("PreSettle")[0].total_fen == 12_000
    r = run(
        *net(fake_node), "settle", "--token", "expired", *SETTLE[2:], "--total", "1", "--account-pay", "1"
    )
    assert r.code == 1
    assert "TOKEN_EXPIRED  令牌已过期" in r.out and "settlement_id" not in r.out
    r = run(
        *net(fake_node),
        "--json",
        "settle",
        "--token",
        "expired",
        *SETTLE[2:],
        "--total",
        "1",
        "--account-pay",
        "1",
    )
    assert r.code == 1 and json.loads(r.out)["outcome"] == "TOKEN_EXPIRED"


# -- refund / settlement show -------------------------------------------------------------
def test_refund(fake_node: FakeNode, tmp_path: Path) -> None:
    rb, rs = tmp_path / "f.bin", tmp_path / "f.sig"
    r = run(
        *net(fake_node),
        "refund",
        SETTLEMENT_ID.lower(),
        "--refund-id",
        "rf-1",
        "--amount",
        "30.00",
        "--institution",
        INSTITUTION,
        "--receipt-out",
        str(rb),
        "--signature-out",
        str(rs),
    )
    assert r.code == 0, r.err
    sent = fake_node.calls_to("Refund")[0]
    assert (sent.settlement_id, sent.refund_id, sent.amount_fen, sent.institution_code) == (
        SETTLEMENT_ID,
        "rf-1",
        3000,
        INSTITUTION,
    )
    assert "REFUNDED  退费成功" in r.out and "remaining          70.00 元 (7000 fen)" in r.out
    assert rb.read_bytes() == RECEIPT + b"-refund" and rs.read_bytes() == signature_der(SIGNATURE)
    assert "-signature" in r.out and "--region 44" in r.out

    r = run(
        *net(fake_node),
        "refund",
        "44" + "F" * 30,
        "--refund-id",
        "x",
        "--amount-fen",
        "1",
        "--institution",
        INSTITUTION,
        "--receipt-out",
        str(tmp_path / "none.bin"),
    )
    assert r.code == 1 and "NOT_FOUND" in r.out and "no refund receipt to write" in r.err
    assert not (tmp_path / "none.bin").exists()


def test_settlement_show(fake_node: FakeNode, tmp_path: Path) -> None:
    r = run(*net(fake_node), "settlement", "show", SETTLEMENT_ID, "--receipt-out", str(tmp_path / "s.bin"))
    assert r.code == 0, r.err
    assert "refunded           30.00 元 (3000 fen)  in 1 refund" in r.out
    assert "refundable         70.00 元 (7000 fen)" in r.out
    assert "阿莫西林胶囊" in r.out and "rf-1" in r.out and "930.00" in r.out
    assert "refund rf-1 receipt" in r.out
    assert (tmp_path / "s.bin").read_bytes() == RECEIPT
    r = run(*net(fake_node), "--json", "settlement", "show", SETTLEMENT_ID)
    d = json.loads(r.out)
    assert d["settlement"]["items"][0]["unit_price_fen"] == 5000 and d["refunds"][0]["refund_id"] == "rf-1"
    r = run(*net(fake_node), "settlement", "show", "44" + "F" * 30)
    assert r.code == 1 and "结算记录不存在" in r.out


# -- accounts ---------------------------------------------------------------------------
def test_account_commands(fake_node: FakeNode) -> None:
    r = run(*net(fake_node), *OPEN)
    assert r.code == 0, r.err
    sent = fake_node.calls_to("OpenAccount")[0]
    assert (sent.balance_fen, sent.per_payment_limit_fen, sent.daily_limit_fen, sent.insured_region) == (
        100_000,
        50_000,
        80_000,
        "440300",
    )
    assert "balance            1000.00 元 (100000 fen)" in r.out and "yes, by this call" in r.out
    r = run(*net(fake_node), *OPEN[:5], "--balance-fen", "7", *OPEN[7:])
    assert r.code == 0 and fake_node.calls_to("OpenAccount")[1].balance_fen == 7

    r = run(*net(fake_node), "account", "show", CREDENTIAL_ID.lower())
    assert r.code == 0, r.err
    assert fake_node.calls_to("GetAccount")[0].insured_region == ""
    assert "balance            930.00 元 (93000 fen)" in r.out
    assert "spent_today        100.00 元 (10000 fen)" in r.out
    assert "payable_today      700.00 元 (70000 fen)" in r.out
    r = run(*net(fake_node), "--json", "account", "show", "F" * 32, "--region", "110105")
    assert r.code == 1 and json.loads(r.out)["found"] is False
    assert fake_node.calls_to("GetAccount")[1].insured_region == "110105"

    r = run(*net(fake_node), "account", "freeze", CREDENTIAL_ID)
    assert r.code == 0 and "frozen  冻结" in r.out
    r = run(*net(fake_node), "account", "unfreeze", CREDENTIAL_ID, "--region", "440300")
    assert r.code == 0 and "active  正常" in r.out
    assert [c.status for c in fake_node.calls_to("SetAccountStatus")] == [
        common_pb2.ACCOUNT_STATUS_FROZEN,
        common_pb2.ACCOUNT_STATUS_ACTIVE,
    ]
    r = run(*net(fake_node), "account", "freeze", "F" * 32)
    assert r.code == 1 and "nothing changed" in r.out


# -- audit ------------------------------------------------------------------------------
def test_audit_table_and_json(fake_node: FakeNode) -> None:
    fake_node.add_audit("Settle", "SETTLED", order_id="o-1", account_pay_fen="10000")
    fake_node.add_audit("Refund", "REFUNDED", refund_id="with space", amount_fen="3000")
    r = run(*net(fake_node), "audit")
    assert r.code == 0, r.err
    lines = r.out.splitlines()
    assert lines[0] == "audit log of province 44 (审计日志)"
    assert lines[1].split()[:4] == ["id", "when", "(Beijing", "time)"]
    assert lines[2].split()[:7] == [
        "1780000000123-0",
        "2026-05-29",
        "04:26:40.123",
        "+08:00",
        INSTITUTION,
        "Settle",
        "SETTLED",
    ]
    assert lines[2].endswith("account_pay_fen=10000 order_id=o-1")
    assert lines[3].endswith('amount_fen=3000 refund_id="with space"')
    assert "2 entries" in r.out

    r = run(*net(fake_node), "--json", "audit", "--latest", "--count", "1", "--region", "44")
    d = [json.loads(x) for x in r.out.splitlines()]
    assert len(d) == 1 and d[0]["what"] == "Refund" and d[0]["region"] == "44"
    assert d[0]["detail"] == {"refund_id": "with space", "amount_fen": "3000"}
    assert d[0]["when"] == "2026-05-28T20:26:40.124Z"
    q = fake_node.calls_to("ReadAudit")[-1]
    assert (q.region, q.count, q.latest, q.since) == ("44", 1, True, "")

    r = run(*net(fake_node), "audit", "--count", "1")
    assert "there may be more: yibao audit --since 1780000000123-0" in r.out
    r = run(*net(fake_node), "audit", "--since", "1780000000124-0")
    assert r.code == 0 and "no entries after 1780000000124-0" in r.out


def test_audit_follow_prints_new_entries(fake_node: FakeNode) -> None:
    fake_node.add_audit("Settle", "SETTLED", order_id="old")

    def later() -> None:
        # append once the command has read the log twice (the first read, one poll)
        deadline = time.monotonic() + 10
        while len(fake_node.calls_to("ReadAudit")) < 2 and time.monotonic() < deadline:
            time.sleep(0.01)
        fake_node.add_audit("Refund", "REFUNDED", refund_id="new")

    t = threading.Thread(target=later)
    t.start()
    started = time.monotonic()
    r = run(*net(fake_node), "--json", "audit", "--follow", "--interval", "0.1", "--max-seconds", "2")
    t.join()
    elapsed = time.monotonic() - started
    assert r.code == 0, r.err
    assert elapsed >= 2.0  # ran until --max-seconds (no upper bound: a loaded machine is slow)
    got = [json.loads(x) for x in r.out.splitlines()]
    assert [e["detail"].get("order_id") or e["detail"].get("refund_id") for e in got] == ["old", "new"]
    reads = fake_node.calls_to("ReadAudit")
    assert reads[0].latest is True  # --follow without --since starts with the last entries
    assert reads[1].since == "1780000000123-0" and not reads[1].latest
    assert reads[-1].since == "1780000000124-0" and not reads[-1].latest


def test_library_read_audit(fake_node: FakeNode) -> None:
    for i in range(3):
        fake_node.add_audit("Settle", "SETTLED", n=str(i))
    with Client(fake_node.target, insecure=True) as c:
        r = c.read_audit(count=2)
        assert [e.detail["n"] for e in r.entries] == ["0", "1"] and r.region == "44"
        r = c.read_audit("11", since=r.entries[-1].id)
        assert [e.detail["n"] for e in r.entries] == ["2"] and r.region == "11"
        with pytest.raises(ValueError, match="1 to 10000"):
            c.read_audit(count=0)
        with pytest.raises(TypeError):
            c.read_audit(count=1.0)  # type: ignore[arg-type]

    async def go() -> list[str]:
        async with AsyncClient(fake_node.target, insecure=True) as c:
            r = await c.read_audit(count=1, latest=True)
            return [e.detail["n"] for e in r.entries]

    assert asyncio.run(go()) == ["2"]
    q = fake_node.calls_to("ReadAudit")[-1]
    assert (q.count, q.latest) == (1, True)


# -- node-key --pem-out ----------------------------------------------------------------
def test_node_key_pem_out(fake_node: FakeNode, tmp_path: Path) -> None:
    pem = tmp_path / "node.pem"
    r = run(*net(fake_node), "node-key", "--pem-out", str(pem))
    assert r.code == 0, r.err
    text = pem.read_text()
    assert text.startswith("-----BEGIN PUBLIC KEY-----\nMFkwEwYHKoZIzj0CAQYIKoEcz1UBgi0DQgAE")
    assert f"pem_out     {pem}" in r.out


def test_settle_item_messages_are_ints() -> None:
    """The CLI builds SettleItems with int fields only (no float reaches a message)."""
    from yibao_client.money import parse_item

    i = parse_item("A:b:1.5:g:0.10:0.15")
    for name in ("quantity_milli", "unit_price_fen", "amount_fen"):
        assert type(getattr(i, name)) is int
    assert isinstance(i, settlement_pb2.SettleItem)


# -- verify --json gives scripts the ec_token ---------------------------------------------
def test_verify_json_has_the_ec_token(fake_node: FakeNode) -> None:
    r = run(*net(fake_node), "--json", "verify", "OK-1", "--institution", INSTITUTION, "--request-id", "q")
    assert r.code == 0, r.err
    d = json.loads(r.out)
    assert d["outcome"] == "VALID" and d["ec_token"] == "tok-q"
    assert d["token_expires_at"] == "2026-05-28T20:36:40.123Z"
