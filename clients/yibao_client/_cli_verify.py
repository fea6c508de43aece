"""`yibao verify` and `yibao verify-file`."""

from __future__ import annotations

import argparse
import collections
import concurrent.futures
import os
import sys
import time
import uuid
from collections.abc import Callable, Iterable, Iterator
from typing import IO, BinaryIO

from yibao.v1 import verifier_pb2

from ._cli_common import (
    EXIT_NOT_VALID,
    EXIT_OK,
    Ctx,
    Progress,
    ProtocolError,
    institution_code,
    int_range,
)
from ._requests import MAX_BATCH
from .client import Client
from .codes import code_of_line, iter_code_lines
from .convert import format_time, to_dict
from .enums import (
    CHANNEL_WORDS,
    OUTCOME_WORDS,
    OUTCOMES,
    REVOCATION_WORDS,
    channel_name,
    outcome_name,
    revocation_reason_name,
)

VERIFY_HELP = """\
Check one scanned medical insurance code (医保电子凭证二维码) with the node.

Send the text exactly as the scanner read it. The answer shows the outcome
(核验结果), a sentence for the cashier, what the code says about the person,
and for a VALID code the ec_token (电子凭证令牌) to pass to settlement.

Exit status: 0 when the outcome is VALID, 1 for any other outcome (EXPIRED,
REVOKED, ...), 2 for a mistake in the command line, 3 when the call failed
(the gRPC status is printed on stderr).
"""

VERIFY_EPILOG = """\
examples:
  yibao verify 'YB1:V50HBDG8...' --institution H44030000001
  scanner-read | yibao verify - --institution H44030000001 --json
  if yibao verify "$CODE" --institution H44030000001 >/dev/null; then echo accepted; fi

Retrying with the same --request-id and code returns the first answer, not
REPLAYED, so a timed-out call can be sent again safely.
"""

VERIFY_FILE_HELP = """\
Check every code in a file, one code per line, and summarise the outcomes.

Codes may contain spaces; only the line ending (LF or CRLF) is removed from
each line, and blank lines are skipped. By default the codes go through one
VerifyStream call; with --batch N they go in VerifyBatch calls of N codes
(each retried as --retries says). A progress line is shown on stderr when it is
a terminal. At the end: a table of outcomes (count, percent) and the
throughput.

Each code gets the request id PREFIX-LINE (line number in the file). With a
fixed --request-prefix, running the same file again returns the first
answers instead of REPLAYED.

With --json: one JSON object per code line ({"line": N, "outcome": ...}),
then one {"summary": {...}} object.
"""

VERIFY_FILE_EPILOG = """\
examples:
  yibao verify-file scans.txt --institution H44030000001
  yibao verify-file scans.txt --institution H44030000001 --batch 500 --show none
  yibao --json verify-file scans.txt --institution H44030000001 > results.jsonl
"""


