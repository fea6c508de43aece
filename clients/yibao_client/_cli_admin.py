"""Admin commands: revoke, restore, channel, trust-list, node-key.

They need an admin identity: an admin client certificate (--cert/--key), or
a node started with --insecure for a local demo.
"""

from __future__ import annotations

import argparse
import random
import time

from ._cli_common import EXIT_OK, Ctx, ProtocolError, UsageError, hex32, output_file, province2
from .convert import format_time, to_dict
from .client import Client
from .der import public_key_pem
from .enums import (
    CHANNEL_WORDS,
    CHANNELS,
    REVOCATION_REASONS,
    REVOCATION_WORDS,
    channel_name,
    revocation_reason_name,
)
from .errors import YibaoError

_ADMIN_NOTE = """
Needs an admin identity: the admin client certificate (--cert, --key), or a
node run with --insecure for a local demo. Every change is written to the
node's audit log.
"""

REVOKE_HELP = (
    """\
Revoke a credential (挂失/冻结/注销): from within a second, every node answers
its codes with REVOKED and the reason. Revoking an already revoked
credential is not an error (the reason is updated).
"""
    + _ADMIN_NOTE
)
RESTORE_HELP = (
    """\
Lift a credential's revocation (解挂/恢复): its codes verify again. Restoring
a credential that is not revoked is not an error.
"""
    + _ADMIN_NOTE
)
CHANNEL_HELP = (
    """\
Withdraw or give back one channel's authorisation for a credential
(权限管理): while a channel is withdrawn, codes shown through it verify as
CHANNEL_REVOKED; other channels keep working.
"""
    + _ADMIN_NOTE
)
TRUST_LIST_HELP = (
    """\
Replace the node's trust list of issuer keys (credential-v1 section 6),
without restarting it. A list with a bad key is refused as a whole (exit 3,
INVALID_ARGUMENT naming the key) and the old list stays in force.
"""
    + _ADMIN_NOTE
)
NODE_KEY_HELP = """\
Show a node's receipt-signing SM2 public key (65 bytes, uncompressed) and its
key id. Settlement and refund receipts are signed by the node of the
person's insured province; check their signature with that node's key
(--region, e.g. the settled_region of a settlement).

--pem-out FILE writes the key as a PEM SubjectPublicKeyInfo (SM2 curve), the
form `openssl dgst -sm3 -verify FILE ...` reads to check a receipt written
by `yibao settle --receipt-out ... --signature-out ...`.
"""


