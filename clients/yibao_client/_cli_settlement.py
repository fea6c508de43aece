"""Settlement commands: presettle, settle, refund, settlement show.

Amounts are typed in yuan (``--total 120.00``) and sent as integer fen,
converted from the text exactly (yibao_client.money); each has a ``-fen``
twin (``--total-fen 12000``) for scripts that already hold fen.
"""

from __future__ import annotations

import argparse
import os
from collections.abc import Sequence

from yibao.v1 import settlement_pb2

from ._cli_common import (
    EXIT_NOT_OK,
    EXIT_OK,
    Ctx,
    add_money,
    hex32,
    institution_code,
    money_text,
    output_file,
    text_id,
)
from .convert import format_time, to_dict
from .der import openssl_verify_command, signature_der
from .enums import (
    REFUND_OUTCOME_WORDS,
    SETTLE_OUTCOME_WORDS,
    refund_outcome_name,
    settle_outcome_name,
)
from .money import format_quantity, format_yuan, items_from_json, items_total, parse_item

_TOKEN_NOTE = """
The ec_token comes from a VALID `yibao verify` of the person's code, made
by the same institution, and is good for 10 minutes. A script can take it
from the JSON output:
  TOKEN=$(yibao --json verify "$CODE" --institution H44030000001 | jq -r .ec_token)
"""

_ITEMS_NOTE = """
Bill lines (费用明细, optional): --item CODE:NAME:QTY:UNIT:UNIT_PRICE:AMOUNT,
once per line, e.g. --item 'XJ01CAA040A001:阿莫西林胶囊:2:盒:12.50:25.00'
(CODE may be empty; QTY has up to three decimals; prices in yuan). Or
--items-json FILE: a JSON list of {"item_code", "name", "quantity", "unit",
"unit_price", "amount"} (or quantity_milli, unit_price_fen, amount_fen), as
`yibao --json settlement show` prints them. The lines' amounts must add up
to --total.
"""

PRESETTLE_HELP = (
    """\
Price a bill without paying it (预结算): the node checks the ec_token, the
account, its balance and limits, and answers what Settle would pay from the
personal account and what is left to pay in cash. Nothing is recorded and
no money moves.

Exit status: 0 when the outcome is SETTLED (it would be paid), 1 for any
other outcome (TOKEN_EXPIRED, INSUFFICIENT_BALANCE, ...), 2 for a mistake
in the command line, 3 when the call failed.
"""
    + _TOKEN_NOTE
    + _ITEMS_NOTE
)

SETTLE_HELP = (
    """\
Pay a bill from the person's personal account (个人账户结算). Prints the
outcome, the amounts in yuan and fen, the settlement id (keep it to refund),
the balance after, and the signed receipt (结算凭据) with its signature.

--order-id is the idempotency key: sending the same order again (after a
timeout, say) returns the first settlement and never pays twice.

With --receipt-out and --signature-out the receipt bytes and the signature
(DER, as OpenSSL reads it) are written to files, and the commands to check
the signature with OpenSSL are printed.

Exit status: 0 when the outcome is SETTLED, 1 for any other outcome, 2 for
a mistake in the command line, 3 when the call failed (no money moved for
UNAVAILABLE; retry with the same --order-id).
"""
    + _TOKEN_NOTE
    + _ITEMS_NOTE
)

SETTLE_EPILOG = """\
examples:
  yibao settle --token "$TOKEN" --institution H44030000001 --order-id HIS-20260301-0001 \\
      --total 120.00 --account-pay 100.00
  yibao settle --token "$TOKEN" --institution H44030000001 --order-id HIS-20260301-0002 \\
      --total 37.50 --account-pay 37.50 \\
      --item 'XJ01CAA040A001:阿莫西林胶囊:2:盒:12.50:25.00' --item ':挂号费:1:次:12.50:12.50' \\
      --receipt-out receipt.bin --signature-out receipt.sig
  yibao --json verify "$CODE" --institution H44030000001 | jq -r .ec_token \\
      | yibao settle --token - --institution H44030000001 --order-id X1 --total 10 --account-pay 10
"""

PRESETTLE_EPILOG = """\
examples:
  yibao presettle --token "$TOKEN" --institution H44030000001 --order-id HIS-20260301-0001 \\
      --total 120.00 --account-pay 100.00
  yibao --json presettle --token "$TOKEN" --institution H44030000001 --order-id X1 \\
      --total-fen 12000 --account-pay-fen 10000
"""

