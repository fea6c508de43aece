"""The `yibao` command: verify codes and administer a yibao-verify node.

``main(argv)`` returns the exit status:

- 0: success;
- 1: the call worked but its business outcome is not a success: ``verify``
  not VALID, ``settle``/``presettle`` not SETTLED, ``refund`` not REFUNDED,
  no such account or settlement;
- 2: a mistake in the command line (bad option, unreadable file, ...);
- 3: the call failed: the gRPC status code and details are printed on one
  line to stderr (with ``--json``, also as ``{"error": {...}}`` on stdout).

Each command lives in a module of its own (``_cli_verify``, ``_cli_admin``,
``_cli_account``, ``_cli_settlement``, ``_cli_audit``, ``_cli_issuer``) that
registers its subparsers.
"""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Callable, Sequence
from typing import IO

from . import _cli_account, _cli_admin, _cli_audit, _cli_issuer, _cli_settlement, _cli_verify
from ._channel import DEFAULT_TARGET, MAX_RETRIES
from ._cli_common import (
    EXIT_OK,
    EXIT_RPC,
    EXIT_USAGE,
    Ctx,
    ProtocolError,
    UsageError,
    env_flag,
    int_range,
    positive_seconds,
)
from ._version import __version__
from .client import Client
from .errors import YibaoError
from .issuer import IssuerUnavailable

__all__ = ["build_parser", "main"]

DESCRIPTION = """\
yibao: the command line client of a yibao-verify node (医保电子凭证核验节点).

A hospital or pharmacy system (HIS) checks a scanned medical insurance code
with `verify`, and gets the person's credential and an ec_token (电子凭证令牌)
for settlement. `verify-file` checks a file of codes. `presettle` and
`settle` pay a bill from the person's personal account (个人账户) with that
token, `refund` returns money of a settlement, `settlement show` reads one
back; amounts are typed in yuan (120.00) and sent as exact integer fen.
The admin commands open and freeze accounts, revoke credentials, withdraw
channel authorisations, load issuer keys and read the audit log (`audit`).
`keygen` and `issue` make demo codes offline, for testing an integration.

Connection: TLS with your client certificate (mTLS) by default; the node
reads your institution code, or the admin role, from that certificate.
Plaintext only with --insecure, against a node started with --insecure
(local demo). The connection options may come before or after the command.
"""

EPILOG = """\
environment:
  YIBAO_TARGET       default for --target
  YIBAO_INSECURE=1   same as --insecure
  YIBAO_CA, YIBAO_CERT, YIBAO_KEY
                     defaults for --ca, --cert, --key
  YIBAO_TIMEOUT      default for --timeout
  YIBAO_RETRIES      default for --retries
  YIBAO_INSTITUTION  default for --institution

exit status:
  0  success
  1  the call worked but the outcome is not a success: `verify` not VALID,
     `settle` not SETTLED, `refund` not REFUNDED, no such account/settlement
  2  a mistake in the command line
  3  the call failed (gRPC status on stderr, e.g. UNAVAILABLE: node down)

examples:
  yibao --insecure verify 'YB1:...' --institution H44030000001
  yibao --target node.example:50051 --ca ca.pem --cert his.pem --key his.key \\
      verify-file scans.txt --institution H44030000001
  yibao settle --token "$TOKEN" --institution H44030000001 --order-id HIS-0001 \\
      --total 120.00 --account-pay 100.00 --receipt-out r.bin --signature-out r.sig
  yibao refund 44000000000000000000000000000001 --refund-id HIS-R-0001 --amount 30.00 \\
      --institution H44030000001
  yibao keygen --out issuer.key --trust-list trust-list.json
  yibao issue --key issuer.key --credential-id 00112233445566778899AABBCCDDEEFF \\
      --region 440300 --channel wechat --png code.png

Run `yibao COMMAND --help` for a command's options and examples.
"""


def _network_options(p: argparse.ArgumentParser, *, suppress: bool) -> None:
    """Connection options: real defaults on the main parser; SUPPRESS on the
    subcommands, so that they may also be given after the command without
    resetting what was given before it."""

    def d(value: object) -> object:
        return argparse.SUPPRESS if suppress else value

    env = os.environ
    g = p.add_argument_group("connection")
    g.add_argument(
        "--target",
        default=d(env.get("YIBAO_TARGET", DEFAULT_TARGET)),
        metavar="HOST:PORT",
        help=f"the node's gRPC address (default {DEFAULT_TARGET}; env YIBAO_TARGET)",
    )
    g.add_argument(
        "--insecure",
        action="store_true",
        default=d(env_flag("YIBAO_INSECURE")),
        help="plaintext without certificates, for a local demo node (env YIBAO_INSECURE=1)",
    )
    g.add_argument(
        "--ca",
        dest="tls_ca",
        metavar="FILE",
        default=d(env.get("YIBAO_CA") or None),
        help="PEM file of the CA that signed the node's certificate (default: gRPC's default roots)",
    )
    g.add_argument(
        "--cert",
        dest="tls_cert",
        metavar="FILE",
        default=d(env.get("YIBAO_CERT") or None),
        help="your client certificate chain, PEM (mTLS)",
    )
    g.add_argument(
        "--key",
        dest="tls_key",
        metavar="FILE",
        default=d(env.get("YIBAO_KEY") or None),
        help="the private key of --cert, PEM",
    )
    g.add_argument(
        "--server-name",
        metavar="NAME",
        default=d(None),
        help="name to check in the node's certificate, when --target is an IP address",
    )
    g.add_argument(
        "--retries",
        type=int_range(0, MAX_RETRIES),
        metavar="N",
        default=d(_env_int("YIBAO_RETRIES", MAX_RETRIES, 0, MAX_RETRIES)),
        help=f"times to resend a call that failed with UNAVAILABLE, or that the node refused when overloaded "
        f"(RESOURCE_EXHAUSTED, CANCELLED), 0-{MAX_RETRIES} (default {MAX_RETRIES}; env YIBAO_RETRIES)",
    )
    g.add_argument(
        "--timeout",
        type=positive_seconds,
        metavar="SECONDS",
        default=d(_env_timeout()),
        help="deadline of each call, retries included (default 5; env YIBAO_TIMEOUT)",
    )


