"""The personal-account ledger of one province (个人账户): accounts,
settlements, refunds and their audit entries, in Redis.

Rules this module keeps, whatever arrives and whatever fails:

- Every mutation is ONE Lua script: the checks, the change and the audit
  entry (XADD to ``{r<region>}:audit``) happen atomically, so the audit
  record exists before the answer goes out and never without the change. A
  script checks everything before its first write, and write scripts carry
  a ``#!lua`` shebang so that Redis refuses them up front when it is out of
  memory instead of failing half-way.
- Amounts are integer fen (Python ``int``). Lua numbers are doubles, exact to
  2^53, so every amount is at most ``MAX_FEN`` (10^15) and totals are kept
  with HINCRBY (64-bit integers in Redis); numbers go back into Redis only
  as decimal strings.
- Money conservation: for every account, opening − settled + refunded =
  balance, with ``settled`` and ``refunded`` kept on the account so that it
  can be checked at any time.
- Settle is idempotent by (institution_code, order_id), Refund by
  (institution_code, refund_id); only successful ones are remembered, so a
  refused call may be retried once its cause is fixed.
- PreSettle (``settle(..., dry_run=True)``) runs the same checks in a
  ``no-writes`` script: Redis itself refuses any write from it.

Redis errors (``redis.exceptions.RedisError``, ``OSError``) propagate: the
caller answers UNAVAILABLE. After a timeout, or ``redis_pipe.NotReplicated``
(the write ran on the primary, but no replica acknowledged it in time), the
script may or may not have taken effect; retrying with the same order_id /
refund_id is always safe, and its answer is the durable one.

The key layout is in server/audit.py.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass, field
from typing import Any

import redis.asyncio as aioredis

from server import audit, redis_pipe
from server.config import PROVINCES
from server.receipts import items_digest as compute_items_digest

#: Largest amount accepted anywhere (10^15 fen = 10^13 yuan): Lua doubles are
#: exact far beyond every sum the scripts compute from such amounts.
MAX_FEN = 10**15
#: Milliseconds in a day, and China Standard Time's offset (UTC+8, no DST).
DAY_MS = 86_400_000
BEIJING_OFFSET_MS = 8 * 3_600_000

ACTIVE = "ACTIVE"
FROZEN = "FROZEN"
STATUSES = (ACTIVE, FROZEN)

SETTLED = "SETTLED"
ACCOUNT_NOT_FOUND = "ACCOUNT_NOT_FOUND"
ACCOUNT_FROZEN = "ACCOUNT_FROZEN"
INSUFFICIENT_BALANCE = "INSUFFICIENT_BALANCE"
LIMIT_EXCEEDED = "LIMIT_EXCEEDED"
ORDER_CONFLICT = "ORDER_CONFLICT"
SETTLE_OUTCOMES = (SETTLED, ACCOUNT_NOT_FOUND, ACCOUNT_FROZEN, INSUFFICIENT_BALANCE, LIMIT_EXCEEDED, ORDER_CONFLICT)

REFUNDED = "REFUNDED"
NOT_FOUND = "NOT_FOUND"
EXCEEDS_REMAINING = "EXCEEDS_REMAINING"
NOT_PERMITTED = "NOT_PERMITTED"
REFUND_CONFLICT = "REFUND_CONFLICT"
REFUND_OUTCOMES = (REFUNDED, NOT_FOUND, EXCEEDS_REMAINING, NOT_PERMITTED, REFUND_CONFLICT)

MAX_ITEMS = 1000
MAX_ITEM_TEXT = 256

_HEX32 = re.compile(r"[0-9A-Fa-f]{32}")
_HEX64 = re.compile(r"[0-9A-Fa-f]{64}")
_INSTITUTION = re.compile(r"[HP][0-9]{11}")
_REGION6 = re.compile(r"[0-9]{6}")


class InvalidInput(ValueError):
    """An input out of form (INVALID_ARGUMENT): ``field`` names it, e.g.
    "account_pay_fen" or "items[2].amount_fen"; str() is "<field>: <why>"."""

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.field = message.split(":", 1)[0]


def beijing_day(now_ms: int) -> int:
    """The day number (days since 1970-01-01) in China Standard Time."""
    return (now_ms + BEIJING_OFFSET_MS) // DAY_MS


# --------------------------------------------------------------------------
# Data
# --------------------------------------------------------------------------


@dataclass(frozen=True)
class Item:
    """One bill line (SettleItem): informational, stored with the settlement."""

    item_code: str = ""
    name: str = ""
    quantity_milli: int = 0
    unit: str = ""
    unit_price_fen: int = 0
    amount_fen: int = 0


@dataclass(frozen=True)
class Account:
    credential_id: str
    status: str  # "ACTIVE" or "FROZEN"
    balance_fen: int
    per_payment_limit_fen: int
    daily_limit_fen: int
    opening_balance_fen: int
    #: Paid on the Beijing day of the ``now_ms`` the account was read at.
    spent_today_fen: int
    settled_total_fen: int
    refunded_total_fen: int
    #: Six digits, or "" when the account was opened without one.
    insured_region: str = ""
    opened_at_ms: int = 0


@dataclass(frozen=True)
class Refund:
    refund_id: str
    settlement_id: str
    institution_code: str
    credential_id: str
    amount_fen: int
    #: The account's balance right after this refund.
    balance_after_fen: int
    #: What was left to refund of the settlement right after this refund.
    remaining_fen: int
    refunded_at_ms: int
    settled_region: str


@dataclass(frozen=True)
class Settlement:
    settlement_id: str
    institution_code: str
    order_id: str
    credential_id: str
    insured_region: str
    total_fen: int
    account_pay_fen: int
    cash_pay_fen: int
    #: The account's balance right after the settlement.
    balance_after_fen: int
    settled_at_ms: int
    settled_region: str
    #: 64 lower-case hex digits: SM3 of the items (receipts.items_digest).
    items_digest: str
    items: tuple[Item, ...] = ()
    #: Sum of the refunds so far (at the time the record was read).
    refunded_fen: int = 0
    #: Filled by get_settlement only (oldest first); empty elsewhere.
    refunds: tuple[Refund, ...] = ()


@dataclass(frozen=True)
class SettleInput:
    institution_code: str
    order_id: str
    credential_id: str
    #: The insured region (参保地) from the ec_token: six digits whose first
    #: two are this ledger's region.
    insured_region: str
    total_fen: int
    account_pay_fen: int
    #: SM3 of the items as receipts.items_digest computes it, 64 hex digits.
    #: "" lets the ledger compute it from ``items``; when both are given
    #: they must agree.
    items_digest: str
    now_ms: int
    #: Who asks (the institution code, or the admin identity): for the audit.
    actor: str
    items: tuple[Item, ...] = ()


@dataclass(frozen=True)
class SettleResult:
    #: One of SETTLE_OUTCOMES.
    outcome: str
    order_id: str
    #: "" unless SETTLED by Settle (PreSettle records nothing).
    settlement_id: str = ""
    #: The amounts are set when outcome is SETTLED (also for PreSettle).
    account_pay_fen: int = 0
    cash_pay_fen: int = 0
    #: SETTLED: the balance after the payment (for a replay: as recorded
    #: then). ACCOUNT_FROZEN / LIMIT_EXCEEDED / INSUFFICIENT_BALANCE: the
    #: balance, unchanged. Otherwise 0.
    balance_after_fen: int = 0
    #: 0 unless SETTLED by Settle.
    settled_at_ms: int = 0
    settled_region: str = ""
    #: A sentence for the cashier's screen.
    detail: str = ""
    #: True when this is the answer to a retry of an order already settled
    #: (for metrics: no money moved). Not part of equality: a retry's result
    #: equals the first one.
    replayed: bool = field(default=False, compare=False)
    #: The full record when SETTLED by Settle (for the receipt).
    settlement: Settlement | None = None


@dataclass(frozen=True)
class RefundInput:
    settlement_id: str
    refund_id: str
    amount_fen: int
    institution_code: str
    now_ms: int
    actor: str


@dataclass(frozen=True)
class RefundResult:
    #: One of REFUND_OUTCOMES.
    outcome: str
    refund_id: str
    settlement_id: str
    #: REFUNDED: the amount returned; otherwise 0.
    amount_fen: int = 0
    #: REFUNDED: the balance right after the refund (for a replay: as
    #: recorded then); otherwise 0.
    balance_after_fen: int = 0
    #: REFUNDED: what is left to refund after this refund (as recorded);
    #: EXCEEDS_REMAINING: what is left now; otherwise 0.
    remaining_fen: int = 0
    #: 0 unless REFUNDED.
    refunded_at_ms: int = 0
    detail: str = ""
    #: True when this answers a retry of a refund already made; not part of
    #: equality.
    replayed: bool = field(default=False, compare=False)
    #: The full record when REFUNDED (for the receipt).
    refund: Refund | None = None


# --------------------------------------------------------------------------
# Lua
# --------------------------------------------------------------------------

# Shared helpers. Numbers go back to Redis only through fmt() (%d of a
# double below 2^53 is exact; tostring() would print 1e+15).
_LUA_COMMON = r"""
local function fmt(n) return string.format('%d', n) end
local function tohash(flat)
  local h = {}
  for i = 1, #flat, 2 do h[flat[i]] = flat[i + 1] end
  return h
