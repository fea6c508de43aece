"""Helpers for the black-box Settlement tests (tests/settlement).

Everything talks to real processes over 127.0.0.1: ``redis-server``s and
``python -m server`` nodes started with server.local, real gRPC (the
generated stubs, so every status code is seen as the server sent it) and
real HTTP for metrics. No mocks; every wait is bounded in time and count.
"""

from __future__ import annotations

import base64
import os
import shutil
import struct
import subprocess
import time
import urllib.request
import uuid
from dataclasses import dataclass, field
from pathlib import Path

import grpc
import redis
from google.rpc import error_details_pb2
from grpc_status import rpc_status
from yibao.v1 import (
    admin_pb2,
    admin_pb2_grpc,
    common_pb2,
    settlement_pb2,
    settlement_pb2_grpc,
    verifier_pb2,
    verifier_pb2_grpc,
)

from server.local import Issuer, Node, Redis

GD = "44"
BJ = "11"
GD_REGION6 = "440300"  # 深圳市
BJ_REGION6 = "110105"  # 北京市朝阳区
GD_INST = "H44030500001"  # a Shenzhen hospital
GD_INST2 = "P44010600002"  # a Guangzhou pharmacy
BJ_INST = "H11010500001"  # a Beijing hospital
CHANNEL_WECHAT = 2
TIMEOUT = 10.0

SETTLED = settlement_pb2.SETTLE_OUTCOME_SETTLED
TOKEN_INVALID = settlement_pb2.SETTLE_OUTCOME_TOKEN_INVALID
TOKEN_EXPIRED = settlement_pb2.SETTLE_OUTCOME_TOKEN_EXPIRED
ACCOUNT_NOT_FOUND = settlement_pb2.SETTLE_OUTCOME_ACCOUNT_NOT_FOUND
ACCOUNT_FROZEN = settlement_pb2.SETTLE_OUTCOME_ACCOUNT_FROZEN
INSUFFICIENT_BALANCE = settlement_pb2.SETTLE_OUTCOME_INSUFFICIENT_BALANCE
LIMIT_EXCEEDED = settlement_pb2.SETTLE_OUTCOME_LIMIT_EXCEEDED
ORDER_CONFLICT = settlement_pb2.SETTLE_OUTCOME_ORDER_CONFLICT

REFUNDED = settlement_pb2.REFUND_OUTCOME_REFUNDED
NOT_FOUND = settlement_pb2.REFUND_OUTCOME_NOT_FOUND
EXCEEDS_REMAINING = settlement_pb2.REFUND_OUTCOME_EXCEEDS_REMAINING
NOT_PERMITTED = settlement_pb2.REFUND_OUTCOME_NOT_PERMITTED
REFUND_CONFLICT = settlement_pb2.REFUND_OUTCOME_REFUND_CONFLICT

ACTIVE = common_pb2.ACCOUNT_STATUS_ACTIVE
FROZEN = common_pb2.ACCOUNT_STATUS_FROZEN

FAST_RECONNECT = [
    ("grpc.initial_reconnect_backoff_ms", 100),
    ("grpc.min_reconnect_backoff_ms", 100),
    ("grpc.max_reconnect_backoff_ms", 500),
]


def free_port_nothing_listens() -> int:
    """A loopback port that was free a moment ago (nothing listens on it)."""
    from server.local import free_port

    return free_port()


def now_ms() -> int:
    return time.time_ns() // 1_000_000


def new_cid() -> str:
    return os.urandom(16).hex().upper()


def new_id(prefix: str) -> str:
    return f"{prefix}-{uuid.uuid4().hex[:20]}"


def outcome_name(enum, value: int) -> str:
    return enum.Name(value)


def ts_ms(ts) -> int:
    return ts.seconds * 1000 + ts.nanos // 1_000_000


# --------------------------------------------------------------------------
# Node registry (for logs in failure reports)
# --------------------------------------------------------------------------
ALL_NODES: list[tuple[str, Node]] = []


def register(name: str, node: Node) -> Node:
    ALL_NODES.append((name, node))
    return node


def log_sizes() -> dict[int, int]:
    out = {}
    for _, n in ALL_NODES:
        try:
            out[id(n)] = n.log.stat().st_size
        except OSError:
            out[id(n)] = 0
    return out