REFUND_HELP = """\
Return money of a settlement to the person's account (退费), in part or in
whole; never more than what is left of it after earlier refunds. Only the
institution that settled may refund it.

--refund-id is the idempotency key: the same refund sent again returns the
first one and never refunds twice.

Exit status: 0 when the outcome is REFUNDED, 1 for any other outcome
(NOT_FOUND, EXCEEDS_REMAINING, ...), 2 for a mistake in the command line,
3 when the call failed (retry with the same --refund-id).
"""

REFUND_EPILOG = """\
examples:
  yibao refund 44000000000000000000000000000001 --refund-id HIS-R-0001 \\
      --amount 30.00 --institution H44030000001
  yibao refund 44000000000000000000000000000001 --refund-id HIS-R-0002 --amount-fen 500 \\
      --institution H44030000001 --receipt-out refund.bin --signature-out refund.sig
"""

SETTLEMENT_HELP = """\
Read a settlement back from the node that owns the account (结算查询): its
amounts, bill lines, receipt and signature, and every refund made of it.
Only the institution that settled it (or an admin) may read it.

Exit status: 0 when it is found, 1 when there is no such settlement.
"""

SETTLEMENT_EPILOG = """\
examples:
  yibao settlement show 44000000000000000000000000000001
  yibao settlement show 44000000000000000000000000000001 \\
      --receipt-out receipt.bin --signature-out receipt.sig
  yibao --json settlement show 44000000000000000000000000000001 | jq .refunds
"""


def register(sub: argparse._SubParsersAction, net: argparse.ArgumentParser) -> None:  # type: ignore[type-arg]
    raw = argparse.RawDescriptionHelpFormatter
    inst_default = os.environ.get("YIBAO_INSTITUTION")

    def institution(p: argparse.ArgumentParser) -> None:
        p.add_argument(
            "--institution",
            type=institution_code,
            metavar="INST",
            default=inst_default,
            required=inst_default is None,
            help="your institution code (定点医药机构编码), e.g. H44030000001 (env YIBAO_INSTITUTION)",
        )

    def receipt_files(p: argparse.ArgumentParser, whose: str) -> None:
        p.add_argument(
            "--receipt-out",
            type=output_file,
            metavar="FILE",
            help=f"write the {whose} receipt's bytes to FILE (what the signature covers)",
        )
        p.add_argument(
            "--signature-out",
            type=output_file,
            metavar="FILE",
            help="write the receipt's signature to FILE, DER (openssl dgst -signature FILE)",
        )

    for name, handler, text, desc, epilog in (
        (
            "presettle",
            cmd_presettle,
            "price a bill without paying (预结算)",
            PRESETTLE_HELP,
            PRESETTLE_EPILOG,
        ),
        ("settle", cmd_settle, "pay a bill from the personal account (结算)", SETTLE_HELP, SETTLE_EPILOG),
    ):
        p = sub.add_parser(
            name, parents=[net], help=text, description=desc, epilog=epilog, formatter_class=raw
        )
        p.add_argument(
            "--token",
            required=True,
            metavar="EC_TOKEN",
            help="the ec_token of a VALID verify (电子凭证令牌), or - to read it from stdin",
        )
        institution(p)
        p.add_argument(
            "--order-id",
            required=True,
            type=text_id("--order-id"),
            metavar="ID",
            help="your id for this bill, 1-64 characters, unique in your institution (idempotency key)",
        )
        add_money(p, "total", dest="total_fen", help="the bill's total (医疗费总额), > 0", minimum_fen=1)
        add_money(
            p,
            "account-pay",
            dest="account_pay_fen",
            help="how much of it to pay from the personal account (个人账户支付); the rest is cash",
        )
        items = p.add_mutually_exclusive_group()
        items.add_argument(
            "--item",
            dest="items",
            action="append",
            type=_item_arg,
            metavar="CODE:NAME:QTY:UNIT:UNIT_PRICE:AMOUNT",
            help="one bill line (repeat for each); their amounts add up to the total",
        )
        items.add_argument(
            "--items-json", metavar="FILE", help="the bill lines as JSON (see above), or - for stdin"
        )
        if name == "settle":
            receipt_files(p, "settlement")
        p.set_defaults(handler=handler, prog=p.prog)

    p = sub.add_parser(
        "refund",
        parents=[net],
        help="return money of a settlement to the account (退费)",
        description=REFUND_HELP,
        epilog=REFUND_EPILOG,
        formatter_class=raw,
    )
    p.add_argument(
        "settlement_id", metavar="SETTLEMENT_ID", type=hex32, help="the settlement id, 32 hex digits"
    )
    p.add_argument(
        "--refund-id",
        required=True,
        type=text_id("--refund-id"),
        metavar="ID",
        help="your id for this refund, 1-64 characters (idempotency key)",
    )
    add_money(p, "amount", dest="amount_fen", help="how much to return (退费金额), > 0", minimum_fen=1)
    institution(p)
    receipt_files(p, "refund")
    p.set_defaults(handler=cmd_refund, prog=p.prog)

    p = sub.add_parser(
        "settlement",
        help="read a settlement back, with its refunds",
        description=SETTLEMENT_HELP,
        epilog=SETTLEMENT_EPILOG,
        formatter_class=raw,
    )
    ssub = p.add_subparsers(dest="settlement_command", metavar="ACTION", required=True)
    q = ssub.add_parser(
        "show",
        parents=[net],
        help="show a settlement and its refunds",
        description=SETTLEMENT_HELP,
        epilog=SETTLEMENT_EPILOG,
        formatter_class=raw,
    )
    q.add_argument(
        "settlement_id", metavar="SETTLEMENT_ID", type=hex32, help="the settlement id, 32 hex digits"
    )
    receipt_files(q, "settlement")
    q.set_defaults(handler=cmd_settlement_show, prog=q.prog)


