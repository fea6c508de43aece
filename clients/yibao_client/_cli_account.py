"""Personal account commands (admin): account open, show, freeze, unfreeze.

They need an admin identity: an admin client certificate (--cert/--key), or
a node started with --insecure for a local demo. Each call goes to the node
of the account's province (from --region), wherever it is sent.
"""

from __future__ import annotations

import argparse

from yibao.v1 import admin_pb2

from ._cli_common import EXIT_NOT_OK, EXIT_OK, Ctx, add_money, hex32, money_text, region6
from .convert import to_dict
from .enums import ACCOUNT_STATUS_WORDS, account_status_name

_ADMIN_NOTE = """
Needs an admin identity: the admin client certificate (--cert, --key), or a
node run with --insecure for a local demo. Every change is written to the
audit log of the account's province (`yibao audit`).
"""

ACCOUNT_HELP = (
    """\
Personal accounts (个人账户): open one with its opening balance and limits,
show its balance and what was spent today, freeze or unfreeze it. An account
lives at the node of the holder's insured province (参保地); the node you
call forwards the call there.

Amounts are typed in yuan with at most two decimals (--balance 1000.00) and
sent as exact integer fen; each has a -fen twin (--balance-fen 100000).
"""
    + _ADMIN_NOTE
)

OPEN_HELP = (
    """\
Open (activate, 个人账户激活) a personal account with its opening balance
(期初余额), per-payment limit (单笔限额) and daily limit (单日限额). --region
is the holder's six-digit insured region (参保地医保区划); it must match the
insured region of the person's codes.

Opening an account that already exists is not an error and changes
nothing: its balance is not reset, and the output says "already open" and
shows it as it is (exit 0, so a retry after a timeout is safe).
"""
    + _ADMIN_NOTE
)

OPEN_EPILOG = """\
examples:
  yibao account open 00112233445566778899AABBCCDDEEFF --region 440300 \\
      --balance 1000.00 --per-payment-limit 500.00 --daily-limit 800.00
  yibao --json account open 00112233445566778899AABBCCDDEEFF --region 110105 \\
      --balance-fen 100000 --per-payment-limit-fen 50000 --daily-limit-fen 80000
"""

SHOW_HELP = (
    """\
Show a personal account: status, balance, limits, and what payments took
from it today (the day starts at 00:00 Beijing time). Exit status 1 when
there is no such account (未激活).
"""
    + _ADMIN_NOTE
)

STATUS_HELP = (
    """\
Freeze (冻结) or unfreeze (解冻) a personal account. A frozen account pays
nothing: settle answers ACCOUNT_FROZEN. Refunds are still credited. Setting
the status it already has is not an error. Exit status 1 when there is no
such account.
"""
    + _ADMIN_NOTE
)


def register(sub: argparse._SubParsersAction, net: argparse.ArgumentParser) -> None:  # type: ignore[type-arg]
    raw = argparse.RawDescriptionHelpFormatter
    p = sub.add_parser(
        "account",
        help="open, show, freeze or unfreeze a personal account (admin)",
        description=ACCOUNT_HELP,
        formatter_class=raw,
        epilog="examples:\n"
        "  yibao account open 00112233445566778899AABBCCDDEEFF --region 440300 \\\n"
        "      --balance 1000.00 --per-payment-limit 500.00 --daily-limit 800.00\n"
        "  yibao account show 00112233445566778899AABBCCDDEEFF --region 440300\n"
        "  yibao account freeze 00112233445566778899AABBCCDDEEFF --region 440300\n",
    )
    asub = p.add_subparsers(dest="account_command", metavar="ACTION", required=True)

    def credential(q: argparse.ArgumentParser) -> None:
        q.add_argument(
            "credential_id",
            metavar="CREDENTIAL_ID",
            type=hex32,
            help="the holder's credential number, 32 hex digits",
        )

    q = asub.add_parser(
        "open",
        parents=[net],
        help="open (activate) an account with its balance and limits",
        description=OPEN_HELP,
        epilog=OPEN_EPILOG,
        formatter_class=raw,
    )
    credential(q)
    q.add_argument(
        "--region",
        type=region6,
        required=True,
        metavar="ADMDVS",
        help="the holder's insured region (参保地), six digits, e.g. 440300",
    )
    add_money(q, "balance", dest="balance_fen", help="opening balance (期初余额), >= 0")
    add_money(
        q,
        "per-payment-limit",
        dest="per_payment_limit_fen",
        help="most one payment may take (单笔限额)",
        minimum_fen=1,
    )
    add_money(
        q,
        "daily-limit",
        dest="daily_limit_fen",
        help="most payments may take in a day (单日限额)",
        minimum_fen=1,
    )
    q.set_defaults(handler=cmd_account_open, prog=q.prog)

    region_help = (
        "the holder's insured region (参保地), six digits; the call goes to that province's node "
        "(default: the province of the node you call)"
    )
    q = asub.add_parser(
        "show",
        parents=[net],
        help="show an account's status, balance and limits",
        description=SHOW_HELP,
        epilog="examples:\n  yibao account show 00112233445566778899AABBCCDDEEFF --region 440300\n"
        "  yibao --json account show 00112233445566778899AABBCCDDEEFF | jq .balance_fen\n",
        formatter_class=raw,
    )
    credential(q)
    q.add_argument("--region", type=region6, metavar="ADMDVS", help=region_help)
    q.set_defaults(handler=cmd_account_show, prog=q.prog)

    for action, status, text in (
        ("freeze", "frozen", "freeze an account (冻结)"),
        ("unfreeze", "active", "unfreeze an account (解冻)"),
    ):
        q = asub.add_parser(
            action,
            parents=[net],
            help=text,
            description=STATUS_HELP,
            epilog=f"example:\n  yibao account {action} 00112233445566778899AABBCCDDEEFF --region 440300\n",
            formatter_class=raw,
        )
        credential(q)
        q.add_argument("--region", type=region6, metavar="ADMDVS", help=region_help)
        q.set_defaults(handler=cmd_account_status, status=status, prog=q.prog)


