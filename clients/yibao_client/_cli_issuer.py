"""`yibao keygen` and `yibao issue`: a demo issuer that works offline."""

from __future__ import annotations

import argparse
import datetime as dt
import os
import time

from . import issuer
from ._cli_common import EXIT_OK, Ctx, hex32, int_range, region6
from .enums import CHANNELS, channel_value

KEYGEN_HELP = """\
Make a demo issuer key: the key an issuing platform (the app showing the
person's code) signs codes with. Works offline.

Writes the SM2 private key to --out as 64 hex digits, readable by you only
(mode 0600), and prints its public key and key id. With --trust-list it also
writes a trust list (credential-v1 section 6) holding that public key, to
give a node (`yibao trust-list load FILE`, or the node's --trust-list
option) so that it accepts the codes you issue.

This is for tests, demos and integration work. A real issuer keeps its key
in a hardware security module.
"""

KEYGEN_EPILOG = """\
examples:
  yibao keygen --out issuer.key --trust-list trust-list.json
  yibao keygen --out issuer.key --trust-list trust-list.json \\
      --not-before 2026-01-01 --not-after 2027-07-01 --issuer "test platform, 2026 key"
"""

ISSUE_HELP = """\
Sign a code (YB1:..., 195 characters) with a demo issuer key, as the
person's app would show it. Works offline. Prints the code on stdout; with
--png also writes it as a QR image (alphanumeric mode) that a scanner reads.

A code is valid for --ttl seconds after --issued-at-ms (default: now), and
each one verifies VALID once only: issue a fresh one for every test.
"""

ISSUE_EPILOG = """\
examples:
  yibao issue --key issuer.key --credential-id 00112233445566778899AABBCCDDEEFF \\
      --region 440300 --channel wechat
  CODE=$(yibao issue --key issuer.key --credential-id 0011...EEFF --region 110105 --channel alipay)
  yibao issue --key issuer.key --credential-id 0011...EEFF --region 440300 \\
      --channel national_app --png code.png
  # a family-account (亲情账户) code shown by a guardian:
  yibao issue --key issuer.key --credential-id 0011...EEFF --presenter-id FFEE...1100 \\
      --region 440300 --channel wechat
"""


def _time_arg(text: str) -> dt.datetime:
    try:
        return issuer.parse_time(text)
    except ValueError as e:
        raise argparse.ArgumentTypeError(str(e)) from None


