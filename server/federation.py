"""Several provinces on one machine, for the federation tests and for
``scripts/federation``: one national Redis Cluster (primaries with a replica
each), a regional redis-server per province (appendfsync always), and a
node per province whose --peer lists every other province, all on free
loopback ports.

    python -m server.federation              # 11, 44 and 65 until Ctrl-C
    python -m server.federation --provinces 11 31 44 65
"""

from __future__ import annotations

import argparse
import os
import signal
import sys
import tempfile
import time
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path

from server.local import Cluster, Issuer, Node, Redis

#: A sample insured region (six digits) and hospital per province code.
SAMPLE_REGION6 = {"11": "110105", "31": "310104", "44": "440300", "65": "650102"}
SAMPLE_HOSPITAL = {"11": "H11010500001", "31": "H31010400001", "44": "H44030500001", "65": "H65010200001"}


@dataclass
class Federation:
    workdir: Path
    provinces: tuple[str, ...] = ("11", "44", "65")
    national: Cluster | None = None
    regional: dict[str, Redis] = field(default_factory=dict)
    nodes: dict[str, Node] = field(default_factory=dict)
    issuer: Issuer | None = None

    def start(self) -> Federation:
        self.national = Cluster(self.workdir / "national", primaries=3, replicas=1).start()
        self.issuer = Issuer.create(self.workdir)
        for p in self.provinces:
            self.regional[p] = Redis(self.workdir / f"regional-{p}", appendfsync="always").start()
        # Ports first: every node names every other as its peer.
        for p in self.provinces:
            self.nodes[p] = Node(self.workdir / f"node-{p}", self.national.url, self.issuer.trust_list_path, region=p)
        for p, node in self.nodes.items():
            peers = [x for q, other in self.nodes.items() if q != p for x in ("--peer", f"{q}={other.target}")]
            # --min-replicas by default: 1 for the national cluster, 0 for the standalone regional stores.
            node.extra = ("--regional-redis-url", self.regional[p].url, *peers)
        for node in self.nodes.values():
            node.start()
        self.wait_connected()
        return self

    def wait_connected(self, timeout_s: float = 20) -> None:
        """Until every node finds every peer up (yibao_peer_up, checked each
        2 s): a node that started before its peers has them in reconnect
        backoff for a moment."""
        deadline = time.monotonic() + timeout_s
        for p, node in self.nodes.items():
            while True:
                with urllib.request.urlopen(node.metrics_url, timeout=5) as r:
                    lines = r.read().decode().splitlines()
                up = {line.split('peer="')[1][:2] for line in lines if line.startswith("yibao_peer_up{") and line.endswith(" 1.0")}
                if up >= set(self.nodes) - {p}:
                    break
                if time.monotonic() > deadline:
                    raise RuntimeError(f"node {p} does not see its peers up after {timeout_s:g} s (sees {sorted(up)})")
                time.sleep(0.1)

    def stop(self) -> None:
        for node in self.nodes.values():
            node.stop()
        for redis in self.regional.values():
            redis.stop()
        if self.national is not None:
            self.national.stop()


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(
        prog="python -m server.federation",
        description="Start several provinces' nodes on this machine (loopback only): a national Redis Cluster "
        "with replicas, a regional redis-server and a node per province, each node the others' --peer. "
        "Runs until Ctrl-C, then stops everything.",
    )
    parser.add_argument("--provinces", nargs="+", default=["11", "44", "65"], choices=sorted(SAMPLE_REGION6))
    args = parser.parse_args(argv)
    with tempfile.TemporaryDirectory(prefix="yibao-federation-") as work:
        fed = Federation(Path(work), tuple(args.provinces))
        stop = False

        def on_signal(_signum: int, _frame: object) -> None:
            nonlocal stop
            stop = True

        signal.signal(signal.SIGINT, on_signal)
        signal.signal(signal.SIGTERM, on_signal)
        try:
            fed.start()
            assert fed.national is not None and fed.issuer is not None
            print(f"national store: {fed.national.url} ({len(fed.national.members)} redis-servers)")
            for p, node in fed.nodes.items():
                print(f"province {p}: node {node.target}  metrics {node.metrics_url}  regional {fed.regional[p].url}")
            print(f"trust list: {fed.issuer.trust_list_path}")
            _sample(fed)
            print("running; Ctrl-C stops everything", flush=True)
            while not stop:
                time.sleep(0.2)
        finally:
            fed.stop()


def _sample(fed: Federation) -> None:
    """One 异地就医 settlement: a person insured in the second province,
    treated in the first, paid from the account at home."""
    from yibao.v1 import admin_pb2, admin_pb2_grpc, settlement_pb2, settlement_pb2_grpc, verifier_pb2, verifier_pb2_grpc

    assert fed.issuer is not None
    here, home = fed.provinces[0], fed.provinces[1]
    cid = os.urandom(16).hex().upper()
    with fed.nodes[here].channel() as ch:
        admin_pb2_grpc.AdminStub(ch).OpenAccount(admin_pb2.OpenAccountRequest(
            credential_id=cid, balance_fen=50_000, per_payment_limit_fen=20_000, daily_limit_fen=40_000,
            insured_region=SAMPLE_REGION6[home]), timeout=10)  # fmt: skip
        verified = verifier_pb2_grpc.VerifierStub(ch).Verify(verifier_pb2.VerifyRequest(
            code=fed.issuer.issue(cid, SAMPLE_REGION6[home], 2), institution_code=SAMPLE_HOSPITAL[here],
            request_id="federation-sample"), timeout=10)  # fmt: skip
        settled = settlement_pb2_grpc.SettlementStub(ch).Settle(settlement_pb2.SettleRequest(
            ec_token=verified.ec_token, institution_code=SAMPLE_HOSPITAL[here], order_id="federation-sample-1",
            total_fen=12_000, account_pay_fen=10_000), timeout=10)  # fmt: skip
    print(
        f"sample: insured in {home}, treated in {here}: {verifier_pb2.Outcome.Name(verified.outcome)}, then "
        f"{settlement_pb2.SettleOutcome.Name(settled.outcome)} by province {settled.settled_region}, "
        f"balance {settled.balance_after_fen / 100:.2f} yuan"
    )
    # Asked at any province's node, the account is read where it lives.
    asked = fed.provinces[-1]
    print(f"try: .venv/bin/yibao --insecure --target {fed.nodes[asked].target} account show "
          f"--region {SAMPLE_REGION6[home]} {cid}")  # fmt: skip


if __name__ == "__main__":
    main(sys.argv[1:])