end
"""

# KEYS: 1 account, 2 spent-by-day, 3 order index, 4 settlement counter, 5 audit
# ARGV: 1 institution, 2 order_id, 3 credential_id, 4 insured_region,
#   5 total, 6 account_pay, 7 -account_pay, 8 cash_pay, 9 items_digest,
#   10 now_ms, 11 beijing day, 12 actor, 13 region, 14 settlement key prefix,
#   15 items json, 16 dry ('1' / '0')
# Returns {outcome, replayed, settlement-record-flat, balance, spent_today,
#   per_payment_limit, daily_limit}; for a new settlement, the record's
#   settlement_id, balance_after_fen and settled_region only.
_SETTLE_BODY = (
    _LUA_COMMON
    + r"""
local inst, order, cid = ARGV[1], ARGV[2], ARGV[3]
local pay = tonumber(ARGV[6])
local dry = ARGV[16] == '1'
local function audit(outcome, ...)
  if dry then return end
  redis.call('XADD', KEYS[5], '*', 'who', ARGV[12], 'what', 'Settle', 'when', ARGV[10], 'outcome', outcome,
    'institution_code', inst, 'order_id', order, 'credential_id', cid, 'total_fen', ARGV[5],
    'account_pay_fen', ARGV[6], ...)
end

local sid = redis.call('GET', KEYS[3])
if sid then
  local flat = redis.call('HGETALL', ARGV[14] .. sid)
  if #flat == 0 then return redis.error_reply('ledger: order index ' .. KEYS[3] .. ' names no settlement') end
  local h = tohash(flat)
  if h.credential_id == cid and h.total_fen == ARGV[5] and h.account_pay_fen == ARGV[6]
      and h.items_digest == ARGV[9] then
    audit('SETTLED', 'settlement_id', sid, 'balance_after_fen', h.balance_after_fen, 'replayed', '1')
    return {'SETTLED', '1', flat, '', '', '', ''}
  end
  audit('ORDER_CONFLICT', 'settlement_id', sid)
  return {'ORDER_CONFLICT', '0', {}, '', '', '', ''}