def register(sub: argparse._SubParsersAction, common: argparse.ArgumentParser) -> None:  # type: ignore[type-arg]
    p = sub.add_parser(
        "keygen",
        parents=[common],
        help="make a demo issuer key (and its trust list)",
        description=KEYGEN_HELP,
        epilog=KEYGEN_EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument("--out", required=True, metavar="FILE", help="where to write the private key")
    p.add_argument("--trust-list", metavar="FILE", help="also write a trust list JSON with the public key")
    p.add_argument(
        "--not-before",
        type=_time_arg,
        metavar="TIME",
        help="start of the key's validity, ISO 8601 (default: today 00:00 UTC)",
    )
    p.add_argument(
        "--not-after",
        type=_time_arg,
        metavar="TIME",
        help="end of the key's validity, exclusive (default: two years after --not-before)",
    )
    p.add_argument(
        "--issuer",
        default="demo issuer (yibao keygen)",
        metavar="NAME",
        help="name recorded in the trust list",
    )
    p.add_argument("--force", action="store_true", help="replace --out and --trust-list if they exist")
    p.set_defaults(handler=cmd_keygen, prog=p.prog)

    p = sub.add_parser(
        "issue",
        parents=[common],
        help="sign a demo code (offline), optionally as a QR image",
        description=ISSUE_HELP,
        epilog=ISSUE_EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument(
        "--key", dest="issuer_key", required=True, metavar="FILE", help="issuer key from `yibao keygen`"
    )
    p.add_argument(
        "--credential-id",
        type=hex32,
        required=True,
        metavar="HEX32",
        help="the person's credential number (电子凭证号), 32 hex digits",
    )
    p.add_argument(
        "--region",
        type=region6,
        required=True,
        help="insured region (参保地医保区划), six digits, e.g. 440300",
    )
    p.add_argument(
        "--channel",
        type=str.lower,
        choices=CHANNELS,
        required=True,
        help="where the code is shown: " + ", ".join(CHANNELS),
    )
    p.add_argument(
        "--presenter-id",
        type=hex32,
        metavar="HEX32",
        help="for a family-account code: the guardian's credential number",
    )
    p.add_argument(
        "--ttl", type=int_range(1, 300), default=60, metavar="SECONDS", help="validity, 1-300 s (default 60)"
    )
    p.add_argument(
        "--issued-at-ms",
        type=int_range(0, 2**64 - 1),
        metavar="N",
        help="issue time, Unix milliseconds (default: now)",
    )
    p.add_argument("--nonce", metavar="HEX16", help="the 8-byte nonce as 16 hex digits (default: random)")
    p.add_argument("--png", metavar="FILE", help="also write the code as a QR image (PNG)")
    p.add_argument(
        "--scale",
        type=int_range(1, 100),
        default=4,
        metavar="PX",
        help="PNG pixels per QR module (default 4)",
    )
    p.set_defaults(handler=cmd_issue, prog=p.prog)


def cmd_keygen(ctx: Ctx, args: argparse.Namespace) -> int:
    not_before = args.not_before or dt.datetime.now(dt.UTC).replace(hour=0, minute=0, second=0, microsecond=0)
    not_after = args.not_after or not_before + dt.timedelta(days=730)
    if not not_before < not_after:
        ctx.usage("argument --not-after: must be later than --not-before")
    if not args.force:
        for opt, path in (("--out", args.out), ("--trust-list", args.trust_list)):
            if path and os.path.exists(path):
                ctx.usage(f"argument {opt}: {path!r} exists (use --force to replace it)")
    key = issuer.generate_private_key()
    pub = issuer.public_key_of(key)
    kid = issuer.key_id_of(pub)
    try:
        issuer.write_key_file(args.out, key, force=args.force)
        if args.trust_list:
            text = issuer.trust_list_json(
                public_key=pub, not_before=not_before, not_after=not_after, issuer=args.issuer
            )
            with open(args.trust_list, "w", encoding="utf-8") as f:
                f.write(text)
    except OSError as e:
        ctx.usage(f"cannot write {e.filename!r}: {e.strerror}")
    fmt = "%Y-%m-%dT%H:%M:%SZ"
    nb, na = not_before.astimezone(dt.UTC).strftime(fmt), not_after.astimezone(dt.UTC).strftime(fmt)
    if ctx.json:
        ctx.emit_json(
            {
                "key_file": args.out,
                "key_id": kid,
                "public_key": pub.hex(),
                "trust_list": args.trust_list,
                "not_before": nb,
                "not_after": na,
                "issuer": args.issuer,
            }
        )
    else:
        rows = [
            ("private key", f"{args.out}  (mode 0600: keep it secret)"),
            ("key_id", kid),
            ("public_key", pub.hex()),
        ]
        if args.trust_list:
            rows.append(("trust list", f"{args.trust_list}  (valid {nb} to {na})"))
        ctx.fields(rows)
    return EXIT_OK


def cmd_issue(ctx: Ctx, args: argparse.Namespace) -> int:
    try:
        key = issuer.read_key_file(args.issuer_key)
    except OSError as e:
        ctx.usage(f"argument --key: cannot read {args.issuer_key!r}: {e.strerror}")
    except ValueError as e:
        ctx.usage(f"argument --key: {e}")
    nonce: bytes | None = None
    if args.nonce is not None:
        try:
            nonce = bytes.fromhex(args.nonce)
        except ValueError:
            nonce = b""
        if len(nonce) != 8:
            ctx.usage(f"argument --nonce: expected 16 hexadecimal digits, got {args.nonce!r}")
    issued_at_ms = args.issued_at_ms if args.issued_at_ms is not None else time.time_ns() // 1_000_000
    try:
        code = issuer.issue_code(
            key,
            credential_id=args.credential_id,
            insured_region=args.region,
            channel=channel_value(args.channel),
            issued_at_ms=issued_at_ms,
            ttl_s=args.ttl,
            presenter_id=args.presenter_id,
            nonce=nonce,
        )
    except ValueError as e:
        ctx.usage(str(e))
    if args.png:
        try:
            issuer.write_png(code, args.png, scale=args.scale)
        except OSError as e:
            ctx.usage(f"argument --png: cannot write {args.png!r}: {e.strerror}")
    if ctx.json:
        ctx.emit_json(
            {
                "code": code,
                "key_id": issuer.key_id_of(issuer.public_key_of(key)),
                "credential_id": args.credential_id,
                "presenter_id": args.presenter_id,
                "insured_region": args.region,
                "channel": args.channel,
                "issued_at_ms": issued_at_ms,
                "ttl_s": args.ttl,
                "expires_at_ms": issued_at_ms + 1000 * args.ttl,
                "png": args.png,
            }
        )
    else:
        ctx.out.write(code + "\n")
        if args.png:
            ctx.err.write(f"QR image written to {args.png}\n")
    return EXIT_OK