def _item_arg(text: str) -> settlement_pb2.SettleItem:
    try:
        return parse_item(text)
    except ValueError as e:
        raise argparse.ArgumentTypeError(str(e)) from None


# -- labels ----------------------------------------------------------------------
def settle_outcome_label(outcome: int) -> str:
    name = settle_outcome_name(outcome)
    word = SETTLE_OUTCOME_WORDS.get(name)
    return f"{name}  {word}" if word else name


def refund_outcome_label(outcome: int) -> str:
    name = refund_outcome_name(outcome)
    word = REFUND_OUTCOME_WORDS.get(name)
    return f"{name}  {word}" if word else name


# -- presettle / settle ------------------------------------------------------------
def _read_stdin_line(ctx: Ctx) -> str:
    return ctx.stdin.read().strip()


def _settle_inputs(ctx: Ctx, args: argparse.Namespace) -> tuple[str, list[settlement_pb2.SettleItem]]:
    if args.token == "-" and args.items_json == "-":
        ctx.usage("argument --items-json: stdin is already used by --token -")
    token = _read_stdin_line(ctx) if args.token == "-" else args.token.strip()
    if not token:
        ctx.usage("argument --token: empty ec_token")
    if args.account_pay_fen > args.total_fen:
        ctx.usage(
            f"argument --account-pay: {format_yuan(args.account_pay_fen)} yuan is more than "
            f"--total {format_yuan(args.total_fen)} yuan"
        )
    items: list[settlement_pb2.SettleItem] = list(args.items or [])
    option = "--item"
    if args.items_json is not None:
        option = "--items-json"
        if args.items_json == "-":
            text = ctx.stdin.read()
        else:
            try:
                with open(args.items_json, encoding="utf-8") as f:
                    text = f.read()
            except OSError as e:
                ctx.usage(f"argument --items-json: cannot read {args.items_json!r}: {e.strerror}")
            except UnicodeDecodeError:
                ctx.usage(f"argument --items-json: {args.items_json!r} is not UTF-8 text")
        try:
            items = items_from_json(text)
        except ValueError as e:
            ctx.usage(f"argument --items-json: {e}")
    if items and items_total(items) != args.total_fen:
        total = items_total(items)
        ctx.usage(
            f"argument {option}: the bill lines add up to {format_yuan(total)} yuan ({total} fen), "
            f"not --total {format_yuan(args.total_fen)} yuan ({args.total_fen} fen)"
        )
    return token, items


def cmd_presettle(ctx: Ctx, args: argparse.Namespace) -> int:
    return _settle(ctx, args, dry_run=True)