def log_since(node: Node, offset: int, max_chars: int = 6000) -> str:
    try:
        data = node.log.read_bytes()[offset:]
    except OSError:
        return "(no log)"
    text = data.decode(errors="replace")
    return text if len(text) <= max_chars else "...\n" + text[-max_chars:]


# --------------------------------------------------------------------------
# Stubs
# --------------------------------------------------------------------------
@dataclass
class Stubs:
    channel: grpc.Channel
    verifier: verifier_pb2_grpc.VerifierStub
    settlement: settlement_pb2_grpc.SettlementStub
    admin: admin_pb2_grpc.AdminStub

    @classmethod
    def connect(cls, target: str) -> Stubs:
        ch = grpc.insecure_channel(target, options=FAST_RECONNECT)
        return cls(
            ch,
            verifier_pb2_grpc.VerifierStub(ch),
            settlement_pb2_grpc.SettlementStub(ch),
            admin_pb2_grpc.AdminStub(ch),
        )

    def close(self) -> None:
        self.channel.close()

    # -- conveniences (raw requests, so the tests see every status code) --
    def token(self, issuer: Issuer, cid: str, institution: str, insured_region: str = GD_REGION6):
        """Verify a fresh code of `cid` at `institution`; the VALID response."""
        code = issuer.issue(cid, insured_region, CHANNEL_WECHAT)
        resp = self.verifier.Verify(
            verifier_pb2.VerifyRequest(code=code, institution_code=institution, request_id=new_id("v")),
            timeout=TIMEOUT,
        )
        assert resp.outcome == verifier_pb2.OUTCOME_VALID, resp
        assert resp.ec_token, resp
        return resp

    def open_account(self, cid: str, balance: int, per: int, daily: int, insured_region: str = GD_REGION6):
        return self.admin.OpenAccount(
            admin_pb2.OpenAccountRequest(
                credential_id=cid,
                balance_fen=balance,
                per_payment_limit_fen=per,
                daily_limit_fen=daily,
                insured_region=insured_region,
            ),
            timeout=TIMEOUT,
        )

    def account(self, cid: str, insured_region: str = ""):
        return self.admin.GetAccount(
            admin_pb2.GetAccountRequest(credential_id=cid, insured_region=insured_region), timeout=TIMEOUT
        )

    def set_status(self, cid: str, status: int, insured_region: str = ""):
        return self.admin.SetAccountStatus(
            admin_pb2.SetAccountStatusRequest(credential_id=cid, status=status, insured_region=insured_region),
            timeout=TIMEOUT,
        )

    def settle(self, token: str, institution: str, order_id: str, total: int, pay: int, items=(), *, dry=False):
        req = settle_request(token, institution, order_id, total, pay, items)
        rpc = self.settlement.PreSettle if dry else self.settlement.Settle
        return rpc(req, timeout=TIMEOUT)

    def refund(self, settlement_id: str, refund_id: str, amount: int, institution: str):
        return self.settlement.Refund(
            settlement_pb2.RefundRequest(
                settlement_id=settlement_id, refund_id=refund_id, amount_fen=amount, institution_code=institution
            ),
            timeout=TIMEOUT,
        )

    def get(self, settlement_id: str):
        return self.settlement.GetSettlement(
            settlement_pb2.GetSettlementRequest(settlement_id=settlement_id), timeout=TIMEOUT
        )

    def node_key(self, region: str = ""):
        return self.admin.GetNodeKey(admin_pb2.GetNodeKeyRequest(region=region), timeout=TIMEOUT)

    def audit(self, since: str = "", count: int = 10_000, region: str = ""):
        return self.admin.ReadAudit(
            admin_pb2.ReadAuditRequest(region=region, since=since, count=count), timeout=TIMEOUT
        )

    def audit_tail_id(self) -> str:
        r = self.admin.ReadAudit(admin_pb2.ReadAuditRequest(count=1, latest=True), timeout=TIMEOUT)
        return r.entries[-1].id if r.entries else ""


def settle_request(token: str, institution: str, order_id: str, total: int, pay: int, items=()):
    return settlement_pb2.SettleRequest(
        ec_token=token,
        institution_code=institution,
        order_id=order_id,
        total_fen=total,
        account_pay_fen=pay,
        items=[settlement_pb2.SettleItem(**it) if isinstance(it, dict) else it for it in items],
    )