def register(sub: argparse._SubParsersAction, net: argparse.ArgumentParser) -> None:  # type: ignore[type-arg]
    raw = argparse.RawDescriptionHelpFormatter
    p = sub.add_parser(
        "revoke",
        parents=[net],
        help="revoke a credential (admin)",
        description=REVOKE_HELP,
        formatter_class=raw,
        epilog="examples:\n  yibao revoke 00112233445566778899AABBCCDDEEFF --reason lost\n"
        "  yibao revoke --from-file deceased.txt --reason deceased\n",
    )
    p.add_argument("credential_id", metavar="ID", type=hex32, nargs="?", help="credential number, 32 hex digits")
    p.add_argument(
        "--reason",
        type=str.lower,
        choices=REVOCATION_REASONS,
        help="lost (挂失), frozen (冻结), cancelled (注销) or deceased (死亡); with --from-file, "
        "the reason of lines that give none",
    )
    p.add_argument(
        "--from-file",
        metavar="FILE",
        help="revoke every credential listed in FILE: one per line, 'ID' or 'ID REASON' ('#' starts a "
        "comment), sent in batches of 10,000 (Admin.RevokeBatch); a batch the node refuses is sent again "
        f"after {', '.join(f'{w:g}' for w in BATCH_WAITS_S)} s (less up to half) before the load stops; "
        "safe to run again after a failure",
    )
    p.set_defaults(handler=cmd_revoke, prog=p.prog)

    p = sub.add_parser(
        "restore",
        parents=[net],
        help="lift a credential's revocation (admin)",
        description=RESTORE_HELP,
        formatter_class=raw,
        epilog="example:\n  yibao restore 00112233445566778899AABBCCDDEEFF\n",
    )
    p.add_argument("credential_id", metavar="ID", type=hex32, help="credential number, 32 hex digits")
    p.set_defaults(handler=cmd_restore, prog=p.prog)

    p = sub.add_parser(
        "channel",
        help="withdraw or restore a channel's authorisation (admin)",
        description=CHANNEL_HELP,
        formatter_class=raw,
        epilog="examples:\n"
        "  yibao channel withdraw 00112233445566778899AABBCCDDEEFF --channel wechat\n"
        "  yibao channel restore 00112233445566778899AABBCCDDEEFF --channel wechat\n",
    )
    chsub = p.add_subparsers(dest="channel_command", metavar="ACTION", required=True)
    for action, handler, text in (
        ("withdraw", cmd_channel_withdraw, "stop accepting codes shown through a channel"),
        ("restore", cmd_channel_restore, "accept a withdrawn channel again"),
    ):
        q = chsub.add_parser(
            action,
            parents=[net],
            help=text,
            description=CHANNEL_HELP,
            formatter_class=raw,
            epilog=f"example:\n  yibao channel {action} 00112233445566778899AABBCCDDEEFF --channel wechat\n",
        )
        q.add_argument("credential_id", metavar="ID", type=hex32, help="credential number, 32 hex digits")
        q.add_argument(
            "--channel",
            type=str.lower,
            choices=CHANNELS,
            required=True,
            help="one of " + ", ".join(CHANNELS),
        )
        q.set_defaults(handler=handler, prog=q.prog)

    p = sub.add_parser(
        "trust-list",
        help="load a trust list of issuer keys into the node (admin)",
        description=TRUST_LIST_HELP,
        formatter_class=raw,
        epilog="example:\n  yibao trust-list load trust-list.json\n",
    )
    tsub = p.add_subparsers(dest="trust_list_command", metavar="ACTION", required=True)
    q = tsub.add_parser(
        "load",
        parents=[net],
        help="replace the node's trust list with FILE",
        description=TRUST_LIST_HELP,
        formatter_class=raw,
        epilog="examples:\n  yibao trust-list load trust-list.json\n"
        "  yibao keygen --out issuer.key --trust-list tl.json && yibao trust-list load tl.json\n",
    )
    q.add_argument("file", metavar="FILE", help="trust list JSON, or - for stdin")
    q.set_defaults(handler=cmd_trust_list_load, prog=q.prog)

    p = sub.add_parser(
        "node-key",
        parents=[net],
        help="show a node's receipt-signing public key",
        description=NODE_KEY_HELP,
        formatter_class=raw,
        epilog="examples:\n  yibao node-key\n  yibao node-key --region 11\n"
        "  yibao node-key --region 44 --pem-out node-44.pem\n"
        "  openssl dgst -sm3 -verify node-44.pem -sigopt distid:1234567812345678 \\\n"
        "      -signature receipt.sig receipt.bin\n",
    )
    p.add_argument(
        "--region",
        type=province2,
        default=None,
        help="province-level code (two digits) of the node whose key to show (default: the node answering)",
    )
    p.add_argument(
        "--pem-out",
        type=output_file,
        metavar="FILE",
        help="also write the key to FILE as PEM (SubjectPublicKeyInfo, SM2), for openssl",
    )
    p.set_defaults(handler=cmd_node_key, prog=p.prog)


def _channel_label(value: int) -> str:
    name = channel_name(value)
    return f"{name} ({CHANNEL_WORDS[name]})" if name in CHANNEL_WORDS else name


REVOKE_BATCH = 10_000
#: A long load must outlive a node's refusals: a batch refused or not
#: answered in time is sent again after each of these waits in turn (seconds,
#: less up to half at random, so loads refused together do not come back
#: together), after the client's own retries; only then does the load stop.
#: Sending a batch again is safe: RevokeBatch is idempotent.
BATCH_WAITS_S = (1.0, 2.0, 4.0, 8.0, 16.0, 30.0)
#: What a node answers for a batch it did not take up, or did not finish in time.
_SEND_AGAIN = frozenset({"UNAVAILABLE", "RESOURCE_EXHAUSTED", "CANCELLED", "DEADLINE_EXCEEDED"})


def _revocation_file(path: str, default_reason: str | None) -> list[tuple[int, str, str]]:
    """(line number, ID, reason) of every entry; UsageError naming the line."""
    out = []
    with open(path, encoding="utf-8") as f:
        for number, line in enumerate(f, 1):
            words = line.partition("#")[0].split()
            if not words:
                continue
            try:
                cid = hex32(words[0])
            except argparse.ArgumentTypeError as e:
                raise UsageError(f"{path}:{number}: {e}") from None
            reason = words[1].lower() if len(words) > 1 else default_reason
            if reason not in REVOCATION_REASONS or len(words) > 2:
                raise UsageError(
                    f"{path}:{number}: expected 'ID' or 'ID REASON' (REASON one of {', '.join(REVOCATION_REASONS)}"
                    f"{'' if default_reason else '; or give --reason for lines without one'}), got {line.strip()!r}"
                )
            out.append((number, cid, reason))
    return out


def _send_batch(ctx: Ctx, client: Client, chunk: list[tuple[int, str, str]], prog: str) -> None:
    lines = f"lines {chunk[0][0]}-{chunk[-1][0]}"
    for wait in BATCH_WAITS_S:
        try:
            client.revoke_batch([(cid, reason) for _, cid, reason in chunk])
            return
        except YibaoError as e:
            if e.code.name not in _SEND_AGAIN:
                raise
            pause = wait * random.uniform(0.5, 1.0)
            ctx.err.write(f"{prog}: {lines}: {e.one_line()}; sending them again in {pause:.1f} s\n")
            time.sleep(pause)
    client.revoke_batch([(cid, reason) for _, cid, reason in chunk])


