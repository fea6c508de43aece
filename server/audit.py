"""The per-province audit log and the Redis key names of a province's ledger.

Every Settle, Refund and account change of a province is appended to one
Redis stream, ``{r<region>}:audit``, before it is answered: the ledger's Lua
scripts (server/ledger.py) do the XADD inside the same script as the change,
so an entry exists exactly when the change does. Calls that have no ledger
script (revocations, restores, channel withdrawals) use ``append`` below. The
stream is never trimmed: it is append-only.

An entry is a flat stream record. Four fields are always there:

- ``who``: the caller (an institution code, or the admin identity);
- ``what``: the call ("Settle", "Refund", "OpenAccount", "SetAccountStatus",
  "Revoke", ...);
- ``when``: milliseconds since the Unix epoch (UTC) of the call as the node
  saw it (the same time as settled_at / refunded_at);
- ``outcome``: "SETTLED", "REFUNDED", "ACCOUNT_FROZEN", "CREATED", ...

and every other field is part of the entry's ``detail`` (string values). The
stream id (``<redis ms>-<seq>``) orders the entries and pages through them.

All keys of a province share the hash tag ``{r<region>}`` so that a Redis
Cluster keeps the whole province in one slot and every script touches one
node. The layout (``NN`` = the two-digit province code, CID = a credential
id, 32 upper-case hex; SID = a settlement id, 32 upper-case hex beginning
with NN; INST = an institution code, 12 characters):

=====================================  ======  ==========================================
key                                    type    holds
=====================================  ======  ==========================================
``{rNN}:acct:<CID>``                   hash    status, balance, opening, settled, refunded,
                                               per_payment_limit, daily_limit,
                                               insured_region, opened_at_ms, opened_by
``{rNN}:spent:<CID>``                  hash    Beijing day number -> fen paid that day
                                               (days before yesterday are pruned)
``{rNN}:order:<INST>:<order_id>``      string  SID of the SETTLED order (idempotency)
``{rNN}:setl-seq``                     string  per-province counter of settlement ids
``{rNN}:setl:<SID>``                   hash    the settlement record
``{rNN}:refunds:<SID>``                list    refund_ids of the settlement, oldest first
``{rNN}:refund:<INST>:<refund_id>``    hash    the refund record (idempotency by refund_id
                                               within the institution)
``{rNN}:audit``                        stream  the audit log
=====================================  ======  ==========================================

(``{rNN}`` reads ``{r44}`` for Guangdong.)
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import redis.asyncio as aioredis

#: Fields every audit entry has; they cannot be used as detail names.
RESERVED = ("who", "what", "when", "outcome")


def tag(region: str) -> str:
    """The hash tag shared by every key of a province: ``{r44}``."""
    return "{r" + region + "}"


def account_key(region: str, credential_id: str) -> str:
    return f"{tag(region)}:acct:{credential_id}"


def spent_key(region: str, credential_id: str) -> str:
    return f"{tag(region)}:spent:{credential_id}"


def order_key(region: str, institution_code: str, order_id: str) -> str:
    return f"{tag(region)}:order:{institution_code}:{order_id}"


def settlement_seq_key(region: str) -> str:
    return f"{tag(region)}:setl-seq"


def settlement_key(region: str, settlement_id: str) -> str:
    return f"{tag(region)}:setl:{settlement_id}"


def refunds_key(region: str, settlement_id: str) -> str:
    return f"{tag(region)}:refunds:{settlement_id}"


def refund_key(region: str, institution_code: str, refund_id: str) -> str:
    return f"{tag(region)}:refund:{institution_code}:{refund_id}"


def audit_key(region: str) -> str:
    return f"{tag(region)}:audit"


# Prefixes the Lua scripts complete with an id read inside the script (same
# hash tag, so the same Cluster slot as the keys the script declares).
def account_prefix(region: str) -> str:
    return f"{tag(region)}:acct:"


def spent_prefix(region: str) -> str:
    return f"{tag(region)}:spent:"


def settlement_prefix(region: str) -> str:
    return f"{tag(region)}:setl:"


def refund_prefix(region: str) -> str:
    """Completed with ``<INST>:<refund_id>``."""
    return f"{tag(region)}:refund:"


@dataclass(frozen=True)
class AuditEntry:
    #: The stream id, "<ms>-<seq>"; pass it as ``since`` to read what follows.
    id: str
    who: str
    what: str
    #: Milliseconds since the Unix epoch (UTC).
    when: int
    outcome: str
    detail: dict[str, str] = field(default_factory=dict)


def _s(value: object) -> str:
    return value.decode() if isinstance(value, bytes) else str(value)


def _entry(raw_id: object, fields: Mapping[object, object]) -> AuditEntry:
    f = {_s(k): _s(v) for k, v in fields.items()}
    when = f.pop("when", "0")
    return AuditEntry(
        id=_s(raw_id),
        who=f.pop("who", ""),
        what=f.pop("what", ""),
        when=int(when) if when.lstrip("-").isdigit() else 0,
        outcome=f.pop("outcome", ""),
        detail=f,
    )


async def read(
    redis: aioredis.Redis, region: str, *, since: str | None = None, count: int = 100, latest: bool = False
) -> list[AuditEntry]:
    """Audit entries of the province, oldest first.

    - ``since``: a stream id; only entries after it (exclusive) are returned,
      so the id of the last entry of one page reads the next page.
    - ``count``: at most this many entries (1 to 10,000).
    - ``latest``: the last ``count`` entries (after ``since``) instead of the
      first ones; still returned oldest first.
    """
    if not 1 <= count <= 10_000:
        raise ValueError(f"count: {count} is not 1 to 10000")
    low = "-" if since is None else "(" + since
    raw: list[Any]
    if latest:
        raw = list(reversed(await redis.xrevrange(audit_key(region), max="+", min=low, count=count) or []))
    else:
        raw = list(await redis.xrange(audit_key(region), min=low, max="+", count=count) or [])
    return [_entry(i, f or {}) for i, f in raw]


def entry(who: str, what: str, outcome: str, detail: dict, *, now_ms: int | None = None) -> dict[str, str]:
    """The fields of one audit entry. Detail values are turned into strings;
    a detail name may not be one of RESERVED. ``now_ms`` defaults to the
    node's clock."""
    if not who or not what or not outcome:
        raise ValueError("who, what and outcome must be non-empty")
    clash = [k for k in detail if k in RESERVED]
    if clash:
        raise ValueError(f"detail: {clash[0]!r} is a reserved audit field")
    if now_ms is None:
        import time

        now_ms = time.time_ns() // 1_000_000
    fields: dict[str, str] = {"who": who, "what": what, "when": str(int(now_ms)), "outcome": outcome}
    fields.update({str(k): _s(v) for k, v in detail.items()})
    return fields


async def append(
    redis: aioredis.Redis, region: str, who: str, what: str, outcome: str, detail: dict, *, now_ms: int | None = None
) -> str:
    """Append one entry (a single XADD) for a call that has no ledger script,
    e.g. a refused token; returns its stream id."""
    fields = entry(who, what, outcome, detail, now_ms=now_ms)
    return _s(await redis.xadd(audit_key(region), fields))  # type: ignore[arg-type]