end

local a = redis.call('HMGET', KEYS[1], 'status', 'balance', 'per_payment_limit', 'daily_limit')
if not a[1] then
  audit('ACCOUNT_NOT_FOUND')
  return {'ACCOUNT_NOT_FOUND', '0', {}, '', '', '', ''}
end
local bal, per, daily = a[2], a[3], a[4]
local spent = redis.call('HGET', KEYS[2], ARGV[11]) or '0'
local function refuse(outcome, why)
  audit(outcome, 'reason', why, 'balance_fen', bal)
  return {outcome, '0', {}, bal, spent, per, daily}
end
if a[1] ~= 'ACTIVE' then return refuse('ACCOUNT_FROZEN', 'status ' .. a[1]) end
if pay > tonumber(per) then return refuse('LIMIT_EXCEEDED', 'per_payment') end
if tonumber(spent) + pay > tonumber(daily) then return refuse('LIMIT_EXCEEDED', 'daily') end
if pay > tonumber(bal) then return refuse('INSUFFICIENT_BALANCE', 'balance') end
if dry then return {'SETTLED', '0', {}, bal, spent, per, daily} end

local n = redis.call('INCR', KEYS[4])
sid = ARGV[13] .. string.format('%030X', n)
local skey = ARGV[14] .. sid
redis.call('HINCRBY', KEYS[1], 'balance', ARGV[7])
redis.call('HINCRBY', KEYS[1], 'settled', ARGV[6])
redis.call('HINCRBY', KEYS[2], ARGV[11], ARGV[6])
local today = tonumber(ARGV[11])
for _, d in ipairs(redis.call('HKEYS', KEYS[2])) do
  if tonumber(d) < today - 1 then redis.call('HDEL', KEYS[2], d) end
end
local after = redis.call('HGET', KEYS[1], 'balance')
redis.call('HSET', skey, 'settlement_id', sid, 'institution_code', inst, 'order_id', order,
  'credential_id', cid, 'insured_region', ARGV[4], 'total_fen', ARGV[5], 'account_pay_fen', ARGV[6],
  'cash_pay_fen', ARGV[8], 'balance_after_fen', after, 'settled_at_ms', ARGV[10], 'day', ARGV[11],
  'settled_region', ARGV[13], 'items_digest', ARGV[9], 'items', ARGV[15], 'refunded_fen', '0',
  'actor', ARGV[12])
redis.call('SET', KEYS[3], sid)
audit('SETTLED', 'settlement_id', sid, 'balance_after_fen', after, 'replayed', '0')
-- The caller has everything else of the new record: no need to read it back.
return {'SETTLED', '0', {'settlement_id', sid, 'balance_after_fen', after, 'settled_region', ARGV[13]}, after,
  '', '', ''}
"""
)
_SETTLE = "#!lua\n" + _SETTLE_BODY
_PRESETTLE = "#!lua flags=no-writes\n" + _SETTLE_BODY

# KEYS: 1 settlement, 2 refund record, 3 refund list, 4 audit
# ARGV: 1 settlement_id, 2 refund_id, 3 amount, 4 -amount, 5 institution,
#   6 now_ms, 7 beijing day, 8 actor, 9 account key prefix, 10 spent key prefix
# Returns {outcome, replayed, refund-record-flat, remaining}.
_REFUND = (
    "#!lua\n"
    + _LUA_COMMON
    + r"""
local function audit(outcome, ...)
  redis.call('XADD', KEYS[4], '*', 'who', ARGV[8], 'what', 'Refund', 'when', ARGV[6], 'outcome', outcome,
    'settlement_id', ARGV[1], 'refund_id', ARGV[2], 'amount_fen', ARGV[3], 'institution_code', ARGV[5], ...)
end
local s = redis.call('HMGET', KEYS[1], 'institution_code', 'credential_id', 'account_pay_fen', 'refunded_fen',
  'day', 'settled_region')
if not s[1] then
  audit('NOT_FOUND')
  return {'NOT_FOUND', '0', {}, '0'}
end
if s[1] ~= ARGV[5] then
  audit('NOT_PERMITTED')
  return {'NOT_PERMITTED', '0', {}, '0'}
end
local prior = redis.call('HGETALL', KEYS[2])
if #prior > 0 then
  local h = tohash(prior)
  if h.settlement_id == ARGV[1] and h.amount_fen == ARGV[3] then
    audit('REFUNDED', 'balance_after_fen', h.balance_after_fen, 'replayed', '1')
    return {'REFUNDED', '1', prior, h.remaining_fen}
  end
  audit('REFUND_CONFLICT', 'first_settlement_id', h.settlement_id, 'first_amount_fen', h.amount_fen)
  return {'REFUND_CONFLICT', '0', {}, '0'}
end
local amount = tonumber(ARGV[3])
local remaining = tonumber(s[3]) - tonumber(s[4])
if amount > remaining then
  audit('EXCEEDS_REMAINING', 'remaining_fen', fmt(remaining))
  return {'EXCEEDS_REMAINING', '0', {}, fmt(remaining)}
end

