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
