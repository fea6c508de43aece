"""The `yibao` console script against a REAL node (redis-server + `python -m
server --insecure`, from server/local.py): open an account, issue and verify
a code, presettle, settle, check the receipt's signature with the OpenSSL
command line and the node key written by `yibao node-key --pem-out`, refund
part of it, read the settlement and the audit log back, and find the
balance where the money says it should be."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

# scripts/setup installs everything these need: a missing piece is a failure, not a skip.
assert shutil.which("redis-server"), "redis-server is missing: run scripts/setup"
assert shutil.which("openssl"), "openssl is missing: run scripts/setup"

from server.local import Issuer, Node, Redis  # noqa: E402

INSTITUTION = "H44030000001"
CREDENTIAL_ID = "0A1B2C3D4E5F60718293A4B5C6D7E8F9"
REGION = "440300"
YIBAO = Path(sys.executable).with_name("yibao")


@dataclass
class Live:
    node: Node
    issuer_key: Path
    workdir: Path

    def yibao(
        self, *argv: str, stdin: str | None = None, expect: int | None = 0
    ) -> subprocess.CompletedProcess[str]:
        p = subprocess.run(
            [str(YIBAO), "--insecure", "--target", self.node.target, "--timeout", "10", *argv],
            input=stdin,
            capture_output=True,
            text=True,
            cwd=self.workdir,
            timeout=30,
            check=False,
            env={k: v for k, v in os.environ.items() if not k.startswith("YIBAO_")},
        )
        if expect is not None:
            assert p.returncode == expect, f"yibao {' '.join(argv)} -> {p.returncode}\n{p.stdout}\n{p.stderr}"
        return p

    def json(self, *argv: str, expect: int | None = 0) -> dict:
        out = self.yibao("--json", *argv, expect=expect).stdout
        return json.loads(out)


@pytest.fixture(scope="module")
def live(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Live]:
    assert YIBAO.exists(), f"no console script {YIBAO}: run scripts/setup (pip install -e ./clients)"
    workdir = tmp_path_factory.mktemp("e2e")
    redis = Redis(workdir / "redis").start()
    try:
        issuer = Issuer.create(workdir / "issuer")
        key = workdir / "issuer.key"
        key.write_text(issuer.private_key.hex() + "\n")
        key.chmod(0o600)
        node = Node(workdir / "node", redis.url, issuer.trust_list_path).start()
        try:
            yield Live(node, key, workdir)
        finally:
            node.stop()
    finally:
        redis.stop()


def openssl_verify(workdir: Path, pem: str, sig: str, data: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [
            "openssl",
            "dgst",
            "-sm3",
            "-verify",
            pem,
            "-sigopt",
            "distid:1234567812345678",
            "-signature",
            sig,
            data,
        ],
        capture_output=True,
        text=True,
        cwd=workdir,
        timeout=30,
        check=False,
    )


def test_settle_refund_receipts_and_audit_end_to_end(live: Live) -> None:
    w = live.workdir

    # 1. open the account: 1,000.00 yuan, typed as a person would
    opened = live.json(
        "account", "open", CREDENTIAL_ID, "--region", REGION,
        "--balance", "1000.00", "--per-payment-limit", "500.00", "--daily-limit", "800.00",
    )  # fmt: skip
    assert opened["created"] is True and opened["balance_fen"] == 100_000
    assert opened["per_payment_limit_fen"] == 50_000 and opened["daily_limit_fen"] == 80_000

    # 2. a fresh code from the demo issuer; verify it and capture the ec_token from --json
    code = live.yibao(
        "issue", "--key", str(live.issuer_key), "--credential-id", CREDENTIAL_ID,
        "--region", REGION, "--channel", "wechat",
    ).stdout.strip()  # fmt: skip
    verified = live.json("verify", code, "--institution", INSTITUTION)
    assert verified["outcome"] == "VALID"
    token = verified["ec_token"]
    assert token and verified["credential"]["credential_id"] == CREDENTIAL_ID

    bill = ["--institution", INSTITUTION, "--order-id", "HIS-E2E-0001", "--total", "120.00", "--account-pay", "100.00",
            "--item", "XJ01CAA040A001:阿莫西林胶囊:2:盒:50.00:100.00", "--item", ":挂号费:1:次:20.00:20.00"]  # fmt: skip

    # 3. presettle: what would be paid, nothing moves
    pre = live.yibao("presettle", "--token", token, *bill).stdout
    assert "SETTLED" in pre and "nothing was paid" in pre
    assert "account_pay     100.00 元 (10000 fen)" in pre and "balance_after   900.00 元 (90000 fen)" in pre

    # 4. settle (token read from stdin, as a pipe from verify would give it), writing the receipt files
    settled = live.yibao(
        "settle", "--token", "-", *bill, "--receipt-out", "receipt.bin", "--signature-out", "receipt.sig",
        stdin=token + "\n",
    ).stdout  # fmt: skip
    fields = dict(line.split(None, 1) for line in settled.splitlines() if line and not line.startswith(" "))
    assert fields["outcome"].split() == ["SETTLED", "结算成功"]
    sid = fields["settlement_id"].strip()
    assert len(sid) == 32 and sid.startswith("44")
    assert fields["total"].strip() == "120.00 元 (12000 fen)"
    assert fields["account_pay"].startswith("100.00 元 (10000 fen)")
    assert fields["cash_pay"].startswith("20.00 元 (2000 fen)")
    assert fields["balance_after"].startswith("900.00 元 (90000 fen)")
    receipt = (w / "receipt.bin").read_bytes()
    assert receipt.hex() == fields["receipt"].strip() and receipt.startswith(b"YBR1\x01")
    assert (
        "openssl dgst -sm3 -verify node-44.pem -sigopt distid:1234567812345678 -signature receipt.sig receipt.bin"
        in settled
    )
    assert "yibao node-key --region 44 --pem-out node-44.pem" in settled

    # 5. the printed commands work: node key as PEM, then OpenSSL checks the receipt
    live.yibao("node-key", "--region", "44", "--pem-out", "node-44.pem")
    ok = openssl_verify(w, "node-44.pem", "receipt.sig", "receipt.bin")
    assert ok.returncode == 0 and ok.stdout.strip() == "Verified OK", ok.stdout + ok.stderr
    (w / "forged.bin").write_bytes(receipt.replace(b"HIS-E2E-0001", b"HIS-E2E-0002"))
    bad = openssl_verify(w, "node-44.pem", "receipt.sig", "forged.bin")
    assert bad.returncode != 0 and "Verification failure" in bad.stdout

    # the same order again (a retry) is the same settlement: nothing paid twice
    again = live.json("settle", "--token", token, *bill)
    assert again["settlement_id"] == sid and again["receipt"] == receipt.hex()

    # 6. refund part of it, and check the refund receipt too
    refund = live.json(
        "refund", sid, "--refund-id", "HIS-E2E-R1", "--amount", "30.00", "--institution", INSTITUTION,
        "--receipt-out", "refund.bin", "--signature-out", "refund.sig",
    )  # fmt: skip
    assert refund["outcome"] == "REFUNDED" and refund["amount_fen"] == 3_000
    assert refund["remaining_fen"] == 7_000 and refund["balance_after_fen"] == 93_000
    ok = openssl_verify(w, "node-44.pem", "refund.sig", "refund.bin")
    assert ok.returncode == 0 and ok.stdout.strip() == "Verified OK", ok.stdout + ok.stderr
    too_much = live.yibao(
        "refund",
        sid,
        "--refund-id",
        "HIS-E2E-R2",
        "--amount",
        "70.01",
        "--institution",
        INSTITUTION,
        expect=1,
    )
    assert "EXCEEDS_REMAINING" in too_much.stdout and "70.00 元 (7000 fen)" in too_much.stdout

    # 7. settlement show: the settlement with its lines and its refund
    shown = live.json("settlement", "show", sid)
    s = shown["settlement"]
    assert shown["found"] is True and s["refunded_fen"] == 3_000 and s["total_fen"] == 12_000
    assert s["receipt"] == receipt.hex()
    assert [(i["name"], i["quantity_milli"], i["amount_fen"]) for i in s["items"]] == [
        ("阿莫西林胶囊", 2000, 10_000),
        ("挂号费", 1000, 2000),
    ]
    assert [(r["refund_id"], r["amount_fen"]) for r in shown["refunds"]] == [("HIS-E2E-R1", 3_000)]
    human = live.yibao("settlement", "show", sid).stdout
    assert "refundable         70.00 元 (7000 fen)" in human and "HIS-E2E-R1" in human

    # 8. the audit log lists the settle and the refund, with their ids and amounts
    entries = [
        json.loads(line) for line in live.yibao("--json", "audit", "--region", "44").stdout.splitlines()
    ]
    settles = [
        e for e in entries if e["what"].lower() == "settle" and e["detail"].get("settlement_id") == sid
    ]
    refunds = [
        e for e in entries if e["what"].lower() == "refund" and e["detail"].get("refund_id") == "HIS-E2E-R1"
    ]
    assert settles and settles[0]["outcome"] == "SETTLED" and settles[0]["who"] == INSTITUTION
    assert settles[0]["detail"]["account_pay_fen"] == "10000"
    assert refunds and refunds[0]["outcome"] == "REFUNDED" and refunds[0]["detail"]["amount_fen"] == "3000"
    table = live.yibao("audit", "--latest", "--count", "50").stdout
    assert sid in table and "HIS-E2E-R1" in table and "+08:00" in table
    followed = live.yibao(
        "--json", "audit", "--follow", "--count", "2", "--interval", "0.2", "--max-seconds", "0.5"
    )
    assert len(followed.stdout.splitlines()) == 2

    # 9. the balance: opening - account_pay + refund
    account = live.json("account", "show", CREDENTIAL_ID, "--region", REGION)
    assert account["found"] is True
    assert account["balance_fen"] == 100_000 - 10_000 + 3_000 == 93_000
    assert "balance            930.00 元 (93000 fen)" in live.yibao("account", "show", CREDENTIAL_ID).stdout

    # a frozen account pays nothing (exit 1), and unfreezing restores it
    live.yibao("account", "freeze", CREDENTIAL_ID, "--region", REGION)
    code2 = live.yibao(
        "issue", "--key", str(live.issuer_key), "--credential-id", CREDENTIAL_ID, "--region", REGION,
        "--channel", "alipay",
    ).stdout.strip()  # fmt: skip
    token2 = live.json("verify", code2, "--institution", INSTITUTION)["ec_token"]
    frozen = live.yibao("settle", "--token", token2, *bill[:2], "--order-id", "HIS-E2E-0002",
                        "--total-fen", "100", "--account-pay-fen", "100", expect=1)  # fmt: skip
    assert "ACCOUNT_FROZEN" in frozen.stdout
    live.yibao("account", "unfreeze", CREDENTIAL_ID, "--region", REGION)