local akey = ARGV[9] .. s[2]
local refunded = redis.call('HINCRBY', KEYS[1], 'refunded_fen', ARGV[3])
redis.call('HINCRBY', akey, 'balance', ARGV[3])
redis.call('HINCRBY', akey, 'refunded', ARGV[3])
if s[5] == ARGV[7] then
  -- refunded on the Beijing day of the settlement: that day's spending shrinks
  local dkey = ARGV[10] .. s[2]
  local cur = tonumber(redis.call('HGET', dkey, ARGV[7]) or '0')
  if cur >= amount then
    redis.call('HINCRBY', dkey, ARGV[7], ARGV[4])
  elseif cur > 0 then
    redis.call('HSET', dkey, ARGV[7], '0')
  end
end
local after = redis.call('HGET', akey, 'balance')
local left = fmt(tonumber(s[3]) - refunded)
redis.call('HSET', KEYS[2], 'refund_id', ARGV[2], 'settlement_id', ARGV[1], 'institution_code', ARGV[5],
  'credential_id', s[2], 'amount_fen', ARGV[3], 'balance_after_fen', after, 'remaining_fen', left,
  'refunded_at_ms', ARGV[6], 'settled_region', s[6], 'actor', ARGV[8])
redis.call('RPUSH', KEYS[3], ARGV[2])
audit('REFUNDED', 'balance_after_fen', after, 'remaining_fen', left, 'replayed', '0')
return {'REFUNDED', '0', redis.call('HGETALL', KEYS[2]), left}
"""
)

# KEYS: 1 account, 2 spent-by-day, 3 audit
# ARGV: 1 balance, 2 per_payment_limit, 3 daily_limit, 4 now_ms, 5 actor,
#   6 credential_id, 7 insured_region, 8 beijing day
_OPEN = (
    "#!lua\n"
    + r"""
if redis.call('EXISTS', KEYS[1]) == 1 then
  redis.call('XADD', KEYS[3], '*', 'who', ARGV[5], 'what', 'OpenAccount', 'when', ARGV[4], 'outcome', 'EXISTS',
    'credential_id', ARGV[6])
  return {0, redis.call('HGETALL', KEYS[1]), redis.call('HGET', KEYS[2], ARGV[8]) or '0'}
end
redis.call('HSET', KEYS[1], 'status', 'ACTIVE', 'balance', ARGV[1], 'opening', ARGV[1], 'settled', '0',
  'refunded', '0', 'per_payment_limit', ARGV[2], 'daily_limit', ARGV[3], 'insured_region', ARGV[7],
  'opened_at_ms', ARGV[4], 'opened_by', ARGV[5])
redis.call('XADD', KEYS[3], '*', 'who', ARGV[5], 'what', 'OpenAccount', 'when', ARGV[4], 'outcome', 'CREATED',
  'credential_id', ARGV[6], 'balance_fen', ARGV[1], 'per_payment_limit_fen', ARGV[2],
  'daily_limit_fen', ARGV[3], 'insured_region', ARGV[7])
return {1, redis.call('HGETALL', KEYS[1]), redis.call('HGET', KEYS[2], ARGV[8]) or '0'}
"""
)

# KEYS: 1 account, 2 spent-by-day, 3 audit
# ARGV: 1 status, 2 now_ms, 3 actor, 4 credential_id, 5 beijing day
_SET_STATUS = (
    "#!lua\n"
    + r"""
local before = redis.call('HGET', KEYS[1], 'status')
if not before then
  redis.call('XADD', KEYS[3], '*', 'who', ARGV[3], 'what', 'SetAccountStatus', 'when', ARGV[2],
    'outcome', 'NOT_FOUND', 'credential_id', ARGV[4], 'status', ARGV[1])
  return {0, {}, '0'}
end
redis.call('HSET', KEYS[1], 'status', ARGV[1])
redis.call('XADD', KEYS[3], '*', 'who', ARGV[3], 'what', 'SetAccountStatus', 'when', ARGV[2],
  'outcome', ARGV[1], 'credential_id', ARGV[4], 'before', before)
return {1, redis.call('HGETALL', KEYS[1]), redis.call('HGET', KEYS[2], ARGV[5]) or '0'}
"""
)

# KEYS: 1 account, 2 spent-by-day; ARGV: 1 beijing day
_GET_ACCOUNT = (
    "#!lua flags=no-writes\n"
    + r"""
return {redis.call('HGETALL', KEYS[1]), redis.call('HGET', KEYS[2], ARGV[1]) or '0'}
"""
)

# KEYS: 1 settlement, 2 refund list; ARGV: 1 refund key prefix (with the
# settling institution appended inside)
_GET_SETTLEMENT = (
    "#!lua flags=no-writes\n"
    + r"""
local flat = redis.call('HGETALL', KEYS[1])
if #flat == 0 then return {{}, {}} end
local inst
for i = 1, #flat, 2 do if flat[i] == 'institution_code' then inst = flat[i + 1] end end
local refunds = {}
for i, rid in ipairs(redis.call('LRANGE', KEYS[2], 0, -1)) do
  refunds[i] = redis.call('HGETALL', ARGV[1] .. inst .. ':' .. rid)
