"""Turn yibao.v1 messages into plain JSON-ready values.

:func:`to_dict` is what ``yibao --json`` prints. Its rules, chosen for
scripts rather than for the proto3 JSON mapping:

- field names exactly as in the .proto files (``credential_id``, not ``credentialId``);
- enums as short names (:mod:`yibao_client.enums`): ``"VALID"``, ``"wechat"``,
  ``"lost"``; an ``*_UNSPECIFIED`` (0) value as ``None``;
- ``google.protobuf.Timestamp`` as RFC 3339 UTC text with milliseconds
  (``"2026-03-01T02:00:00.123Z"``); an unset one as ``None``;
- other unset sub-messages as ``None``;
- ``bytes`` as lower-case hex (receipts, signatures, public keys);
- ``int64`` amounts in fen as JSON integers (never floats);
- ``map`` fields (``AuditEntry.detail``) as JSON objects;
- every other field always present, with its default value when unset.
"""

from __future__ import annotations

import datetime as dt
from typing import Any

from google.protobuf.descriptor import FieldDescriptor
from google.protobuf.message import Message
from google.protobuf.timestamp_pb2 import Timestamp

from .enums import short_enum_name

__all__ = ["CST", "format_time", "timestamp_ms", "timestamp_text", "to_dict"]

#: China Standard Time, UTC+8: the zone human-readable output uses.
CST = dt.timezone(dt.timedelta(hours=8), "CST")


def timestamp_ms(ts: Timestamp) -> int:
    """Milliseconds since the Unix epoch."""
    return int(ts.seconds) * 1000 + int(ts.nanos) // 1_000_000


def timestamp_text(ts: Timestamp) -> str:
    """RFC 3339 UTC with millisecond precision: ``2026-03-01T02:00:00.123Z``."""
    ms = timestamp_ms(ts)
    t = dt.datetime.fromtimestamp(ms // 1000, dt.UTC)
    return t.strftime("%Y-%m-%dT%H:%M:%S") + f".{ms % 1000:03d}Z"


def format_time(ts: Timestamp, tz: dt.tzinfo = CST) -> str:
    """For people: ``2026-03-01 10:00:00.123 +08:00`` (China Standard Time by default)."""
    ms = timestamp_ms(ts)
    t = dt.datetime.fromtimestamp(ms // 1000, dt.UTC).astimezone(tz)
    off = t.strftime("%z")
    return t.strftime("%Y-%m-%d %H:%M:%S") + f".{ms % 1000:03d} {off[:3]}:{off[3:]}"


def to_dict(message: Message) -> dict[str, Any]:
    """A message as a dict of plain values (see the module's rules)."""
    out: dict[str, Any] = {}
    for field in message.DESCRIPTOR.fields:
        value = getattr(message, field.name)
        if _is_map(field):
            value_field = field.message_type.fields_by_name["value"]
            out[field.name] = {k: _value(value_field, value[k]) for k in value}
        elif field.is_repeated:
            out[field.name] = [_value(field, v) for v in value]
        elif field.type == FieldDescriptor.TYPE_MESSAGE and not message.HasField(field.name):
            out[field.name] = None
        else:
            out[field.name] = _value(field, value)
    return out


def _is_map(field: FieldDescriptor) -> bool:
    return (
        field.type == FieldDescriptor.TYPE_MESSAGE
        and field.is_repeated
        and field.message_type.GetOptions().map_entry
    )


def _value(field: FieldDescriptor, value: Any) -> Any:
    if field.type == FieldDescriptor.TYPE_MESSAGE:
        if field.message_type.full_name == Timestamp.DESCRIPTOR.full_name:
            return timestamp_text(value)
        return to_dict(value)
    if field.type == FieldDescriptor.TYPE_ENUM:
        return None if value == 0 else short_enum_name(field.enum_type, value)
    if field.type == FieldDescriptor.TYPE_BYTES:
        return bytes(value).hex()
    return value
