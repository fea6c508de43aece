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

    def apply(self, op: str, credential_id: str, arg: str) -> bool:
        """One revocation event of the national stream on the mirror; False
        for an op that is not a mirror change. The same events arrive once
        from the Admin call that made them and again from the stream: each
        sets a state, so applying twice is harmless."""
        mirror = self.mirror
        if op == "revoke":
            mirror.revoke(credential_id, arg)
        elif op == "restore":
            mirror.restore(credential_id)
        elif op == "withdraw":
            mirror.withdraw_channel(credential_id, int(arg))
        elif op == "restore_channel":
            mirror.restore_channel(credential_id, int(arg))
        elif op == "revoke_batch":  # arg: "ID:REASON,ID:REASON,..."
            for pair in arg.split(","):
                cid, _, reason = pair.partition(":")
                mirror.revoke(cid, reason)
        else:
            return False
        return True
