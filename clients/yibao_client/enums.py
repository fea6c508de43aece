"""Short names for the enums of yibao.v1, and back.

The wire enums carry buf-style prefixes (``OUTCOME_VALID``, ``CHANNEL_WECHAT``).
People and scripts use the short forms:

- results are upper case, as in credential-v1 and api.md: ``"VALID"``,
  ``"EXPIRED"``, ``"SETTLED"``, ``"REFUNDED"``;
- attributes are lower-case words, as typed on the command line:
  channels ``"national_app"``, ``"wechat"``, ``"alipay"``, ``"bank_app"``,
  ``"gov_service"`` (1 to 5, as the ``channel`` byte of credential-v1),
  revocation reasons ``"lost"``, ``"frozen"``, ``"cancelled"``, ``"deceased"``,
  account statuses ``"active"``, ``"frozen"``.

Every ``*_value`` function accepts the short name in any case, the full wire
name (``"CHANNEL_WECHAT"``) or the number (``2`` or ``"2"``), and raises
``ValueError`` naming the choices otherwise. Every ``*_name`` function turns a
number back into the short name; a number this client does not know (a newer
server) comes back as its decimal text, which ``*_value`` accepts, so the two
always round-trip.
"""

from __future__ import annotations

from typing import Final

from google.protobuf.descriptor import EnumDescriptor
from yibao.v1 import common_pb2, settlement_pb2, verifier_pb2

__all__ = [
    "ACCOUNT_STATUSES",
    "ACCOUNT_STATUS_WORDS",
    "CHANNELS",
    "CHANNEL_WORDS",
    "OUTCOMES",
    "OUTCOME_WORDS",
    "REFUND_OUTCOMES",
    "REFUND_OUTCOME_WORDS",
    "REVOCATION_REASONS",
    "REVOCATION_WORDS",
    "SETTLE_OUTCOMES",
    "SETTLE_OUTCOME_WORDS",
    "EnumNames",
    "account_status_name",
    "account_status_value",
    "channel_name",
    "channel_value",
    "outcome_name",
    "outcome_value",
    "refund_outcome_name",
    "refund_outcome_value",
    "revocation_reason_name",
    "revocation_reason_value",
    "settle_outcome_name",
    "settle_outcome_value",
    "short_enum_name",
]


class EnumNames:
    """Two-way map between the numbers of one proto enum and short names."""

    def __init__(self, descriptor: EnumDescriptor, *, lower: bool) -> None:
        self.descriptor: Final = descriptor
        self.lower: Final = lower
        self.prefix: Final = _prefix_of(descriptor)
        self._by_value: dict[int, str] = {}
        self._by_name: dict[str, int] = {}
        for v in descriptor.values:
            short = v.name[len(self.prefix) :] if v.name.startswith(self.prefix) else v.name
            if lower:
                short = short.lower()
            self._by_value[v.number] = short
            self._by_name[short.upper()] = v.number
            self._by_name[v.name.upper()] = v.number

    @property
    def names(self) -> tuple[str, ...]:
        """The short names of the real values (UNSPECIFIED left out), in number order."""
        return tuple(self._by_value[n] for n in sorted(self._by_value) if n != 0)

    def name(self, value: int) -> str:
        """Short name of ``value``; decimal text for a number this client does not know."""
        try:
            return self._by_value[int(value)]
        except KeyError:
            return str(int(value))

    def value(self, name: str | int) -> int:
        """Number of a short name, a full wire name or a number (as int or text)."""
        if isinstance(name, bool):
            raise TypeError(f"{self.descriptor.name}: expected a name or a number, not a bool")
        if isinstance(name, int):
            return name
        text = name.strip()
        if text.lstrip("-").isdigit():
            return int(text)
        try:
            return self._by_name[text.upper()]
        except KeyError:
            raise ValueError(
                f"unknown {self.descriptor.name} {name!r}; expected one of: {', '.join(self.names)}"
            ) from None


def _prefix_of(descriptor: EnumDescriptor) -> str:
    """``SettleOutcome`` -> ``SETTLE_OUTCOME_`` (buf's enum value prefix rule)."""
    out = []
    for i, ch in enumerate(descriptor.name):
        if ch.isupper() and i:
            out.append("_")
        out.append(ch.upper())
    return "".join(out) + "_"


_OUTCOME = EnumNames(verifier_pb2.Outcome.DESCRIPTOR, lower=False)
_CHANNEL = EnumNames(common_pb2.Channel.DESCRIPTOR, lower=True)
_REASON = EnumNames(common_pb2.RevocationReason.DESCRIPTOR, lower=True)
_STATUS = EnumNames(common_pb2.AccountStatus.DESCRIPTOR, lower=True)
_SETTLE = EnumNames(settlement_pb2.SettleOutcome.DESCRIPTOR, lower=False)
_REFUND = EnumNames(settlement_pb2.RefundOutcome.DESCRIPTOR, lower=False)

_BY_DESCRIPTOR: dict[str, EnumNames] = {
    m.descriptor.full_name: m for m in (_OUTCOME, _CHANNEL, _REASON, _STATUS, _SETTLE, _REFUND)
}

