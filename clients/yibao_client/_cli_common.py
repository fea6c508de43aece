"""Pieces shared by the CLI's command modules."""

from __future__ import annotations

import argparse
import json
import os
import re
import sys
import time
import unicodedata
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import IO, Any, NoReturn

from .client import Client
from .money import format_yuan, parse_fen, parse_yuan

EXIT_OK = 0
#: `yibao verify`: the call worked but the outcome is not VALID.
EXIT_NOT_VALID = 1
#: The call worked but its business outcome is not a success (not SETTLED,
#: not REFUNDED, no such account or settlement, ...): the same status 1.
EXIT_NOT_OK = EXIT_NOT_VALID
EXIT_USAGE = 2
EXIT_RPC = 3

PROVINCES = frozenset(
    "11 12 13 14 15 21 22 23 31 32 33 34 35 36 37 41 42 43 44 45 46 50 51 52 53 54 61 62 63 64 65".split()
)

Handler = Callable[["Ctx", argparse.Namespace], int]


class UsageError(Exception):
    """A mistake in what the user typed or named (exit 2)."""


class ProtocolError(Exception):
    """The node answered something the contract rules out (exit 3, like an RPC error)."""


# -- argument types (their messages name the option through argparse) --------
def hex32(text: str) -> str:
    t = text.strip()
    if not re.fullmatch(r"[0-9A-Fa-f]{32}", t):
        raise argparse.ArgumentTypeError(f"expected 32 hexadecimal digits, got {text!r}")
    return t.upper()


def institution_code(text: str) -> str:
    t = text.strip().upper()
    if not re.fullmatch(r"[HP][0-9]{11}", t):
        raise argparse.ArgumentTypeError(
            f"expected H (hospital) or P (pharmacy) and 11 digits, e.g. H44030000001; got {text!r}"
        )
    return t


def region6(text: str) -> str:
    t = text.strip()
    if not re.fullmatch(r"[0-9]{6}", t) or t[:2] not in PROVINCES:
        raise argparse.ArgumentTypeError(
            f"expected a six-digit region code (admdvs) of a province, e.g. 440300; got {text!r}"
        )
    return t


def province2(text: str) -> str:
    t = text.strip()
    if t not in PROVINCES:
        raise argparse.ArgumentTypeError(f"expected a two-digit province code, e.g. 44; got {text!r}")
    return t


def int_range(low: int, high: int) -> Callable[[str], int]:
    def parse(text: str) -> int:
        try:
            v = int(text, 10)
        except ValueError:
            raise argparse.ArgumentTypeError(f"expected a whole number, got {text!r}") from None
        if not low <= v <= high:
            raise argparse.ArgumentTypeError(f"must be {low} to {high}, got {v}")
        return v

    parse.__name__ = "int"
    return parse


def positive_seconds(text: str) -> float:
    try:
        v = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a number of seconds, got {text!r}") from None
    if not v > 0 or v != v or v == float("inf"):
        raise argparse.ArgumentTypeError(f"must be more than 0 seconds, got {text!r}")
    return v


def yuan(minimum_fen: int = 0) -> Callable[[str], int]:
    """An amount typed in yuan (``120.00``) -> int fen, exactly (money.parse_yuan)."""

    def parse(text: str) -> int:
        try:
            fen = parse_yuan(text, what="the amount")
        except ValueError as e:
            raise argparse.ArgumentTypeError(str(e)) from None
        if fen < minimum_fen:
            raise argparse.ArgumentTypeError(f"must be at least {format_yuan(minimum_fen)} yuan, got {text!r}")
        return fen

    parse.__name__ = "yuan"
    return parse


def fen(minimum_fen: int = 0) -> Callable[[str], int]:
    """A whole number of fen (``12000``)."""

    def parse(text: str) -> int:
        try:
            value = parse_fen(text, what="the amount")
        except ValueError as e:
            raise argparse.ArgumentTypeError(str(e)) from None
        if value < minimum_fen:
            raise argparse.ArgumentTypeError(f"must be at least {minimum_fen} fen, got {text!r}")
        return value

    parse.__name__ = "fen"
    return parse


def add_money(
    p: argparse.ArgumentParser,
    option: str,
    *,
    dest: str,
    help: str,
    required: bool = True,
    minimum_fen: int = 0,
) -> None:
    """``--OPTION YUAN`` or ``--OPTION-fen FEN`` (one of them), both stored in
    ``dest`` as int fen."""
    g = p.add_mutually_exclusive_group(required=required)
    g.add_argument(
        f"--{option}",
        dest=dest,
        type=yuan(minimum_fen),
        metavar="YUAN",
        help=f"{help}, in yuan (元) with at most two decimals, e.g. 120.00",
    )
    g.add_argument(
        f"--{option}-fen",
        dest=dest,
        type=fen(minimum_fen),
        metavar="FEN",
        help="the same in fen (分), a whole number, e.g. 12000",
    )


def money_text(amount_fen: int) -> str:
    """``12000`` -> ``120.00 元 (12000 fen)``."""
    return f"{format_yuan(amount_fen)} 元 ({amount_fen} fen)"


