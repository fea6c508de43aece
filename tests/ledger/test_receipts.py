"""Receipts: the documented byte layout, signatures checked by the OpenSSL 3
command line tool (an SM2 implementation that shares no code with ours),
determinism across retries, and the node key file."""

from __future__ import annotations

import asyncio
import base64
import os
import shutil
import stat
import struct
import subprocess
import threading
from pathlib import Path

import pytest
import yibao_core
from ledgerkit import INST, INSURED, NOW, cid, ledger

from server import node_key, receipts
from server.ledger import Item, RefundInput, SettleInput

A = cid(0xA1)
ITEMS = (Item("XJ01AAA0001", "阿莫西林胶囊", 2000, "盒", 1250, 2500), Item("", "挂号费", 1000, "次", 500, 500))


def _der_len(n: int) -> bytes:
    return bytes([n]) if n < 0x80 else bytes([0x81, n]) if n < 0x100 else bytes([0x82]) + n.to_bytes(2, "big")


def _der_int(v: bytes) -> bytes:
    v = v.lstrip(b"\0") or b"\0"
    if v[0] & 0x80:
        v = b"\0" + v
    return b"\x02" + _der_len(len(v)) + v


def sig_der(rs: bytes) -> bytes:
    body = _der_int(rs[:32]) + _der_int(rs[32:])
    return b"\x30" + _der_len(len(body)) + body


def spki_pem(public65: bytes) -> bytes:
    """SubjectPublicKeyInfo: id-ecPublicKey (1.2.840.10045.2.1) on the SM2
    curve (1.2.156.10197.1.301), built by hand."""
    alg = bytes.fromhex("06072A8648CE3D0201") + bytes.fromhex("06082A811CCF5501822D")
    alg = b"\x30" + _der_len(len(alg)) + alg
    bits = b"\x03" + _der_len(len(public65) + 1) + b"\0" + public65
    der = b"\x30" + _der_len(len(alg) + len(bits)) + alg + bits
    b64 = base64.encodebytes(der).decode().replace("\n", "")
    lines = "\n".join(b64[i : i + 64] for i in range(0, len(b64), 64))
    return f"-----BEGIN PUBLIC KEY-----\n{lines}\n-----END PUBLIC KEY-----\n".encode()


def openssl_verify(tmp: Path, public65: bytes, message: bytes, rs: bytes) -> subprocess.CompletedProcess:
    exe = shutil.which("openssl")
    if exe is None:
        pytest.fail("openssl not on PATH", pytrace=False)
    (tmp / "pub.pem").write_bytes(spki_pem(public65))
    (tmp / "sig.der").write_bytes(sig_der(rs))
    (tmp / "receipt.bin").write_bytes(message)
    return subprocess.run(
        [
            exe,
            "dgst",
            "-sm3",
            "-verify",
            str(tmp / "pub.pem"),
            "-sigopt",
            "distid:1234567812345678",
            "-signature",
            str(tmp / "sig.der"),
            str(tmp / "receipt.bin"),
        ],
        capture_output=True,
        text=True,
        timeout=30,
        check=False,
    )


def parse_settlement_receipt(b: bytes) -> dict:
    """The layout of the receipts.py docstring, read independently."""
    assert b[:4] == b"YBR1" and b[4] == 1
    out = {
        "settled_region": b[5:7].decode("ascii"),
        "settlement_id": b[7:39].decode("ascii"),
        "institution_code": b[39:51].decode("ascii"),
        "credential_id": b[51:83].decode("ascii"),
        "insured_region": b[83:89].decode("ascii"),
    }
    (out["total_fen"], out["account_pay_fen"], out["cash_pay_fen"], out["balance_after_fen"], out["settled_at_ms"]) = (
        struct.unpack(">5Q", b[89:129])
    )
    out["items_digest"] = b[129:161].hex()
    (n,) = struct.unpack(">H", b[161:163])
    assert len(b) == 163 + n
    out["order_id"] = b[163:].decode("utf-8")
    return out


def parse_refund_receipt(b: bytes) -> dict:
    assert b[:4] == b"YBR1" and b[4] == 2
    out = {
        "settled_region": b[5:7].decode("ascii"),
        "settlement_id": b[7:39].decode("ascii"),
        "institution_code": b[39:51].decode("ascii"),
        "credential_id": b[51:83].decode("ascii"),
    }
    out["amount_fen"], out["balance_after_fen"], out["remaining_fen"], out["refunded_at_ms"] = struct.unpack(
        ">4Q", b[83:115]
    )
    (n,) = struct.unpack(">H", b[115:117])
    assert len(b) == 117 + n
    out["refund_id"] = b[117:].decode("utf-8")
    return out


def items_encoding(items) -> bytes:
    out = b"YBI1" + struct.pack(">I", len(items))
    for it in items:
        for t in (it.item_code, it.name):
            out += struct.pack(">I", len(t.encode())) + t.encode()
        out += struct.pack(">Q", it.quantity_milli)
        out += struct.pack(">I", len(it.unit.encode())) + it.unit.encode()
        out += struct.pack(">QQ", it.unit_price_fen, it.amount_fen)
    return out