def item(code: str, name: str, qty_milli: int, unit: str, price: int, amount: int) -> dict:
    return {"item_code": code, "name": name, "quantity_milli": qty_milli, "unit": unit, "unit_price_fen": price, "amount_fen": amount}


def rpc_error(fn, *args, **kwargs) -> grpc.RpcError:
    """Call and return the RpcError it must raise (AssertionError if it answers)."""
    try:
        resp = fn(*args, **kwargs)
    except grpc.RpcError as e:
        return e
    raise AssertionError(f"expected an error status, got an answer: {resp}")


def error_fields(err: grpc.RpcError) -> list[str]:
    st = rpc_status.from_call(err)
    out: list[str] = []
    if st is None:
        return out
    for d in st.details:
        if d.Is(error_details_pb2.ErrorInfo.DESCRIPTOR):
            info = error_details_pb2.ErrorInfo()
            d.Unpack(info)
            if "field" in info.metadata:
                out.append(info.metadata["field"])
    return out


# --------------------------------------------------------------------------
# Metrics
# --------------------------------------------------------------------------
def scrape(url: str) -> list:
    from prometheus_client.parser import text_string_to_metric_families

    with urllib.request.urlopen(url, timeout=5) as r:
        text = r.read().decode()
    samples = []
    for fam in text_string_to_metric_families(text):
        samples.extend(fam.samples)
    return samples


def metric(url: str, name: str, **labels) -> float:
    """Sum of the samples `name` whose labels include `labels`; 0 if none."""
    return sum(s.value for s in scrape(url) if s.name == name and all(s.labels.get(k) == v for k, v in labels.items()))


# --------------------------------------------------------------------------
# Receipts, read from the layout in server/receipts.py's docstring
# --------------------------------------------------------------------------
def parse_settlement_receipt(b: bytes) -> dict:
    assert b[:4] == b"YBR1", b[:8]
    assert b[4] == 0x01, b[4]
    assert len(b) >= 163
    out = {
        "settled_region": b[5:7].decode("ascii"),
        "settlement_id": b[7:39].decode("ascii"),
        "institution_code": b[39:51].decode("ascii"),
        "credential_id": b[51:83].decode("ascii"),
        "insured_region": b[83:89].decode("ascii"),
    }
    (
        out["total_fen"],
        out["account_pay_fen"],
        out["cash_pay_fen"],
        out["balance_after_fen"],
        out["settled_at_ms"],
    ) = struct.unpack(">5Q", b[89:129])
    out["items_digest"] = b[129:161]
    (n,) = struct.unpack(">H", b[161:163])
    assert len(b) == 163 + n, (len(b), n)
    out["order_id"] = b[163:].decode("utf-8")
    return out


def parse_refund_receipt(b: bytes) -> dict:
    assert b[:4] == b"YBR1", b[:8]
    assert b[4] == 0x02, b[4]
    assert len(b) >= 117
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
    assert len(b) == 117 + n, (len(b), n)
    out["refund_id"] = b[117:].decode("utf-8")
    return out


def items_encoding(items) -> bytes:
    """The bytes SM3 digests for items_digest (receipts.py docstring)."""
    out = b"YBI1" + struct.pack(">I", len(items))
    for it in items:
        for text in (it["item_code"], it["name"]):
            raw = text.encode("utf-8")
            out += struct.pack(">I", len(raw)) + raw
        out += struct.pack(">Q", it["quantity_milli"])
        raw = it["unit"].encode("utf-8")
        out += struct.pack(">I", len(raw)) + raw
        out += struct.pack(">QQ", it["unit_price_fen"], it["amount_fen"])
    return out