def text_id(what: str, max_chars: int = 64) -> Callable[[str], str]:
    """An id the caller chooses (order_id, refund_id): 1 to ``max_chars`` characters."""

    def parse(text: str) -> str:
        if not 1 <= len(text) <= max_chars:
            raise argparse.ArgumentTypeError(f"{what} must be 1 to {max_chars} characters, got {len(text)}")
        return text

    parse.__name__ = what
    return parse


def output_file(text: str) -> str:
    """A file the command will write: checked now, before any call is made,
    so that a typo cannot lose a receipt after the money moved."""
    path = os.path.abspath(text)
    if os.path.isdir(path):
        raise argparse.ArgumentTypeError(f"{text!r} is a directory")
    if os.path.exists(path):
        if not os.access(path, os.W_OK):
            raise argparse.ArgumentTypeError(f"cannot write {text!r}: permission denied")
    else:
        parent = os.path.dirname(path)
        if not os.path.isdir(parent):
            raise argparse.ArgumentTypeError(f"cannot write {text!r}: no directory {os.path.dirname(text)!r}")
        if not os.access(parent, os.W_OK):
            raise argparse.ArgumentTypeError(f"cannot write {text!r}: directory not writable")
    return text


def env_flag(name: str) -> bool:
    return os.environ.get(name, "").strip().lower() in ("1", "true", "yes", "on")


# -- output --------------------------------------------------------------------
def display_width(text: str) -> int:
    """Columns a terminal gives ``text`` (CJK characters take two)."""
    return sum(2 if unicodedata.east_asian_width(ch) in "WF" else 1 for ch in text)


def pad(text: str, width: int, *, right: bool = False) -> str:
    gap = " " * max(0, width - display_width(text))
    return gap + text if right else text + gap


@dataclass
class Ctx:
    """What a command handler gets besides its arguments."""

    args: argparse.Namespace
    parser: argparse.ArgumentParser
    out: IO[str] = field(default_factory=lambda: sys.stdout)
    err: IO[str] = field(default_factory=lambda: sys.stderr)
    stdin: IO[str] = field(default_factory=lambda: sys.stdin)
    #: Builds the Client (tests replace it).
    client_factory: Callable[..., Client] = Client

    @property
    def json(self) -> bool:
        return bool(getattr(self.args, "json", False))

    def usage(self, message: str) -> NoReturn:
        raise UsageError(message)

    def write_file(self, option: str, path: str, data: bytes | str) -> None:
        """Write an output file; a failure is a usage error naming ``option``."""
        raw = data.encode("utf-8") if isinstance(data, str) else data
        try:
            with open(path, "wb") as f:
                f.write(raw)
        except OSError as e:
            self.usage(f"argument {option}: cannot write {path!r}: {e.strerror}")

    def client(self) -> Client:
        a = self.args
        if a.insecure and (a.tls_ca or a.tls_cert or a.tls_key):
            self.usage("--insecure (plaintext) cannot be combined with --ca, --cert or --key")
        if bool(a.tls_cert) != bool(a.tls_key):
            self.usage("a client certificate needs both --cert and --key")
        try:
            return self.client_factory(
                a.target,
                insecure=a.insecure,
                root_certificates=a.tls_ca,
                private_key=a.tls_key,
                certificate_chain=a.tls_cert,
                timeout=a.timeout,
                retries=a.retries,
                server_name=a.server_name,
            )
        except ValueError as e:
            self.usage(str(e))

    def emit_json(self, value: Any) -> None:
        self.out.write(json.dumps(value, ensure_ascii=False, separators=(", ", ": ")) + "\n")

    def fields(self, rows: Sequence[tuple[str, str]]) -> None:
        """Aligned ``label  value`` lines."""
        width = max((display_width(k) for k, _ in rows), default=0)
        for k, v in rows:
            self.out.write(f"{pad(k, width)}  {v}\n")

    def table(self, header: Sequence[str], rows: Sequence[Sequence[str]], right: Sequence[bool]) -> None:
        cols = list(zip(header, *rows, strict=True))
        widths = [max(display_width(c) for c in col) for col in cols]
        for row in (header, *rows):
            cells = [pad(c, w, right=r) for c, w, r in zip(row, widths, right, strict=True)]
            self.out.write("  ".join(cells).rstrip() + "\n")


class Progress:
    """A one-line progress report on stderr, redrawn in place with ``\\r``
    (only when stderr is a terminal)."""

    def __init__(self, stream: IO[str], total: int | None, *, enabled: bool) -> None:
        self.stream = stream
        self.total = total
        self.enabled = enabled
        self.start = time.monotonic()
        self._last = 0.0
        self._shown = False

    def update(self, done: int, *, force: bool = False) -> None:
        if not self.enabled:
            return
        now = time.monotonic()
        if not force and now - self._last < 0.1:
            return
        self._last = now
        rate = done / max(now - self.start, 1e-9)
        if self.total:
            frac = min(done / self.total, 1.0)
            bar = "#" * int(frac * 30)
            text = f"[{bar:<30}] {frac * 100:5.1f}%  {done:,}/{self.total:,} codes  {rate:,.0f}/s"
        else:
            text = f"{done:,} codes  {rate:,.0f}/s"
        self.stream.write("\r" + text + "\x1b[K")
        self.stream.flush()
        self._shown = True

    def clear(self) -> None:
        if self._shown:
            self.stream.write("\r\x1b[K")
            self.stream.flush()
            self._shown = False