def test_items_digest_is_sm3_of_the_documented_encoding(tmp_path):
    enc = items_encoding(ITEMS)
    assert receipts.items_digest(ITEMS) == yibao_core.sm3(enc).hex()
    # the same digest from OpenSSL's SM3
    (tmp_path / "items.bin").write_bytes(enc)
    out = subprocess.run(
        ["openssl", "dgst", "-sm3", "-r", str(tmp_path / "items.bin")],
        capture_output=True,
        text=True,
        check=True,
        timeout=30,
    ).stdout
    assert out.split()[0] == receipts.items_digest(ITEMS)
    assert receipts.items_digest(()) == yibao_core.sm3(b"YBI1\0\0\0\0").hex()
    assert receipts.items_digest(ITEMS[:1]) != receipts.items_digest(ITEMS)
    assert receipts.items_digest(ITEMS[::-1]) != receipts.items_digest(ITEMS)


def test_receipts_verify_with_openssl_and_are_deterministic(redis_url, tmp_path):
    private, public = node_key.load_or_create(tmp_path / "keys" / "node.key")

    async def go():
        async with ledger(redis_url) as led:
            await led.open_account(
                A,
                balance_fen=100_000,
                per_payment_limit_fen=10_000,
                daily_limit_fen=10_000,
                actor="admin",
                now_ms=NOW,
                insured_region=INSURED,
            )
            req = SettleInput(INST, "处方-0001", A, INSURED, 3000, 2200, "", NOW, INST, ITEMS)
            first = await led.settle(req, dry_run=False)
            retry = await led.settle(req, dry_run=False)
            ref = await led.refund(RefundInput(first.settlement_id, "退-1", 700, INST, NOW + 5, INST))
            ref_retry = await led.refund(RefundInput(first.settlement_id, "退-1", 700, INST, NOW + 9, INST))
            got = await led.get_settlement(first.settlement_id)
            return first, retry, ref, ref_retry, got

    first, retry, ref, ref_retry, got = asyncio.run(go())
    receipt, sig = receipts.signed_settlement(private, first.settlement)
    assert len(sig) == 64
    # byte-identical for the retry and when read back (after a refund changed refunded_fen)
    assert receipts.signed_settlement(private, retry.settlement) == (receipt, sig)
    assert receipts.signed_settlement(private, got) == (receipt, sig)

    fields = parse_settlement_receipt(receipt)
    assert fields == {
        "settled_region": "44",
        "settlement_id": first.settlement_id,
        "institution_code": INST,
        "credential_id": A,
        "insured_region": INSURED,
        "total_fen": 3000,
        "account_pay_fen": 2200,
        "cash_pay_fen": 800,
        "balance_after_fen": 97_800,
        "settled_at_ms": NOW,
        "items_digest": receipts.items_digest(ITEMS),
        "order_id": "处方-0001",
    }
    assert {k: v for k, v in receipts.parse(receipt).items() if k not in ("magic", "type")} == fields

    proc = openssl_verify(tmp_path, public, receipt, sig)
    assert proc.returncode == 0 and "Verified OK" in proc.stdout, proc.stdout + proc.stderr
    for i in (0, 4, 8, 100, 120, len(receipt) - 1):  # any byte changed: the signature no longer holds
        bad = bytearray(receipt)
        bad[i] ^= 0x01
        proc = openssl_verify(tmp_path, public, bytes(bad), sig)
        assert proc.returncode != 0 and "Verified OK" not in proc.stdout
        assert not receipts.verify(public, bytes(bad), sig)
    assert receipts.verify(public, receipt, sig)

    r_receipt, r_sig = receipts.signed_refund(private, ref.refund)
    assert receipts.signed_refund(private, ref_retry.refund) == (r_receipt, r_sig)
    assert receipts.signed_refund(private, got.refunds[0]) == (r_receipt, r_sig)
    assert parse_refund_receipt(r_receipt) == {
        "settled_region": "44",
        "settlement_id": first.settlement_id,
        "institution_code": INST,
        "credential_id": A,
        "amount_fen": 700,
        "balance_after_fen": 98_500,
        "remaining_fen": 1500,
        "refunded_at_ms": NOW + 5,
        "refund_id": "退-1",
    }
    proc = openssl_verify(tmp_path, public, r_receipt, r_sig)
    assert proc.returncode == 0 and "Verified OK" in proc.stdout, proc.stdout + proc.stderr
    proc = openssl_verify(tmp_path, public, r_receipt[:-1] + b"2", r_sig)
    assert proc.returncode != 0
    # another node's key does not verify it
    other = yibao_core.sm2_public_key(yibao_core.sm2_generate_private_key())
    assert openssl_verify(tmp_path, other, receipt, sig).returncode != 0