def status_label(value: int) -> str:
    name = account_status_name(value)
    word = ACCOUNT_STATUS_WORDS.get(name)
    return f"{name}  {word}" if word else name


def cmd_account_open(ctx: Ctx, args: argparse.Namespace) -> int:
    with ctx.client() as client:
        r = client.open_account(
            credential_id=args.credential_id,
            balance_fen=args.balance_fen,
            per_payment_limit_fen=args.per_payment_limit_fen,
            daily_limit_fen=args.daily_limit_fen,
            insured_region=args.region,
        )
    if ctx.json:
        ctx.emit_json(to_dict(r))
        return EXIT_OK
    rows = [
        ("credential_id", r.credential_id),
        ("opened", "yes, by this call" if r.created else "already open: left unchanged, shown as it is"),
        ("insured_region", args.region),
        ("status", status_label(r.status)),
        ("balance", money_text(r.balance_fen) + "  余额"),
        ("per_payment_limit", money_text(r.per_payment_limit_fen) + "  单笔限额"),
        ("daily_limit", money_text(r.daily_limit_fen) + "  单日限额"),
    ]
    ctx.fields(rows)
    return EXIT_OK


def account_rows(r: admin_pb2.GetAccountResponse, region: str | None = None) -> list[tuple[str, str]]:
    left = max(0, r.daily_limit_fen - r.spent_today_fen)
    return [
        ("credential_id", r.credential_id),
        ("insured_region", r.insured_region or region or "-"),
        ("status", status_label(r.status)),
        ("balance", money_text(r.balance_fen) + "  余额"),
        ("per_payment_limit", money_text(r.per_payment_limit_fen) + "  单笔限额"),
        ("daily_limit", money_text(r.daily_limit_fen) + "  单日限额"),
        ("spent_today", money_text(r.spent_today_fen) + "  当日累计支付 (Beijing day)"),
        (
            "payable_today",
            money_text(min(left, r.balance_fen)) + "  今日还可支付 (daily limit left, within the balance)",
        ),
    ]


def cmd_account_show(ctx: Ctx, args: argparse.Namespace) -> int:
    with ctx.client() as client:
        r = client.get_account(args.credential_id, insured_region=args.region or "")
    if ctx.json:
        ctx.emit_json(to_dict(r))
    elif r.found:
        ctx.fields(account_rows(r, args.region))
    else:
        ctx.fields(
            [
                ("credential_id", r.credential_id or args.credential_id),
                ("found", "no account (个人账户未激活)"),
            ]
        )
    return EXIT_OK if r.found else EXIT_NOT_OK


def cmd_account_status(ctx: Ctx, args: argparse.Namespace) -> int:
    with ctx.client() as client:
        r = client.set_account_status(args.credential_id, args.status, insured_region=args.region or "")
    if ctx.json:
        ctx.emit_json(to_dict(r))
    elif r.found:
        ctx.fields([("credential_id", r.credential_id), ("status", status_label(r.status))])
    else:
        ctx.fields(
            [
                ("credential_id", r.credential_id or args.credential_id),
                ("found", "no account: nothing changed"),
            ]
        )
    return EXIT_OK if r.found else EXIT_NOT_OK
