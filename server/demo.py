"""The README's main job: a private redis-server and a node on free
loopback ports, codes issued and verified (valid, expired, tampered,
revoked, replayed, family account, another province), then everything
stopped. Run: python -m server.demo"""

from __future__ import annotations

import argparse
import shutil
import tempfile
import time
import urllib.request
from pathlib import Path

import yibao_core
from server.local import Issuer, Node, Redis
from yibao.v1 import common_pb2, verifier_pb2
from yibao_client import Client

PERSON = "3A7C0F19B2D44E8A9C115E6B0D2F4A71"
CHILD = "0A0B0C0D0E0F10111213141516171819"
GUARDIAN = "11111111222222223333333344444444"
SHENZHEN_HOSPITAL = "H44030500001"
WECHAT, NATIONAL_APP = 2, 1


def _show(title: str, resp: verifier_pb2.VerifyResponse) -> None:
    outcome = verifier_pb2.Outcome.Name(resp.outcome).removeprefix("OUTCOME_")
    print(f"  {title:<44} {outcome:<16} {resp.detail}")
    c = resp.credential
    if outcome == "REVOKED":
        print(f"  {'':<44} reason {common_pb2.RevocationReason.Name(resp.revocation_reason)}")
    if outcome == "VALID":
        family = f", presented by guardian {c.presenter_id}" if c.family else ""
        where = " (异地就医: settled by the insured province's node)" if resp.cross_province else ""
        print(f"  {'':<44} credential {c.credential_id}, insured in {c.insured_region}{family}{where}")
        print(f"  {'':<44} ec_token {resp.ec_token[:32]}... valid until {resp.token_expires_at.ToDatetime():%H:%M:%S} UTC")


def run(workdir: Path) -> None:
    print("yibao-verify demo: a private redis-server and a node on this machine\n")
    redis = Redis(workdir / "redis").start()
    node: Node | None = None
    try:
        issuer = Issuer.create(workdir)
        node = Node(workdir / "node", redis.url, issuer.trust_list_path).start()
        print(f"  redis-server on {redis.url}, node on {node.target}, trust list {issuer.trust_list_path}\n")
        with Client(node.target, insecure=True) as client:
            now = int(time.time() * 1000)
            code = issuer.issue(PERSON, "440300", WECHAT)
            print(f"  a code as the scanner reads it ({len(code)} characters):\n  {code}\n")
            verify = lambda c, rid=None: client.verify(c, institution_code=SHENZHEN_HOSPITAL, request_id=rid)  # noqa: E731
            first = verify(code, "demo-1")
            _show("valid (WeChat, Shenzhen insured)", first)
            _show("the same request retried", verify(code, "demo-1"))
            _show("the same code shown again", verify(code, "demo-2"))
            _show("expired (issued 2 minutes ago, ttl 60 s)", verify(issuer.issue(PERSON, "440300", WECHAT, issued_at_ms=now - 120_000)))
            payload = bytearray(yibao_core.base45_decode(code[4:]))
            payload[40] = ord("9")  # insured_region 440300 -> 449300
            tampered = "YB1:" + yibao_core.base45_encode(bytes(payload))
            _show("tampered (region byte changed)", verify(tampered))
            _show("family account (guardian presents child)", verify(issuer.issue(CHILD, "110105", NATIONAL_APP, presenter_id=GUARDIAN)))
            client.revoke(CHILD, "lost")
            _show("after Admin.Revoke(child, LOST)", verify(issuer.issue(CHILD, "110105", NATIONAL_APP, presenter_id=GUARDIAN)))
            client.withdraw_channel(PERSON, "wechat")
            _show("after the person withdrew WeChat", verify(issuer.issue(PERSON, "440300", WECHAT)))
            _show("the same person by the national app", verify(issuer.issue(PERSON, "440300", NATIONAL_APP)))
            _show("not a code at all", verify("hello"))
            batch = client.verify_batch(
                [(issuer.issue(PERSON, "440300", NATIONAL_APP), SHENZHEN_HOSPITAL, f"batch-{i}") for i in range(500)]
            )
            valid = sum(r.outcome == verifier_pb2.OUTCOME_VALID for r in batch)
            print(f"\n  VerifyBatch of 500 fresh codes: {valid} VALID, answered in order")
        metrics = urllib.request.urlopen(node.metrics_url, timeout=5).read().decode()
        print(f"\n  metrics: {node.metrics_url}")
        for line in metrics.splitlines():
            if line.startswith(("yibao_verifications_total", "yibao_trust_keys_loaded", "yibao_revocations_loaded")):
                print(f"    {line}")
    finally:
        if node is not None:
            node.stop()
        redis.stop()
    print("\n  node and redis-server stopped; nothing left running.")


def main() -> None:
    argparse.ArgumentParser(prog="python -m server.demo", description=__doc__).parse_args()
    workdir = Path(tempfile.mkdtemp(prefix="yibao-demo-"))
    try:
        run(workdir)
    except KeyboardInterrupt:
        print("\n  interrupted; node and redis-server stopped.")
    finally:
        shutil.rmtree(workdir, ignore_errors=True)


if __name__ == "__main__":
    main()