def test_receipt_fields_are_checked():
    from server.ledger import Settlement

    s = Settlement("44" + "0" * 30, INST, "o", A, INSURED, 10, 5, 5, 0, NOW, "44", "00" * 32)
    assert len(receipts.settlement_receipt(s)) == 164
    for bad in ({"institution_code": "H1"}, {"settlement_id": "44"}, {"order_id": ""}, {"insured_region": "44"}):
        with pytest.raises(ValueError):
            receipts.settlement_receipt(Settlement(**{**s.__dict__, **bad}))
    with pytest.raises(ValueError):
        receipts.parse(b"YBR1\x03")
    with pytest.raises(ValueError):
        receipts.parse(receipts.settlement_receipt(s) + b"x")


def test_node_key_is_made_once_kept_0600_and_reloaded(tmp_path):
    path = tmp_path / "a" / "b" / "node.key"
    private, public = node_key.load_or_create(path)
    assert len(private) == 32 and public == yibao_core.sm2_public_key(private) and len(public) == 65
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert stat.S_IMODE(path.parent.stat().st_mode) == 0o700
    assert path.read_text() == private.hex() + "\n"
    assert node_key.load_or_create(path) == (private, public)
    assert node_key.key_id(public) == yibao_core.key_id(public)
    assert not [p for p in path.parent.iterdir() if p.name != "node.key"]  # no temporary file left


def test_node_signing_key_signs_the_same_receipt_bytes(tmp_path):
    """The node prepares its key once (node_key.signing_key); receipts signed
    with it are the bytes signed from the raw key, and OpenSSL verifies them."""
    from server.ledger import Refund, Settlement

    path = tmp_path / "node.key"
    private, public = node_key.load_or_create(path)
    key = node_key.signing_key(path)
    assert isinstance(key, yibao_core.SigningKey) and key.public_key == public
    s = Settlement("44" + "0" * 30, INST, "处方-7", A, INSURED, 3000, 2200, 800, 97_800, NOW, "44", "ab" * 32)
    f = Refund("退-1", "44" + "0" * 30, INST, A, 700, 98_500, 1500, NOW + 5, "44")
    for signed, made in ((receipts.signed_settlement, s), (receipts.signed_refund, f)):
        receipt, sig = signed(key, made)
        assert (receipt, sig) == signed(private, made)
        assert receipts.sign(key, receipt) == sig == yibao_core.sm2_sign(private, receipt)
        proc = openssl_verify(tmp_path, public, receipt, sig)
        assert proc.returncode == 0 and "Verified OK" in proc.stdout, proc.stdout + proc.stderr


def test_node_key_workers_starting_together_share_one_key(tmp_path):
    path = tmp_path / "k" / "node.key"
    results, errors = [], []
    barrier = threading.Barrier(8)

    def start():
        try:
            barrier.wait()
            results.append(node_key.load_or_create(path))
        except Exception as e:  # noqa: BLE001 - reported below
            errors.append(e)

    threads = [threading.Thread(target=start) for _ in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not errors and len(results) == 8 and len(set(results)) == 1
    assert os.listdir(path.parent) == ["node.key"]


def test_node_key_refuses_a_bad_or_open_file(tmp_path):
    path = tmp_path / "node.key"
    path.write_text("not a key\n")
    path.chmod(0o600)
    with pytest.raises(ValueError, match="not a node key"):
        node_key.load_or_create(path)
    assert path.read_text() == "not a key\n"  # never overwritten
    path.write_text("00" * 32 + "\n")  # zero is not a private key
    with pytest.raises(ValueError, match="valid SM2"):
        node_key.load_or_create(path)
    path.write_text(yibao_core.sm2_generate_private_key().hex() + "\n")
    path.chmod(0o644)
    with pytest.raises(PermissionError, match="chmod 600"):
        node_key.load_or_create(path)


def test_a_new_settlement_is_the_record_read_back(redis_url):
    """settle() builds a new settlement's record from what it sent; it must
    be the record Redis holds, field for field, items included."""

    async def go():
        async with ledger(redis_url) as led:
            a = cid(77)
            await led.open_account(
                a, balance_fen=10_000, per_payment_limit_fen=10_000, daily_limit_fen=10_000, actor="admin", now_ms=NOW,
                insured_region=INSURED,
            )
            first = await led.settle(SettleInput(INST, "读回-1", a.lower(), INSURED, 3000, 2200, "", NOW, INST, ITEMS),
                                     dry_run=False)
            retry = await led.settle(SettleInput(INST, "读回-1", a, INSURED, 3000, 2200, "", NOW + 9, INST, ITEMS),
                                     dry_run=False)
            return first, retry, await led.get_settlement(first.settlement_id)

    first, retry, got = asyncio.run(go())
    assert first.outcome == "SETTLED" and not first.replayed and retry.replayed
    assert got == first.settlement == retry.settlement
    assert got.items == ITEMS and got.credential_id == cid(77)