#: ``("VALID", "MALFORMED", ..., "REPLAYED")``, in the enum's order.
OUTCOMES: Final[tuple[str, ...]] = _OUTCOME.names
#: ``("national_app", "wechat", "alipay", "bank_app", "gov_service")`` = 1..5.
CHANNELS: Final[tuple[str, ...]] = _CHANNEL.names
#: ``("lost", "frozen", "cancelled", "deceased")``.
REVOCATION_REASONS: Final[tuple[str, ...]] = _REASON.names
#: ``("active", "frozen")``.
ACCOUNT_STATUSES: Final[tuple[str, ...]] = _STATUS.names
#: ``("SETTLED", "TOKEN_INVALID", ...)``.
SETTLE_OUTCOMES: Final[tuple[str, ...]] = _SETTLE.names
#: ``("REFUNDED", "NOT_FOUND", ...)``.
REFUND_OUTCOMES: Final[tuple[str, ...]] = _REFUND.names

#: Chinese words for each outcome, as a cashier's screen would show them.
OUTCOME_WORDS: Final[dict[str, str]] = {
    "VALID": "有效",
    "MALFORMED": "格式错误",
    "UNSUPPORTED_VERSION": "版本不支持",
    "UNKNOWN_KEY": "未知签发密钥",
    "KEY_NOT_VALID": "密钥不在有效期",
    "NOT_YET_VALID": "尚未生效",
    "EXPIRED": "二维码已过期",
    "BAD_SIGNATURE": "签名无效",
    "REVOKED": "凭证已挂失/冻结/注销",
    "CHANNEL_REVOKED": "渠道授权已撤销",
    "REPLAYED": "重复使用",
}
#: Chinese names of the channels.
CHANNEL_WORDS: Final[dict[str, str]] = {
    "national_app": "国家医保服务平台App",
    "wechat": "微信",
    "alipay": "支付宝",
    "bank_app": "银行App",
    "gov_service": "政务服务平台",
}
#: Chinese words for the revocation reasons.
REVOCATION_WORDS: Final[dict[str, str]] = {
    "lost": "挂失",
    "frozen": "冻结",
    "cancelled": "注销",
    "deceased": "死亡",
}

#: Chinese words for the settle outcomes (结算结果).
SETTLE_OUTCOME_WORDS: Final[dict[str, str]] = {
    "SETTLED": "结算成功",
    "TOKEN_INVALID": "令牌无效",
    "TOKEN_EXPIRED": "令牌已过期",
    "ACCOUNT_NOT_FOUND": "个人账户未激活",
    "ACCOUNT_FROZEN": "账户状态异常/冻结",
    "INSUFFICIENT_BALANCE": "余额不足",
    "LIMIT_EXCEEDED": "超出单笔/单日限额",
    "ORDER_CONFLICT": "订单号冲突",
}
#: Chinese words for the refund outcomes (退费结果).
REFUND_OUTCOME_WORDS: Final[dict[str, str]] = {
    "REFUNDED": "退费成功",
    "NOT_FOUND": "结算记录不存在",
    "EXCEEDS_REMAINING": "超出可退金额",
    "NOT_PERMITTED": "非本机构结算",
    "REFUND_CONFLICT": "退费单号冲突",
}
#: Chinese words for the account statuses.
ACCOUNT_STATUS_WORDS: Final[dict[str, str]] = {
    "active": "正常",
    "frozen": "冻结",
}


def outcome_name(value: int) -> str:
    """``1`` -> ``"VALID"``."""
    return _OUTCOME.name(value)


def outcome_value(name: str | int) -> int:
    """``"VALID"``, ``"valid"`` or ``"OUTCOME_VALID"`` -> ``1``."""
    return _OUTCOME.value(name)


def channel_name(value: int) -> str:
    """``2`` -> ``"wechat"``."""
    return _CHANNEL.name(value)


def channel_value(name: str | int) -> int:
    """``"wechat"``, ``"WECHAT"`` or ``"CHANNEL_WECHAT"`` -> ``2``."""
    return _CHANNEL.value(name)


def revocation_reason_name(value: int) -> str:
    """``1`` -> ``"lost"``."""
    return _REASON.name(value)


def revocation_reason_value(name: str | int) -> int:
    """``"lost"`` or ``"REVOCATION_REASON_LOST"`` -> ``1``."""
    return _REASON.value(name)


def account_status_name(value: int) -> str:
    """``2`` -> ``"frozen"``."""
    return _STATUS.name(value)


def account_status_value(name: str | int) -> int:
    """``"frozen"`` or ``"ACCOUNT_STATUS_FROZEN"`` -> ``2``."""
    return _STATUS.value(name)


def settle_outcome_name(value: int) -> str:
    """``1`` -> ``"SETTLED"``."""
    return _SETTLE.name(value)


def settle_outcome_value(name: str | int) -> int:
    """``"SETTLED"`` or ``"SETTLE_OUTCOME_SETTLED"`` -> ``1``."""
    return _SETTLE.value(name)


def refund_outcome_name(value: int) -> str:
    """``1`` -> ``"REFUNDED"``."""
    return _REFUND.name(value)


def refund_outcome_value(name: str | int) -> int:
    """``"REFUNDED"`` or ``"REFUND_OUTCOME_REFUNDED"`` -> ``1``."""
    return _REFUND.value(name)


def short_enum_name(descriptor: EnumDescriptor, value: int) -> str:
    """Short name of a value of any yibao.v1 enum (used by :func:`yibao_client.to_dict`)."""
    names = _BY_DESCRIPTOR.get(descriptor.full_name)
    if names is None:
        names = _BY_DESCRIPTOR.setdefault(descriptor.full_name, EnumNames(descriptor, lower=False))
    return names.name(value)