def _output_options(p: argparse.ArgumentParser, *, suppress: bool) -> None:
    p.add_argument(
        "--json",
        action="store_true",
        default=argparse.SUPPRESS if suppress else False,
        help="machine-readable output: JSON (one object per line)",
    )


def _env_int(name: str, default: int, low: int, high: int) -> int:
    try:
        return int_range(low, high)(os.environ.get(name) or str(default))
    except argparse.ArgumentTypeError:
        return default


def _env_timeout() -> float:
    text = os.environ.get("YIBAO_TIMEOUT")
    if not text:
        return 5.0
    try:
        return positive_seconds(text)
    except argparse.ArgumentTypeError:
        return 5.0


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="yibao",
        description=DESCRIPTION,
        epilog=EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--version", action="version", version=f"%(prog)s {__version__}")
    _output_options(parser, suppress=False)
    _network_options(parser, suppress=False)

    common = argparse.ArgumentParser(add_help=False)
    _output_options(common, suppress=True)
    net = argparse.ArgumentParser(add_help=False, parents=[common])
    _network_options(net, suppress=True)

    sub = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)
    _cli_verify.register(sub, net)
    _cli_settlement.register(sub, net)
    _cli_account.register(sub, net)
    _cli_audit.register(sub, net)
    _cli_admin.register(sub, net)
    _cli_issuer.register(sub, common)
    return parser


def main(
    argv: Sequence[str] | None = None,
    *,
    stdout: IO[str] | None = None,
    stderr: IO[str] | None = None,
    stdin: IO[str] | None = None,
    client_factory: Callable[..., Client] = Client,
) -> int:
    """Run the command line ``argv`` (default: sys.argv[1:]); returns the exit status."""
    out = stdout or sys.stdout
    err = stderr or sys.stderr
    parser = build_parser()
    try:
        if stdout is None and stderr is None:
            args = parser.parse_args(argv)
        else:  # argparse writes usage and errors to sys.stdout/sys.stderr
            saved = sys.stdout, sys.stderr
            sys.stdout, sys.stderr = out, err
            try:
                args = parser.parse_args(argv)
            finally:
                sys.stdout, sys.stderr = saved
    except SystemExit as e:  # --help, --version, or a usage error (2)
        return e.code if isinstance(e.code, int) else EXIT_USAGE
    ctx = Ctx(
        args=args, parser=parser, out=out, err=err, stdin=stdin or sys.stdin, client_factory=client_factory
    )
    prog = getattr(args, "prog", None) or f"yibao {args.command}"
    try:
        handler: Callable[[Ctx, argparse.Namespace], int] = args.handler
        return handler(ctx, args)
    except UsageError as e:
        err.write(f"{prog}: error: {e}\n")
        return EXIT_USAGE
    except IssuerUnavailable as e:
        err.write(f"{prog}: error: {e}\n")
        return EXIT_USAGE
    except YibaoError as e:
        hint = ""
        if e.code.name == "DEADLINE_EXCEEDED":
            hint = f" (no answer from {args.target} within {args.timeout:g} s, retries included)"
        elif e.code.name == "UNAVAILABLE":
            hint = f" (target {args.target})"
        err.write(f"{prog}: {e.one_line()}{hint}\n")
        if ctx.json:
            _safe_json(ctx, {"error": e.to_dict()})
        return EXIT_RPC
    except ProtocolError as e:
        err.write(f"{prog}: protocol error: {e}\n")
        return EXIT_RPC
    except BrokenPipeError:
        # The reader went away (`yibao ... | head`): stop quietly.
        try:
            sys.stdout = open(os.devnull, "w")  # noqa: SIM115
        except OSError:
            pass
        return EXIT_OK
    except KeyboardInterrupt:
        err.write("\ninterrupted\n")
        return 130


def _safe_json(ctx: Ctx, value: object) -> None:
    try:
        ctx.emit_json(value)
    except (OSError, ValueError):
        pass


if __name__ == "__main__":
    sys.exit(main())
