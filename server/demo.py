"""The README's main job: a private redis-server and a node on free
loopback ports, codes issued and verified (valid, expired, tampered,
revoked, replayed, family account, another province), an account opened,
a bill settled from it and partly refunded, the signed receipt checked and
the audit trail shown; then everything stopped. Run: python -m server.demo"""

from __future__ import annotations

import argparse
import shutil
import tempfile
import time
import urllib.request
from pathlib import Path

import yibao_core
from server.local import Issuer, Node, Redis
from yibao.v1 import admin_pb2, common_pb2, settlement_pb2, verifier_pb2
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


def _yuan(fen: int) -> str:
    return f"{fen // 100}.{fen % 100:02d}"


def _settle_and_refund(client: Client, issuer: Issuer) -> None:
    patient = "5E1D2C3B4A5968778695A4B3C2D1E0F1"
    print("\n  Settlement: pay from the personal account (个人账户), then refund part of it")
    opened = client.open_account(
        credential_id=patient, balance_fen=100_000, per_payment_limit_fen=50_000, daily_limit_fen=80_000,
        insured_region="440300",
    )
    print(f"  account {patient} opened: balance {_yuan(opened.balance_fen)} yuan, "
          f"limits {_yuan(opened.per_payment_limit_fen)} per payment, {_yuan(opened.daily_limit_fen)} a day")
    token = client.verify(issuer.issue(patient, "440300", WECHAT), institution_code=SHENZHEN_HOSPITAL).ec_token
    bill = dict(ec_token=token, institution_code=SHENZHEN_HOSPITAL, order_id="HIS-20261123-0001",
                total_fen=12_000, account_pay_fen=10_000)
    pre = client.presettle(**bill)
    print(f"  PreSettle (预结算): {settlement_pb2.SettleOutcome.Name(pre.outcome).removeprefix('SETTLE_OUTCOME_')}, "
          f"would pay {_yuan(pre.account_pay_fen)} from the account and {_yuan(pre.cash_pay_fen)} in cash")
    settled = client.settle(**bill)
    again = client.settle(**bill)
    print(f"  Settle: {settlement_pb2.SettleOutcome.Name(settled.outcome).removeprefix('SETTLE_OUTCOME_')} "
          f"{settled.settlement_id}: account {_yuan(settled.account_pay_fen)}, cash {_yuan(settled.cash_pay_fen)}, "
          f"balance after {_yuan(settled.balance_after_fen)}")
    print(f"  the same order sent again: same settlement {again.settlement_id == settled.settlement_id}, "
          f"balance still {_yuan(again.balance_after_fen)}")
    refund = client.refund(settlement_id=settled.settlement_id, refund_id="HIS-R-0001", amount_fen=3_000,
                           institution_code=SHENZHEN_HOSPITAL)
    print(f"  Refund 30.00: {settlement_pb2.RefundOutcome.Name(refund.outcome).removeprefix('REFUND_OUTCOME_')}, "
          f"balance after {_yuan(refund.balance_after_fen)}, {_yuan(refund.remaining_fen)} left to refund")
    node_key = client.get_node_key()
    ok = yibao_core.sm2_verify(node_key.public_key, settled.receipt, settled.receipt_signature)
    print(f"  receipt ({len(settled.receipt)} bytes, layout in the README): {settled.receipt.hex()}")
    print(f"  signature r||s: {settled.receipt_signature.hex()}")
    print(f"  verified with node key {node_key.key_id} (Admin.GetNodeKey): {ok}")
    account = client.get_account(patient)
    print(f"  account now: balance {_yuan(account.balance_fen)} yuan, spent today {_yuan(account.spent_today_fen)}")
    print("\n  audit trail (Admin.ReadAudit):")
    for e in client.admin_stub.ReadAudit(admin_pb2.ReadAuditRequest(latest=True, count=5), timeout=5).entries:
        detail = ", ".join(f"{k}={v}" for k, v in sorted(e.detail.items()) if k in ("order_id", "refund_id", "amount_fen", "account_pay_fen", "credential_id", "channel", "reason"))
        print(f"    {e.when.ToDatetime():%H:%M:%S} {e.who:<38} {e.what:<17} {e.outcome:<10} {detail}")


def run(workdir: Path) -> None:
    print("yibao-verify demo: a private redis-server and a node on this machine\n")
    # AOF with an fsync on every write, as the ledger needs (README, "Durability").
    redis = Redis(workdir / "redis", appendfsync="always").start()
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
            _settle_and_refund(client, issuer)
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