end
return {flat, refunds}
"""
)


# --------------------------------------------------------------------------
# Input checks (ValueError naming the field)
# --------------------------------------------------------------------------


def check_bill(total_fen: object, account_pay_fen: object, items: object) -> tuple[Item, ...]:
    """The bill's own rules, which hold whatever the token: a total of at
    least 1 fen, 0 <= account_pay <= total, and items (if any) adding up to
    the total. Raises InvalidInput naming the field."""
    total = _fen(total_fen, "total_fen", minimum=1)
    pay = _fen(account_pay_fen, "account_pay_fen")
    if pay > total:
        raise InvalidInput(f"account_pay_fen: {pay} is more than total_fen {total}")
    return _items(items, total)


def _fen(value: object, name: str, *, minimum: int = 0) -> int:
    if isinstance(value, bool) or not isinstance(value, int):
        raise InvalidInput(f"{name}: must be an integer number of fen, got {type(value).__name__}")
    if value < minimum:
        raise InvalidInput(f"{name}: {value} is below {minimum}")
    if value > MAX_FEN:
        raise InvalidInput(f"{name}: {value} fen is above the maximum of {MAX_FEN}")
    return value


def _int(value: object, name: str, lo: int, hi: int) -> int:
    if isinstance(value, bool) or not isinstance(value, int):
        raise InvalidInput(f"{name}: must be an integer, got {type(value).__name__}")
    if not lo <= value <= hi:
        raise InvalidInput(f"{name}: {value} is not in {lo}..{hi}")
    return value


def _now(value: object, name: str = "now_ms") -> int:
    return _int(value, name, 0, 2**53)


def _text(value: object, name: str, max_chars: int = 64) -> str:
    if not isinstance(value, str) or not value:
        raise InvalidInput(f"{name}: must be a non-empty string")
    if len(value) > max_chars:
        raise InvalidInput(f"{name}: {len(value)} characters, at most {max_chars}")
    return value


def _credential_id(value: object, name: str = "credential_id") -> str:
    if not isinstance(value, str) or not _HEX32.fullmatch(value):
        raise InvalidInput(f"{name}: {str(value)[:40]!r} is not 32 hexadecimal digits")
    return value.upper()


def _institution(value: object, name: str = "institution_code") -> str:
    if not isinstance(value, str) or not _INSTITUTION.fullmatch(value):
        raise InvalidInput(f"{name}: {str(value)[:40]!r} is not H or P followed by 11 digits")
    return value


def _status(value: object) -> str:
    if value not in STATUSES:
        raise InvalidInput(f"status: {value!r} is not one of {', '.join(STATUSES)}")
    return value  # type: ignore[return-value]


def _items(items: object, total_fen: int) -> tuple[Item, ...]:
    if not isinstance(items, (tuple, list)):
        raise InvalidInput("items: must be a tuple of Item")
    if len(items) > MAX_ITEMS:
        raise InvalidInput(f"items: {len(items)} lines, at most {MAX_ITEMS}")
    out = []
    for i, it in enumerate(items):
        where = f"items[{i}]"
        if not isinstance(it, Item):
            raise InvalidInput(f"{where}: must be an Item")
        for name in ("item_code", "name", "unit"):
            v = getattr(it, name)
            if not isinstance(v, str) or len(v) > MAX_ITEM_TEXT:
                raise InvalidInput(f"{where}.{name}: must be a string of at most {MAX_ITEM_TEXT} characters")
        _int(it.quantity_milli, f"{where}.quantity_milli", 0, 2**63 - 1)
        _fen(it.unit_price_fen, f"{where}.unit_price_fen")
        _fen(it.amount_fen, f"{where}.amount_fen")
        out.append(it)
    if out and sum(it.amount_fen for it in out) != total_fen:
        raise InvalidInput(
            f"items: the lines add up to {sum(it.amount_fen for it in out)} fen, not total_fen {total_fen}"
        )
    return tuple(out)


def _items_json(items: tuple[Item, ...]) -> str:
    return json.dumps(
        [[it.item_code, it.name, it.quantity_milli, it.unit, it.unit_price_fen, it.amount_fen] for it in items],
        ensure_ascii=False,
        separators=(",", ":"),
    )


def _items_from_json(text: str) -> tuple[Item, ...]:
    if not text:
        return ()
    return tuple(Item(*row) for row in json.loads(text))


# --------------------------------------------------------------------------
# Decoding replies
# --------------------------------------------------------------------------


def _s(value: Any) -> str:
    return value.decode() if isinstance(value, bytes) else str(value)


def _hash(flat: list[Any]) -> dict[str, str]:
    return {_s(flat[i]): _s(flat[i + 1]) for i in range(0, len(flat), 2)}


def _settlement(h: dict[str, str], refunds: tuple[Refund, ...] = ()) -> Settlement:
    return Settlement(
        settlement_id=h["settlement_id"],
        institution_code=h["institution_code"],
        order_id=h["order_id"],
        credential_id=h["credential_id"],
        insured_region=h["insured_region"],
        total_fen=int(h["total_fen"]),
        account_pay_fen=int(h["account_pay_fen"]),
        cash_pay_fen=int(h["cash_pay_fen"]),
        balance_after_fen=int(h["balance_after_fen"]),
        settled_at_ms=int(h["settled_at_ms"]),
        settled_region=h["settled_region"],
        items_digest=h["items_digest"],
        items=_items_from_json(h.get("items", "")),
        refunded_fen=int(h["refunded_fen"]),
        refunds=refunds,
    )


def _new_settlement(req: SettleInput, h: dict[str, str]) -> Settlement:
    """The record the settle script has just written for `req` (checked)."""
    return Settlement(
        settlement_id=h["settlement_id"],
        institution_code=req.institution_code,
        order_id=req.order_id,
        credential_id=req.credential_id,
        insured_region=req.insured_region,
        total_fen=req.total_fen,
        account_pay_fen=req.account_pay_fen,
        cash_pay_fen=req.total_fen - req.account_pay_fen,
        balance_after_fen=int(h["balance_after_fen"]),
        settled_at_ms=req.now_ms,
        settled_region=h["settled_region"],
        items_digest=req.items_digest,
        items=req.items,
    )


def _refund(h: dict[str, str]) -> Refund:
    return Refund(
        refund_id=h["refund_id"],
        settlement_id=h["settlement_id"],
        institution_code=h["institution_code"],
        credential_id=h["credential_id"],
        amount_fen=int(h["amount_fen"]),
        balance_after_fen=int(h["balance_after_fen"]),
        remaining_fen=int(h["remaining_fen"]),
        refunded_at_ms=int(h["refunded_at_ms"]),
        settled_region=h["settled_region"],
    )


def _account(credential_id: str, h: dict[str, str], spent: Any) -> Account:
    return Account(
        credential_id=credential_id,
        status=h["status"],
        balance_fen=int(h["balance"]),
        per_payment_limit_fen=int(h["per_payment_limit"]),
        daily_limit_fen=int(h["daily_limit"]),
        opening_balance_fen=int(h["opening"]),
        spent_today_fen=int(_s(spent)),
        settled_total_fen=int(h["settled"]),
        refunded_total_fen=int(h["refunded"]),
        insured_region=h.get("insured_region", ""),
        opened_at_ms=int(h.get("opened_at_ms", "0")),
    )


def _yuan(fen: int) -> str:
    return f"{fen // 100}.{fen % 100:02d}"


# --------------------------------------------------------------------------
# The ledger
# --------------------------------------------------------------------------


class Ledger:
    """The accounts, settlements and refunds of ONE province, in Redis."""

    def __init__(self, redis: aioredis.Redis, region: str, pipe: redis_pipe.RedisPipe | None = None) -> None:
        """`pipe`, a pipelined connection to the same Redis as `redis` (for
        a cluster: to the primary of this province's slot), runs the scripts
        (a Settle is one script: redis-py's overhead per command was a sixth
        of its CPU); without it, `redis` does. Through the pipe, a write is
        answered only once the replicas the pipe requires hold it
        (NotReplicated otherwise): what was answered SETTLED survives a
        failover."""
        if region not in PROVINCES:
            raise InvalidInput(f"region: {region!r} is not a province-level code")
        self.redis = redis
        self.region = region
        self._pipe = pipe

        def script(source: str, *, durable: bool = False) -> Any:
            if pipe is None:
                return redis.register_script(source)
            return redis_pipe.Script(pipe, source, durable=durable)

        self._settle = script(_SETTLE, durable=True)
        self._presettle = script(_PRESETTLE)
        self._refund = script(_REFUND, durable=True)
        self._open = script(_OPEN, durable=True)
        self._set_status = script(_SET_STATUS, durable=True)
        self._get_account = script(_GET_ACCOUNT)
        self._get_settlement = script(_GET_SETTLEMENT)

    async def append_audit(self, who: str, what: str, outcome: str, detail: dict) -> str:
        """Append an audit entry for a call that has no ledger script (an
        admin revocation), durable like the ledger's own writes."""
        fields = audit.entry(who, what, outcome, detail)
        if self._pipe is None:
            return _s(await self.redis.xadd(audit.audit_key(self.region), fields))  # type: ignore[arg-type]
        flat = [x for pair in fields.items() for x in pair]
        return _s(await self._pipe.execute_durable("XADD", audit.audit_key(self.region), "*", *flat))

    # --- accounts ---

    def _insured_region(self, value: object, *, optional: bool) -> str:
        if optional and value == "":
            return ""
        if not isinstance(value, str) or not _REGION6.fullmatch(value):
            raise InvalidInput(f"insured_region: {str(value)[:40]!r} is not six digits")
        if value[:2] != self.region:
            raise InvalidInput(f"insured_region: {value} is not in province {self.region}, which this ledger keeps")
        return value

    async def open_account(
        self,
        credential_id: str,
        *,
        balance_fen: int,
        per_payment_limit_fen: int,
        daily_limit_fen: int,
        actor: str,
        now_ms: int,
        insured_region: str = "",
    ) -> tuple[bool, Account]:
        """Open an account (idempotent). An existing account is returned as
        it is, never reset: (False, account)."""
        cid = _credential_id(credential_id)
        balance = _fen(balance_fen, "balance_fen")
        per = _fen(per_payment_limit_fen, "per_payment_limit_fen", minimum=1)
        daily = _fen(daily_limit_fen, "daily_limit_fen", minimum=1)
        actor = _text(actor, "actor", 256)
        now = _now(now_ms)
        region6 = self._insured_region(insured_region, optional=True)
        created, flat, spent = await self._open(
            keys=[audit.account_key(self.region, cid), audit.spent_key(self.region, cid), audit.audit_key(self.region)],
            args=[str(balance), str(per), str(daily), str(now), actor, cid, region6, str(beijing_day(now))],
        )
        return bool(int(created)), _account(cid, _hash(flat), spent)

    async def get_account(self, credential_id: str, now_ms: int) -> Account | None:
        cid = _credential_id(credential_id)
        flat, spent = await self._get_account(
            keys=[audit.account_key(self.region, cid), audit.spent_key(self.region, cid)],
            args=[str(beijing_day(_now(now_ms)))],
        )
        return _account(cid, _hash(flat), spent) if flat else None

    async def set_status(self, credential_id: str, status: str, *, actor: str, now_ms: int) -> Account | None:
        """Freeze or unfreeze; None (and nothing changed) if there is no such account."""
        cid = _credential_id(credential_id)
        status = _status(status)
        actor = _text(actor, "actor", 256)
        now = _now(now_ms)
        found, flat, spent = await self._set_status(
            keys=[audit.account_key(self.region, cid), audit.spent_key(self.region, cid), audit.audit_key(self.region)],
            args=[status, str(now), actor, cid, str(beijing_day(now))],
        )
        return _account(cid, _hash(flat), spent) if int(found) else None

    # --- settlements ---

    def _check_settle(self, req: SettleInput) -> tuple[SettleInput, str]:
        if not isinstance(req, SettleInput):
            raise InvalidInput("req: must be a SettleInput")
        inst = _institution(req.institution_code)
        order = _text(req.order_id, "order_id")
        cid = _credential_id(req.credential_id)
        region6 = self._insured_region(req.insured_region, optional=False)
        items = check_bill(req.total_fen, req.account_pay_fen, req.items)
        total, pay = req.total_fen, req.account_pay_fen
        now = _now(req.now_ms)
        actor = _text(req.actor, "actor", 256)
        digest = req.items_digest
        if not isinstance(digest, str) or (digest and not _HEX64.fullmatch(digest)):
            raise InvalidInput("items_digest: must be 64 hexadecimal digits (SM3 of the items), or empty")
        digest = digest.lower()
        if items or not digest:
            computed = compute_items_digest(items)
            if digest and digest != computed:
                raise InvalidInput("items_digest: does not match the items (receipts.items_digest)")
            digest = computed
        clean = SettleInput(
            institution_code=inst,
            order_id=order,
            credential_id=cid,
            insured_region=region6,
            total_fen=total,
            account_pay_fen=pay,
            items_digest=digest,
            now_ms=now,
            actor=actor,
            items=items,
        )
        return clean, _items_json(items)

    async def settle(self, req: SettleInput, *, dry_run: bool) -> SettleResult:
        """Settle, or with ``dry_run`` PreSettle (the same checks in a
        no-writes script: nothing is written, not even audit).

        In order, atomically: an order already SETTLED under
        (institution_code, order_id) with the same content (credential_id,
        total_fen, account_pay_fen, items_digest) is returned unchanged
        (``replayed``; PreSettle then answers its amounts without its id),
        with other content ORDER_CONFLICT; then ACCOUNT_NOT_FOUND,
        ACCOUNT_FROZEN, LIMIT_EXCEEDED (per payment, then what is left of the
        Beijing day's limit), INSUFFICIENT_BALANCE; then the debit, the day's
        spending, the record, the idempotency key and the audit entry. Only
        SETTLED is remembered: a refused order may be retried.

        InvalidInput (a ValueError naming the field) before anything is sent
        for an input out of form; Redis errors propagate."""
        req, items_json = self._check_settle(req)
        r = self.region
        script = self._presettle if dry_run else self._settle
        reply = await script(
            keys=[
                audit.account_key(r, req.credential_id),
                audit.spent_key(r, req.credential_id),
                audit.order_key(r, req.institution_code, req.order_id),
                audit.settlement_seq_key(r),
                audit.audit_key(r),
            ],
            args=[
                req.institution_code,
                req.order_id,
                req.credential_id,
                req.insured_region,
                str(req.total_fen),
                str(req.account_pay_fen),
                str(-req.account_pay_fen),
                str(req.total_fen - req.account_pay_fen),
                req.items_digest,
                str(req.now_ms),
                str(beijing_day(req.now_ms)),
                req.actor,
                r,
                audit.settlement_prefix(r),
                items_json,
                "1" if dry_run else "0",
            ],
        )
        outcome, replayed, flat, bal, spent, per, daily = (
            _s(reply[0]),
            _s(reply[1]) == "1",
            reply[2],
            *(_s(x) for x in reply[3:7]),
        )
        pay, cash = req.account_pay_fen, req.total_fen - req.account_pay_fen
        if outcome == SETTLED and not dry_run:
            h = _hash(flat)
            # A new settlement's record is what was just sent, plus the id and
            # balance the script made (all it returns of it).
            s = _settlement(h) if replayed else _new_settlement(req, h)
            detail = (
                f"已结算 settled: account pays {_yuan(s.account_pay_fen)} yuan, cash {_yuan(s.cash_pay_fen)} "
                f"yuan, balance {_yuan(s.balance_after_fen)} yuan"
            )
            return SettleResult(
                outcome=SETTLED,
                order_id=s.order_id,
                settlement_id=s.settlement_id,
                account_pay_fen=s.account_pay_fen,
                cash_pay_fen=s.cash_pay_fen,
                balance_after_fen=s.balance_after_fen,
                settled_at_ms=s.settled_at_ms,
                settled_region=s.settled_region,
                detail=detail,
                replayed=replayed,
                settlement=s,
            )
        if outcome == SETTLED and replayed:  # PreSettle of an order already settled
            s = _settlement(_hash(flat))
            return SettleResult(
                outcome=SETTLED,
                order_id=req.order_id,
                account_pay_fen=s.account_pay_fen,
                cash_pay_fen=s.cash_pay_fen,
                balance_after_fen=s.balance_after_fen,
                settled_region=r,
                detail="预结算 this order was already settled; Settle would return the first settlement unchanged",
                replayed=True,
            )
        if outcome == SETTLED:  # PreSettle
            after = int(bal) - pay
            return SettleResult(
                outcome=SETTLED,
                order_id=req.order_id,
                account_pay_fen=pay,
                cash_pay_fen=cash,
                balance_after_fen=after,
                settled_region=r,
                detail=f"预结算 would settle: account pays {_yuan(pay)} yuan, cash {_yuan(cash)} yuan, "
                f"balance after {_yuan(after)} yuan",
            )
        if outcome == ORDER_CONFLICT:
            detail = (
                f"订单号冲突 order {req.order_id!r} was already settled with different content; nothing was "
                "paid: use a new order_id for a different bill"
            )
            return SettleResult(outcome=outcome, order_id=req.order_id, settled_region=r, detail=detail)
        if outcome == ACCOUNT_NOT_FOUND:
            return SettleResult(
                outcome=outcome,
                order_id=req.order_id,
                settled_region=r,
                detail="个人账户未激活 the person has no activated personal account; nothing was paid",
            )
        balance = int(bal)
        if outcome == ACCOUNT_FROZEN:
            detail = "账户状态异常 the personal account is frozen; nothing was paid"
        elif outcome == LIMIT_EXCEEDED and pay > int(per):
            detail = (
                f"超出单笔限额 account pay {_yuan(pay)} yuan is over the per-payment limit of "
                f"{_yuan(int(per))} yuan; nothing was paid"
            )
        elif outcome == LIMIT_EXCEEDED:
            left = max(0, int(daily) - int(spent))
            detail = (
                f"超出单日限额 account pay {_yuan(pay)} yuan is over what is left of today's limit, "
                f"{_yuan(left)} yuan; nothing was paid"
            )
        elif outcome == INSUFFICIENT_BALANCE:
            detail = (
                f"余额不足 account pay {_yuan(pay)} yuan is more than the balance of {_yuan(balance)} yuan; "
                "nothing was paid"
            )
        else:  # pragma: no cover - the script returns nothing else
            raise RuntimeError(f"ledger: unexpected settle outcome {outcome!r}")
        return SettleResult(
            outcome=outcome, order_id=req.order_id, balance_after_fen=balance, settled_region=r, detail=detail
        )

    async def refund(self, req: RefundInput) -> RefundResult:
        """Return ``amount_fen`` of a settlement to the account, atomically:
        NOT_FOUND (no such settlement in this province); NOT_PERMITTED
        (another institution settled it); a refund_id the institution used
        before: with the same settlement_id and amount the first result
        unchanged (``replayed``), else REFUND_CONFLICT; EXCEEDS_REMAINING if
        amount_fen > account_pay_fen - refunded so far (only the account part
        of a bill comes back here; cash is the institution's to return); then
        the credit, the record, the audit entry, and, when the refund is made
        on the Beijing day of the settlement, that day's spending shrinks by
        the amount. A frozen account still gets its money back. Refund ids
        are scoped by institution."""
        if not isinstance(req, RefundInput):
            raise InvalidInput("req: must be a RefundInput")
        sid = _credential_id(req.settlement_id, "settlement_id")
        rid = _text(req.refund_id, "refund_id")
        amount = _fen(req.amount_fen, "amount_fen", minimum=1)
        inst = _institution(req.institution_code)
        now = _now(req.now_ms)
        actor = _text(req.actor, "actor", 256)
        r = self.region
        reply = await self._refund(
            keys=[
                audit.settlement_key(r, sid),
                audit.refund_key(r, inst, rid),
                audit.refunds_key(r, sid),
                audit.audit_key(r),
            ],
            args=[
                sid,
                rid,
                str(amount),
                str(-amount),
                inst,
                str(now),
                str(beijing_day(now)),
                actor,
                audit.account_prefix(r),
                audit.spent_prefix(r),
            ],
        )
        outcome, replayed, flat, remaining = _s(reply[0]), _s(reply[1]) == "1", reply[2], int(_s(reply[3]))
        if outcome == REFUNDED:
            f = _refund(_hash(flat))
            detail = (
                f"已退费 refunded {_yuan(f.amount_fen)} yuan to the personal account; balance "
                f"{_yuan(f.balance_after_fen)} yuan, {_yuan(f.remaining_fen)} yuan left to refund"
            )
            return RefundResult(
                outcome=REFUNDED,
                refund_id=rid,
                settlement_id=sid,
                amount_fen=f.amount_fen,
                balance_after_fen=f.balance_after_fen,
                remaining_fen=f.remaining_fen,
                refunded_at_ms=f.refunded_at_ms,
                detail=detail,
                replayed=replayed,
                refund=f,
            )
        details = {
            NOT_FOUND: "结算记录不存在 no settlement has this settlement_id",
            NOT_PERMITTED: "非本机构结算 the settlement was made by another institution",
            REFUND_CONFLICT: "退费单号冲突 this refund_id was already used with other content; use a new refund_id",
            EXCEEDS_REMAINING: f"超出可退金额 only {_yuan(remaining)} yuan is left to refund of this settlement",
        }
        if outcome not in details:  # pragma: no cover
            raise RuntimeError(f"ledger: unexpected refund outcome {outcome!r}")
        return RefundResult(
            outcome=outcome,
            refund_id=rid,
            settlement_id=sid,
            remaining_fen=remaining if outcome == EXCEEDS_REMAINING else 0,
            detail=details[outcome] + "; nothing was refunded",
        )

    async def get_settlement(self, settlement_id: str) -> Settlement | None:
        """The settlement with its refunds (oldest first), read atomically;
        None if there is none (also for an id of another province)."""
        sid = _credential_id(settlement_id, "settlement_id")
        r = self.region
        if sid[:2] != r:
            return None
        flat, refunds = await self._get_settlement(
            keys=[audit.settlement_key(r, sid), audit.refunds_key(r, sid)],
            args=[audit.refund_prefix(r)],
        )
        if not flat:
            return None
        return _settlement(_hash(flat), tuple(_refund(_hash(x)) for x in refunds))
