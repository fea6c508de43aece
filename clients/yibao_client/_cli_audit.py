"""`yibao audit`: read (and follow) a province's audit log (admin)."""

from __future__ import annotations

import argparse
import json
import re
import time
from collections.abc import Mapping, Sequence

from yibao.v1 import admin_pb2

from ._cli_common import EXIT_OK, Ctx, display_width, int_range, pad, positive_seconds, province2
from ._requests import MAX_AUDIT_COUNT
from .convert import format_time, to_dict

AUDIT_HELP = """\
Read a province's audit log (审计日志): every settle, refund, account
change, revocation, channel change and trust-list load, in the order the
node recorded them (each before it was answered). One line per entry: its
id, when (Beijing time, UTC+8), who (an institution code or the admin),
what, the outcome, and the details (ids; amounts in integer fen).

Entries come oldest first. By default the first --count entries of the log;
--since ID gives those after that entry (the last id of one page reads the
next); --latest gives the last --count instead of the first.

--follow keeps polling (every --interval seconds, default 1) and prints new
entries as they are appended, like `tail -f`; without --since it starts
with the last --count entries. It stops after --max-seconds, or on Ctrl-C
(exit 0).

Needs an admin identity: the admin client certificate (--cert, --key), or a
node run with --insecure for a local demo. With --json: one JSON object per
entry, with its "region".
"""

AUDIT_EPILOG = """\
examples:
  yibao audit --latest --count 20
  yibao audit --region 11 --since 1795448373532-0
  yibao audit --follow
  yibao --json audit --follow --max-seconds 3600 >> audit-44.jsonl
"""

_ENTRY_ID = re.compile(r"[0-9]{1,20}-[0-9]{1,20}", re.ASCII)
_HEADER = ("id", "when (Beijing time)", "who", "what", "outcome", "detail")
#: Least widths of the columns, so that the lines of a followed log stay aligned.
_MIN_WIDTHS = (15, 30, 12, 10, 8, 0)


def _entry_id(text: str) -> str:
    t = text.strip()
    if not _ENTRY_ID.fullmatch(t):
        raise argparse.ArgumentTypeError(f"expected an audit entry id such as 1795448373532-0, got {text!r}")
    return t


def register(sub: argparse._SubParsersAction, net: argparse.ArgumentParser) -> None:  # type: ignore[type-arg]
    p = sub.add_parser(
        "audit",
        parents=[net],
        help="read or follow a province's audit log (admin)",
        description=AUDIT_HELP,
        epilog=AUDIT_EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument(
        "--region",
        type=province2,
        help="province-level code (two digits) whose log to read (default: the node you call)",
    )
    p.add_argument("--since", type=_entry_id, metavar="ID", help="only entries after this entry id")
    p.add_argument(
        "--count",
        type=int_range(1, MAX_AUDIT_COUNT),
        default=100,
        metavar="N",
        help=f"at most N entries per read, 1-{MAX_AUDIT_COUNT:,} (default 100)",
    )
    p.add_argument("--latest", action="store_true", help="the last N entries rather than the first")
    p.add_argument("--follow", "-f", action="store_true", help="keep polling for new entries")
    p.add_argument(
        "--interval",
        type=positive_seconds,
        metavar="SECONDS",
        help="with --follow: seconds between polls (default 1)",
    )
    p.add_argument(
        "--max-seconds",
        type=positive_seconds,
        metavar="SECONDS",
        help="with --follow: stop after this many seconds (default: until Ctrl-C)",
    )
    p.set_defaults(handler=cmd_audit, prog=p.prog)


def detail_text(detail: Mapping[str, str]) -> str:
    """``a=1 b=x`` (names sorted; a value with spaces or quotes is JSON-quoted)."""
    items = sorted(dict(detail).items())
    return " ".join(f"{k}={_quote(v)}" for k, v in items)


def _quote(v: str) -> str:
    if v == "" or any(c.isspace() or c in "\"'=" for c in v):
        return json.dumps(v, ensure_ascii=False)
    return v


class _Table:
    """Rows printed as they come; column widths only grow."""

    def __init__(self, ctx: Ctx) -> None:
        self.ctx = ctx
        self.widths = list(_MIN_WIDTHS)
        self.header_done = False

    def rows(self, rows: Sequence[Sequence[str]]) -> None:
        for row in rows:
            self.widths = [max(w, display_width(c)) for w, c in zip(self.widths, row, strict=True)]
        if not self.header_done:
            self._line(_HEADER)
            self.header_done = True
        for row in rows:
            self._line(row)

    def _line(self, row: Sequence[str]) -> None:
        cells = [pad(c, w) for c, w in zip(row, self.widths, strict=True)]
        self.ctx.out.write("  ".join(cells).rstrip() + "\n")


def _row(e: admin_pb2.AuditEntry) -> list[str]:
    when = format_time(e.when) if e.HasField("when") else "-"
    return [e.id, when, e.who, e.what, e.outcome, detail_text(e.detail)]


def cmd_audit(ctx: Ctx, args: argparse.Namespace) -> int:
    if not args.follow:
        for option, value in (("--interval", args.interval), ("--max-seconds", args.max_seconds)):
            if value is not None:
                ctx.usage(f"argument {option}: only with --follow")
    interval = args.interval or 1.0
    table = _Table(ctx)

    def emit(r: admin_pb2.ReadAuditResponse) -> None:
        if ctx.json:
            for e in r.entries:
                ctx.emit_json({"region": r.region, **to_dict(e)})
        elif r.entries or args.follow:
            table.rows([_row(e) for e in r.entries])
        ctx.out.flush()

    args.region = args.region or ""
    args.since = args.since or ""
    since: str = args.since
    latest = bool(args.latest or (args.follow and not args.since))
    with ctx.client() as client:
        r = client.read_audit(args.region, since, args.count, latest)
        if not ctx.json:
            ctx.out.write(f"audit log of province {r.region or args.region or '?'} (审计日志)\n")
        emit(r)
        if not args.follow:
            if not ctx.json:
                _footer(ctx, r, args)
            return EXIT_OK
        if r.entries:
            since = r.entries[-1].id
        deadline = None if args.max_seconds is None else time.monotonic() + args.max_seconds
        got = len(r.entries)
        try:
            while True:
                if got < args.count:  # caught up: wait before the next poll
                    now = time.monotonic()
                    if deadline is not None and now >= deadline:
                        break
                    time.sleep(interval if deadline is None else min(interval, deadline - now))
                r = client.read_audit(args.region, since, args.count, False)
                emit(r)
                got = len(r.entries)
                if r.entries:
                    since = r.entries[-1].id
        except KeyboardInterrupt:
            pass  # the usual way to stop following
    return EXIT_OK


def _footer(ctx: Ctx, r: admin_pb2.ReadAuditResponse, args: argparse.Namespace) -> None:
    n = len(r.entries)
    if not n:
        ctx.out.write("no entries" + (f" after {args.since}" if args.since else "") + "\n")
        return
    text = f"\n{n:,} entr{'y' if n == 1 else 'ies'}"
    if n == args.count and not args.latest:
        region = f" --region {args.region}" if args.region else ""
        text += f"; there may be more: yibao audit{region} --since {r.entries[-1].id}"
    ctx.out.write(text + "\n")