def cmd_settle(ctx: Ctx, args: argparse.Namespace) -> int:
    return _settle(ctx, args, dry_run=False)


def _settle(ctx: Ctx, args: argparse.Namespace, *, dry_run: bool) -> int:
    token, items = _settle_inputs(ctx, args)
    with ctx.client() as client:
        call = client.presettle if dry_run else client.settle
        r = call(
            ec_token=token,
            institution_code=args.institution,
            order_id=args.order_id,
            total_fen=args.total_fen,
            account_pay_fen=args.account_pay_fen,
            items=items,
        )
    settled = r.outcome == settlement_pb2.SETTLE_OUTCOME_SETTLED
    if ctx.json:
        ctx.emit_json(to_dict(r))
    else:
        ctx.fields(settle_rows(r, dry_run=dry_run))
    if not dry_run:
        _write_receipt(ctx, args, r.receipt, r.receipt_signature, r.settled_region, what="settlement")
    return EXIT_OK if settled else EXIT_NOT_OK


def settle_rows(r: settlement_pb2.SettleResponse, *, dry_run: bool) -> list[tuple[str, str]]:
    rows = [("outcome", settle_outcome_label(r.outcome))]
    if dry_run:
        rows.append(("presettle", "nothing was paid: this is what settle would do (预结算)"))
    rows += [("detail", r.detail), ("order_id", r.order_id)]
    if r.outcome == settlement_pb2.SETTLE_OUTCOME_SETTLED:
        if r.settlement_id:
            rows.append(("settlement_id", r.settlement_id))
        rows += [
            ("total", money_text(r.account_pay_fen + r.cash_pay_fen)),
            ("account_pay", money_text(r.account_pay_fen) + "  个人账户支付"),
            ("cash_pay", money_text(r.cash_pay_fen) + "  现金支付"),
            ("balance_after", money_text(r.balance_after_fen) + "  余额"),
        ]
        if r.HasField("settled_at"):
            rows.append(("settled_at", format_time(r.settled_at)))
    if r.settled_region:
        rows.append(("settled_region", r.settled_region))
    if r.receipt:
        rows.append(("receipt", r.receipt.hex()))
        rows.append(("receipt_signature", r.receipt_signature.hex()))
    return rows


def _write_receipt(
    ctx: Ctx, args: argparse.Namespace, receipt: bytes, signature: bytes, region: str, *, what: str
) -> None:
    """Write --receipt-out / --signature-out, and tell how to check them."""
    if not (args.receipt_out or args.signature_out):
        return
    if not receipt:
        ctx.err.write(f"{args.prog}: no {what} receipt to write (the outcome is not a success)\n")
        return
    wrote: list[str] = []
    if args.receipt_out:
        ctx.write_file("--receipt-out", args.receipt_out, receipt)
        wrote.append(f"{args.receipt_out} (receipt, {len(receipt)} bytes)")
    if args.signature_out:
        der = signature_der(signature)
        ctx.write_file("--signature-out", args.signature_out, der)
        wrote.append(f"{args.signature_out} (signature, DER, {len(der)} bytes)")
    if ctx.json:
        return
    pem = f"node-{region}.pem" if region else "node.pem"
    ctx.out.write("\nwrote " + ", ".join(wrote) + "\n")
    ctx.out.write("check the signature with the key of the node that signed it (OpenSSL 3):\n")
    ctx.out.write(f"  yibao node-key{f' --region {region}' if region else ''} --pem-out {pem}\n")
    ctx.out.write(
        "  "
        + openssl_verify_command(
            pem, args.signature_out or "SIGNATURE.der", args.receipt_out or "RECEIPT.bin"
        )
        + "\n"
    )