def register(sub: argparse._SubParsersAction, net: argparse.ArgumentParser) -> None:  # type: ignore[type-arg]
    inst_default = os.environ.get("YIBAO_INSTITUTION")
    inst_help = "your institution code (定点医药机构编码), e.g. H44030000001 (env YIBAO_INSTITUTION)"

    p = sub.add_parser(
        "verify",
        parents=[net],
        help="check one scanned code",
        description=VERIFY_HELP,
        epilog=VERIFY_EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument("code", metavar="CODE", help="the scanned text (YB1:...), or - to read it from stdin")
    p.add_argument(
        "--institution",
        type=institution_code,
        metavar="INST",
        default=inst_default,
        required=inst_default is None,
        help=inst_help,
    )
    p.add_argument(
        "--request-id",
        metavar="ID",
        help="your id for this request, 1-64 characters (default: a fresh random one)",
    )
    p.set_defaults(handler=cmd_verify, prog=p.prog)

    p = sub.add_parser(
        "verify-file",
        parents=[net],
        help="check a file of codes, one per line, and summarise",
        description=VERIFY_FILE_HELP,
        epilog=VERIFY_FILE_EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument("file", metavar="FILE", help="file of codes, one per line, or - for stdin")
    p.add_argument(
        "--institution",
        type=institution_code,
        metavar="INST",
        default=inst_default,
        required=inst_default is None,
        help=inst_help,
    )
    p.add_argument(
        "--batch",
        type=int_range(1, MAX_BATCH),
        metavar="N",
        help=f"send VerifyBatch calls of N codes (1-{MAX_BATCH}) instead of one VerifyStream",
    )
    p.add_argument(
        "--request-prefix",
        metavar="PREFIX",
        help="request ids are PREFIX-LINE (default: a random prefix per run)",
    )
    p.add_argument(
        "--show",
        choices=("all", "invalid", "none"),
        default="invalid",
        help="which codes to list before the summary (default: invalid, i.e. not VALID); "
        "ignored with --json, which lists all",
    )
    p.set_defaults(handler=cmd_verify_file, prog=p.prog)


# -- verify ----------------------------------------------------------------------
def outcome_label(outcome: int) -> str:
    name = outcome_name(outcome)
    word = OUTCOME_WORDS.get(name)
    return f"{name}  {word}" if word else name


def response_rows(r: verifier_pb2.VerifyResponse) -> list[tuple[str, str]]:
    rows = [
        ("outcome", outcome_label(r.outcome)),
        ("detail", r.detail),
        ("request_id", r.request_id),
    ]
    if r.HasField("credential"):
        c = r.credential
        ch = channel_name(c.channel)
        rows.append(("credential_id", c.credential_id))
        if c.family or c.presenter_id:
            rows.append(("presenter_id", f"{c.presenter_id}  (family account 亲情账户)"))
        rows.append(("insured_region", f"{c.insured_region}  (province {c.province})"))
        rows.append(("cross_province", "yes 异地" if r.cross_province else "no"))
        rows.append(("channel", f"{ch}  {CHANNEL_WORDS.get(ch, '')}".rstrip()))
        if c.HasField("issued_at"):
            rows.append(("issued_at", format_time(c.issued_at)))
        if c.HasField("expires_at"):
            rows.append(("expires_at", format_time(c.expires_at)))
        rows.append(("key_id", c.key_id))
        if c.nonce:
            rows.append(("nonce", c.nonce))
    if r.revocation_reason:
        reason = revocation_reason_name(r.revocation_reason)
        rows.append(("revocation", f"{reason}  {REVOCATION_WORDS.get(reason, '')}".rstrip()))
    if r.ec_token:
        rows.append(("ec_token", r.ec_token))
    if r.HasField("token_expires_at"):
        rows.append(("token_expires_at", format_time(r.token_expires_at)))
    return rows


def _read_stdin_code(stdin: IO[str]) -> str:
    # Keep the text as read, spaces included; only the line ending goes.
    text = stdin.read()
    if text.endswith("\n"):
        text = text[:-1]
        if text.endswith("\r"):
            text = text[:-1]
    return text


def cmd_verify(ctx: Ctx, args: argparse.Namespace) -> int:
    code = _read_stdin_code(ctx.stdin) if args.code == "-" else args.code
    if args.request_id is not None and not 1 <= len(args.request_id) <= 64:
        ctx.usage("argument --request-id: must be 1 to 64 characters")
    with ctx.client() as client:
        r = client.verify(code, institution_code=args.institution, request_id=args.request_id)
    if ctx.json:
        ctx.emit_json(to_dict(r))
    else:
        ctx.fields(response_rows(r))
    return EXIT_OK if r.outcome == verifier_pb2.OUTCOME_VALID else EXIT_NOT_VALID


# -- verify-file -----------------------------------------------------------------
def _open_codes(ctx: Ctx, path: str, *, count: bool) -> tuple[BinaryIO, int | None]:
    """The source, and (when ``count`` and it is a regular file) how many codes it holds."""
    if path == "-":
        return getattr(ctx.stdin, "buffer", sys.stdin.buffer), None
    try:
        f = open(path, "rb")  # noqa: SIM115 (closed by the caller)
    except OSError as e:
        ctx.usage(f"argument FILE: cannot open {path!r}: {e.strerror}")
    total: int | None = None
    if count and os.path.isfile(path):
        total = sum(1 for _ in iter_code_lines(f))
        f.seek(0)
    return f, total


def cmd_verify_file(ctx: Ctx, args: argparse.Namespace) -> int:
    prefix = args.request_prefix or uuid.uuid4().hex[:12]
    if not 1 <= len(prefix) <= 40:
        ctx.usage("argument --request-prefix: must be 1 to 40 characters")
    show_progress = ctx.err.isatty()
    source, total = _open_codes(ctx, args.file, count=show_progress)
    progress = Progress(ctx.err, total, enabled=show_progress)
    counts: collections.Counter[int] = collections.Counter()
    done = 0
    blank_lines = 0
    show = "all" if ctx.json else args.show
    started = time.monotonic()

    def handle(line: int, r: verifier_pb2.VerifyResponse) -> None:
        nonlocal done
        expected = f"{prefix}-{line}"
        if r.request_id and r.request_id != expected:
            raise ProtocolError(
                f"the node answered request {r.request_id!r} where {expected!r} was due: answers out of order"
            )
        done += 1
        counts[r.outcome] += 1
        if show == "all" or (show == "invalid" and r.outcome != verifier_pb2.OUTCOME_VALID):
            progress.clear()
            if ctx.json:
                ctx.emit_json({"line": line, **to_dict(r)})
            else:
                detail = " ".join(r.detail.split())
                ctx.out.write(f"line {line:<7} {outcome_label(r.outcome)}  {detail}\n")
        progress.update(done)

    def codes() -> Iterator[tuple[int, str]]:
        nonlocal blank_lines
        for line, raw in enumerate(source, start=1):
            code = code_of_line(raw)
            if code is None:
                blank_lines += 1
            else:
                yield line, code

    try:
        with ctx.client() as client:
            if args.batch:
                method = f"VerifyBatch x {args.batch}"
                _run_batches(client, codes(), args.institution, prefix, args.batch, handle)
            else:
                method = "VerifyStream"
                _run_stream(client, codes(), args.institution, prefix, handle)
    finally:
        progress.clear()
        if args.file != "-":
            source.close()
    _summary(ctx, counts, done, time.monotonic() - started, method, blank_lines)
    return EXIT_OK


_Handle = Callable[[int, verifier_pb2.VerifyResponse], None]
_Pending = tuple[list[int], "concurrent.futures.Future[list[verifier_pb2.VerifyResponse]]"]


def _request(line: int, code: str, institution: str, prefix: str) -> verifier_pb2.VerifyRequest:
    return verifier_pb2.VerifyRequest(code=code, institution_code=institution, request_id=f"{prefix}-{line}")


def _run_stream(
    client: Client, codes: Iterable[tuple[int, str]], institution: str, prefix: str, handle: _Handle
) -> None:
    pending: collections.deque[int] = collections.deque()

    def requests() -> Iterator[verifier_pb2.VerifyRequest]:
        for line, code in codes:
            pending.append(line)  # before the request leaves, so before its answer arrives
            yield _request(line, code, institution, prefix)

    for r in client.verify_stream(requests()):
        handle(pending.popleft(), r)


def _run_batches(
    client: Client,
    codes: Iterable[tuple[int, str]],
    institution: str,
    prefix: str,
    size: int,
    handle: _Handle,
    window: int = 4,
) -> None:
    """Chunks of ``size`` codes, up to ``window`` calls in flight, answers
    handled in file order. Each chunk is retried by the client (UNAVAILABLE and the node's refusals)."""
    inflight: collections.deque[_Pending] = collections.deque()

    def submit(chunk: list[tuple[int, str]]) -> None:
        requests = [_request(line, code, institution, prefix) for line, code in chunk]
        inflight.append(([line for line, _ in chunk], pool.submit(client.verify_batch, requests)))

    def drain_one() -> None:
        lines, fut = inflight.popleft()
        answers = fut.result()
        if len(answers) != len(lines):
            raise ProtocolError(f"the node gave {len(answers)} answers for a batch of {len(lines)}")
        for line, r in zip(lines, answers, strict=True):
            handle(line, r)

    with concurrent.futures.ThreadPoolExecutor(max_workers=window) as pool:
        try:
            chunk: list[tuple[int, str]] = []
            for item in codes:
                chunk.append(item)
                if len(chunk) == size:
                    submit(chunk)
                    chunk = []
                    if len(inflight) >= window:
                        drain_one()
            if chunk:
                submit(chunk)
            while inflight:
                drain_one()
        finally:
            for _, fut in inflight:
                fut.cancel()


def _summary(
    ctx: Ctx,
    counts: collections.Counter[int],
    done: int,
    elapsed: float,
    method: str,
    blank_lines: int,
) -> None:
    rate = done / elapsed if elapsed > 0 else 0.0
    known = [v for v in (verifier_pb2.Outcome.Value("OUTCOME_" + n) for n in OUTCOMES)]
    order = known + sorted(v for v in counts if v not in known)
    if ctx.json:
        ctx.emit_json(
            {
                "summary": {
                    "codes": done,
                    "blank_lines": blank_lines,
                    "by_outcome": {outcome_name(v): counts[v] for v in order if counts[v]},
                    "seconds": round(elapsed, 3),
                    "codes_per_second": round(rate, 1),
                    "method": method.split()[0],
                }
            }
        )
        return
    rows = [
        [outcome_name(v), OUTCOME_WORDS.get(outcome_name(v), ""), f"{counts[v]:,}", _pct(counts[v], done)]
        for v in order
        if counts[v]
    ]
    rows.append(["total", "", f"{done:,}", _pct(done, done)])
    if done:
        ctx.out.write("\n")
    ctx.table(["outcome", "", "count", "percent"], rows, right=[False, False, True, True])
    extra = f"; {blank_lines:,} blank line{'s' if blank_lines != 1 else ''} skipped" if blank_lines else ""
    ctx.out.write(f"\n{done:,} codes in {elapsed:.2f} s ({rate:,.0f} codes/s) via {method}{extra}\n")


def _pct(n: int, total: int) -> str:
    return f"{100.0 * n / total:.2f}%" if total else "-"