# --------------------------------------------------------------------------
# OpenSSL
# --------------------------------------------------------------------------
def _der_len(n: int) -> bytes:
    if n < 0x80:
        return bytes([n])
    raw = n.to_bytes((n.bit_length() + 7) // 8, "big")
    return bytes([0x80 | len(raw)]) + raw


def _der_int(v: bytes) -> bytes:
    v = v.lstrip(b"\0") or b"\0"
    if v[0] & 0x80:
        v = b"\0" + v
    return b"\x02" + _der_len(len(v)) + v


def sig_der(rs: bytes) -> bytes:
    assert len(rs) == 64, len(rs)
    body = _der_int(rs[:32]) + _der_int(rs[32:])
    return b"\x30" + _der_len(len(body)) + body


def spki_pem(public65: bytes) -> bytes:
    """SubjectPublicKeyInfo PEM: id-ecPublicKey (1.2.840.10045.2.1) with the
    SM2 curve (1.2.156.10197.1.301), DER built by hand."""
    assert len(public65) == 65 and public65[0] == 4
    alg = bytes.fromhex("06072A8648CE3D0201") + bytes.fromhex("06082A811CCF5501822D")
    alg = b"\x30" + _der_len(len(alg)) + alg
    bits = b"\x03" + _der_len(len(public65) + 1) + b"\0" + public65
    der = b"\x30" + _der_len(len(alg) + len(bits)) + alg + bits
    b64 = base64.b64encode(der).decode()
    lines = "".join(b64[i : i + 64] + "\n" for i in range(0, len(b64), 64))
    return f"-----BEGIN PUBLIC KEY-----\n{lines}-----END PUBLIC KEY-----\n".encode()


def openssl_verify(tmp: Path, public65: bytes, message: bytes, rs: bytes) -> subprocess.CompletedProcess:
    exe = shutil.which("openssl")
    assert exe, "openssl not on PATH"
    tmp.mkdir(parents=True, exist_ok=True)
    tag = uuid.uuid4().hex[:8]
    pub, sig, msg = tmp / f"pub-{tag}.pem", tmp / f"sig-{tag}.der", tmp / f"receipt-{tag}.bin"
    pub.write_bytes(spki_pem(public65))
    sig.write_bytes(sig_der(rs))
    msg.write_bytes(message)
    return subprocess.run(
        [exe, "dgst", "-sm3", "-verify", str(pub), "-sigopt", "distid:1234567812345678", "-signature", str(sig), str(msg)],
        capture_output=True,
        text=True,
        timeout=30,
        check=False,
    )


def assert_openssl_ok(tmp: Path, public65: bytes, message: bytes, rs: bytes) -> None:
    r = openssl_verify(tmp, public65, message, rs)
    assert r.returncode == 0 and "Verified OK" in r.stdout, (r.returncode, r.stdout, r.stderr)


def assert_openssl_fails(tmp: Path, public65: bytes, message: bytes, rs: bytes) -> None:
    r = openssl_verify(tmp, public65, message, rs)
    assert r.returncode != 0 and "Verified OK" not in r.stdout, (r.returncode, r.stdout, r.stderr)


# --------------------------------------------------------------------------
# Redis peeks (to see WHERE state is, never to change it)
# --------------------------------------------------------------------------
def redis_keys(url: str, pattern: str = "*") -> list[str]:
    with redis.Redis.from_url(url, socket_timeout=5) as r:
        return sorted(k.decode() for k in r.scan_iter(match=pattern, count=1000))


def token_key(national_url: str) -> bytes:
    with redis.Redis.from_url(national_url, socket_timeout=5) as r:
        key = r.get("{yibao}:token-key")
    assert isinstance(key, bytes) and len(key) == 32, key
    return key


# --------------------------------------------------------------------------
# A node pair: Guangdong (44) and Beijing (11) peering each other
# --------------------------------------------------------------------------
@dataclass
class Province:
    region: str
    regional: Redis
    node: Node
    stubs: Stubs


@dataclass
class Cluster:
    national: Redis
    issuer: Issuer
    gd: Province
    bj: Province
    extra: list = field(default_factory=list)


def start_node(
    workdir: Path,
    national: Redis,
    trust_list: Path,
    region: str,
    regional_url: str,
    peers: dict[str, int] | None = None,
    node: Node | None = None,
) -> Node:
    node = node or Node(workdir, national.url, trust_list, region=region)
    node.extra = [
        "--regional-redis-url",
        regional_url,
        *[x for p, port in (peers or {}).items() for x in ("--peer", f"{p}=127.0.0.1:{port}")],
    ]
    register(f"{region}@{node.port}", node)
    return node.start()