# -- refund ------------------------------------------------------------------------
def cmd_refund(ctx: Ctx, args: argparse.Namespace) -> int:
    with ctx.client() as client:
        r = client.refund(
            settlement_id=args.settlement_id,
            refund_id=args.refund_id,
            amount_fen=args.amount_fen,
            institution_code=args.institution,
        )
    refunded = r.outcome == settlement_pb2.REFUND_OUTCOME_REFUNDED
    if ctx.json:
        ctx.emit_json(to_dict(r))
    else:
        rows = [
            ("outcome", refund_outcome_label(r.outcome)),
            ("detail", r.detail),
            ("settlement_id", r.settlement_id),
            ("refund_id", r.refund_id),
        ]
        if refunded:
            rows += [
                ("amount", money_text(r.amount_fen) + "  退费金额"),
                ("remaining", money_text(r.remaining_fen) + "  可退余额"),
                ("balance_after", money_text(r.balance_after_fen) + "  余额"),
            ]
            if r.HasField("refunded_at"):
                rows.append(("refunded_at", format_time(r.refunded_at)))
        elif r.outcome == settlement_pb2.REFUND_OUTCOME_EXCEEDS_REMAINING:
            rows += [
                ("asked", money_text(args.amount_fen)),
                ("remaining", money_text(r.remaining_fen) + "  可退余额 (the most that can be refunded)"),
            ]
        if r.receipt:
            rows.append(("receipt", r.receipt.hex()))
            rows.append(("receipt_signature", r.receipt_signature.hex()))
        ctx.fields(rows)
    _write_receipt(ctx, args, r.receipt, r.receipt_signature, r.settlement_id[:2], what="refund")
    return EXIT_OK if refunded else EXIT_NOT_OK


# -- settlement show -----------------------------------------------------------------
def cmd_settlement_show(ctx: Ctx, args: argparse.Namespace) -> int:
    with ctx.client() as client:
        r = client.get_settlement(args.settlement_id)
    if ctx.json:
        ctx.emit_json(to_dict(r))
    elif not r.found:
        ctx.fields([("settlement_id", args.settlement_id), ("found", "no  结算记录不存在")])
    else:
        _show_settlement(ctx, r)
    if r.found:
        s = r.settlement
        _write_receipt(ctx, args, s.receipt, s.receipt_signature, s.settled_region, what="settlement")
    return EXIT_OK if r.found else EXIT_NOT_OK


def _show_settlement(ctx: Ctx, r: settlement_pb2.GetSettlementResponse) -> None:
    s = r.settlement
    rows = [
        ("settlement_id", s.settlement_id),
        ("institution_code", s.institution_code),
        ("order_id", s.order_id),
        ("credential_id", s.credential_id),
        ("total", money_text(s.total_fen)),
        ("account_pay", money_text(s.account_pay_fen) + "  个人账户支付"),
        ("cash_pay", money_text(s.cash_pay_fen) + "  现金支付"),
        ("balance_after", money_text(s.balance_after_fen) + "  (right after settling)"),
        (
            "refunded",
            money_text(s.refunded_fen) + f"  in {len(r.refunds)} refund{'s' if len(r.refunds) != 1 else ''}",
        ),
        ("refundable", money_text(max(0, s.account_pay_fen - s.refunded_fen)) + "  可退余额"),
    ]
    if s.HasField("settled_at"):
        rows.append(("settled_at", format_time(s.settled_at)))
    rows += [
        ("settled_region", s.settled_region),
        ("receipt", s.receipt.hex()),
        ("receipt_signature", s.receipt_signature.hex()),
    ]
    ctx.fields(rows)
    if s.items:
        ctx.out.write("\nbill lines (费用明细):\n")
        ctx.table(
            ["code", "name", "quantity", "unit", "unit price", "amount"],
            [_item_row(i) for i in s.items],
            right=[False, False, True, False, True, True],
        )
    if r.refunds:
        ctx.out.write("\nrefunds (退费):\n")
        ctx.table(
            ["refund_id", "amount", "balance after", "refunded_at"],
            [
                [
                    f.refund_id,
                    format_yuan(f.amount_fen),
                    format_yuan(f.balance_after_fen),
                    format_time(f.refunded_at) if f.HasField("refunded_at") else "-",
                ]
                for f in r.refunds
            ],
            right=[False, True, True, False],
        )
        ctx.out.write("\n")
        receipts: list[tuple[str, str]] = []
        for f in r.refunds:
            receipts.append((f"refund {f.refund_id} receipt", f.receipt.hex()))
            receipts.append((f"refund {f.refund_id} signature", f.receipt_signature.hex()))
        ctx.fields(receipts)


def _item_row(i: settlement_pb2.SettleItem) -> Sequence[str]:
    return [
        i.item_code or "-",
        i.name,
        format_quantity(i.quantity_milli),
        i.unit,
        format_yuan(i.unit_price_fen),
        format_yuan(i.amount_fen),
    ]
