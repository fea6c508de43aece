"""What a node holds in memory and swaps as a whole when it changes: the
trust list and the revocation mirror. Readers take the current object once
per batch, so a swap never shows them half of an update."""

from __future__ import annotations

from dataclasses import dataclass, field

import yibao_core


@dataclass
class NodeState:
    trust_list: yibao_core.TrustList
    mirror: yibao_core.RevocationSet = field(default_factory=yibao_core.RevocationSet)
    #: Codes accepted by this node: the replay record while the national
    #: store is away, and a second opinion when it is back.
    local_replay: yibao_core.ReplayGuard = field(default_factory=yibao_core.ReplayGuard)
    trust_list_text: str = ""

    def apply(self, op: str, credential_id: str, arg: bytes) -> bool:
        """One revocation event of the national stream on the mirror; False
        for an op that is not a mirror change. The same events arrive once
        from the Admin call that made them and again from the stream: each
        sets a state, so applying twice is harmless."""
        return apply_to(self.mirror, op, credential_id, arg)


def apply_to(mirror: yibao_core.RevocationSet, op: str, credential_id: str, arg: bytes) -> bool:
    """One stream event on `mirror`; False for an op that is not a mirror change."""
    if op == "revoke":
        mirror.revoke(credential_id, arg.decode())
    elif op == "restore":
        mirror.restore(credential_id)
    elif op == "withdraw":
        mirror.withdraw_channel(credential_id, int(arg))
    elif op == "restore_channel":
        mirror.restore_channel(credential_id, int(arg))
    elif op == "revoke_records":  # arg: 16-byte id + reason code, repeated
        mirror.revoke_records(arg)
    else:
        return False
    return True


def replay(mirror: yibao_core.RevocationSet, events: list[tuple[bytes, dict[bytes, bytes]]]) -> None:
    """Stream events, in order, on `mirror` (other ops are skipped)."""
    for _, fields in events:
        apply_to(mirror, fields[b"op"].decode(), fields[b"id"].decode(), fields.get(b"arg", b""))