def _revoke_from_file(ctx: Ctx, args: argparse.Namespace) -> int:
    entries = _revocation_file(args.from_file, args.reason)
    done = 0
    with ctx.client() as client:
        for start in range(0, len(entries), REVOKE_BATCH):
            chunk = entries[start : start + REVOKE_BATCH]
            try:
                _send_batch(ctx, client, chunk, args.prog)
            except YibaoError:
                ctx.err.write(
                    f"{args.prog}: stopped at line {chunk[0][0]}: {done:,} of {len(entries):,} revoked; "
                    "running the same command again is safe\n"
                )
                raise
            done += len(chunk)
            if not ctx.json:
                ctx.fields([("revoked", f"{done:,} of {len(entries):,} (to line {chunk[-1][0]})")])
    if ctx.json:
        ctx.emit_json({"revoked": done, "file": args.from_file})
    return EXIT_OK


def cmd_revoke(ctx: Ctx, args: argparse.Namespace) -> int:
    if (args.credential_id is None) == (args.from_file is None):
        raise UsageError("give a credential ID, or --from-file FILE")
    if args.from_file is not None:
        return _revoke_from_file(ctx, args)
    if args.reason is None:
        raise UsageError("--reason is required: lost, frozen, cancelled or deceased")
    with ctx.client() as client:
        r = client.revoke(args.credential_id, args.reason)
    if ctx.json:
        ctx.emit_json(to_dict(r))
    else:
        reason = revocation_reason_name(r.reason)
        rows = [
            ("revoked", r.credential_id),
            ("reason", f"{reason} ({REVOCATION_WORDS.get(reason, '?')})"),
        ]
        if r.HasField("revoked_at"):
            rows.append(("revoked_at", format_time(r.revoked_at)))
        ctx.fields(rows)
    return EXIT_OK


def cmd_restore(ctx: Ctx, args: argparse.Namespace) -> int:
    with ctx.client() as client:
        r = client.restore(args.credential_id)
    if ctx.json:
        ctx.emit_json(to_dict(r))
    elif r.was_revoked:
        ctx.fields([("restored", r.credential_id), ("was revoked", "yes")])
    else:
        ctx.fields([("restored", r.credential_id), ("was revoked", "no (nothing to lift)")])
    return EXIT_OK


def cmd_channel_withdraw(ctx: Ctx, args: argparse.Namespace) -> int:
    with ctx.client() as client:
        r = client.withdraw_channel(args.credential_id, args.channel)
    if ctx.json:
        ctx.emit_json(to_dict(r))
    else:
        ctx.fields(
            [
                ("credential_id", r.credential_id),
                ("withdrawn", _channel_label(r.channel)),
                ("already withdrawn", "yes" if r.was_withdrawn else "no"),
            ]
        )
    return EXIT_OK


def cmd_channel_restore(ctx: Ctx, args: argparse.Namespace) -> int:
    with ctx.client() as client:
        r = client.restore_channel(args.credential_id, args.channel)
    if ctx.json:
        ctx.emit_json(to_dict(r))
    else:
        ctx.fields(
            [
                ("credential_id", r.credential_id),
                ("restored", _channel_label(r.channel)),
                ("was withdrawn", "yes" if r.was_withdrawn else "no (nothing to restore)"),
            ]
        )
    return EXIT_OK


def cmd_trust_list_load(ctx: Ctx, args: argparse.Namespace) -> int:
    if args.file == "-":
        text = ctx.stdin.read()
    else:
        try:
            with open(args.file, encoding="utf-8") as f:
                text = f.read()
        except OSError as e:
            ctx.usage(f"argument FILE: cannot read {args.file!r}: {e.strerror}")
        except UnicodeDecodeError:
            ctx.usage(f"argument FILE: {args.file!r} is not UTF-8 text")
    with ctx.client() as client:
        r = client.load_trust_list(text)
    if ctx.json:
        ctx.emit_json(to_dict(r))
    else:
        ctx.fields([("keys loaded", str(r.keys_loaded)), ("key ids", ", ".join(r.key_ids) or "-")])
    return EXIT_OK


def cmd_node_key(ctx: Ctx, args: argparse.Namespace) -> int:
    with ctx.client() as client:
        r = client.get_node_key(args.region or "")
    if args.pem_out:
        try:
            pem = public_key_pem(r.public_key)
        except ValueError as e:
            raise ProtocolError(f"the node's public key: {e}") from None
        ctx.write_file("--pem-out", args.pem_out, pem)
    if ctx.json:
        ctx.emit_json(to_dict(r))
    else:
        rows = [("region", r.region), ("key_id", r.key_id), ("public_key", r.public_key.hex())]
        if args.pem_out:
            rows.append(("pem_out", f"{args.pem_out} (PEM, SubjectPublicKeyInfo, curve SM2)"))
        ctx.fields(rows)
    return EXIT_OK
