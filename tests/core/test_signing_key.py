"""yibao_core.SigningKey, the prepared signer of receipts: the same bytes as
sm2_sign, the same bytes as a plain-Python SM2 signer with RFC 6979 nonces
written here from the standards, signatures that verify, and the errors.
(OpenSSL checks its signatures in test_openssl_interop.py.)"""

from __future__ import annotations

import os
import threading

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import yibao_core

PRIV_NAME = r"(?i)private[_ ]key"

# sm2p256v1 (GB/T 32918.5). Written out here: a test module cannot import
# tests/conftest.py by name (each test folder has its own conftest).
P = 0xFFFFFFFEFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFF00000000FFFFFFFFFFFFFFFF
A = P - 3
B = 0x28E9FA9E9D9F5E344D5A9E4BCF6509A7F39789F515AB8F92DDBCBD414D940E93
N = 0xFFFFFFFEFFFFFFFFFFFFFFFFFFFFFFFF7203DF6B21C6052B53BBF40939D54123
GX = 0x32C4AE2C1F1981195F9904466A39C9948FE30BBFF2660BE1715A4589334C74C7
GY = 0xBC3736A2F4F6779C59BDCEE36B692153D0A9877CC62A474002DF32E52139F0A0


def _b32(v: int) -> bytes:
    return v.to_bytes(32, "big")


def _hmac_sm3(ref, key: bytes, data: bytes) -> bytes:
    key = key.ljust(64, b"\0")
    inner = ref.sm3(bytes(b ^ 0x36 for b in key) + data)
    return ref.sm3(bytes(b ^ 0x5C for b in key) + inner)


def _rfc6979_k(ref, x: bytes, h: bytes) -> int:
    """RFC 6979 section 3.2 with HMAC-SM3, qlen = 256, no extra data."""
    k, v = b"\0" * 32, b"\1" * 32
    k = _hmac_sm3(ref, k, v + b"\0" + x + h)
    v = _hmac_sm3(ref, k, v)
    k = _hmac_sm3(ref, k, v + b"\1" + x + h)
    v = _hmac_sm3(ref, k, v)
    while True:
        v = _hmac_sm3(ref, k, v)
        candidate = int.from_bytes(v, "big")
        if 1 <= candidate < N:
            return candidate
        k = _hmac_sm3(ref, k, v + b"\0")
        v = _hmac_sm3(ref, k, v)


def python_sign(ref, private: bytes, message: bytes) -> bytes:
    """GB/T 32918.2 signing with the default ID and k from RFC 6979 (x = d,
    h = e mod n), in plain Python on the conftest's affine arithmetic."""
    d = int.from_bytes(private, "big")
    pub = ref.public_point(private)
    ida = ref.DEFAULT_ID
    za = ref.sm3((8 * len(ida)).to_bytes(2, "big") + ida + b"".join(map(_b32, (A, B, GX, GY))) + pub[1:])
    e = int.from_bytes(ref.sm3(za + message), "big") % N
    k = _rfc6979_k(ref, private, _b32(e))
    x1, _ = ref.ec_mul(k)
    r = (e + x1) % N
    s = pow(1 + d, -1, N) * (k - r * d) % N
    assert r != 0 and r + k != N and s != 0
    return _b32(r) + _b32(s)


def python_verify(ref, pub: bytes, message: bytes, sig: bytes) -> bool:
    ida = ref.DEFAULT_ID
    za = ref.sm3((8 * len(ida)).to_bytes(2, "big") + ida + b"".join(map(_b32, (A, B, GX, GY))) + pub[1:])
    e = int.from_bytes(ref.sm3(za + message), "big")
    r, s = int.from_bytes(sig[:32], "big"), int.from_bytes(sig[32:], "big")
    if not (1 <= r < N and 1 <= s < N) or (r + s) % N == 0:
        return False
    point = (int.from_bytes(pub[1:33], "big"), int.from_bytes(pub[33:], "big"))
    x1, _ = ref.ec_add(ref.ec_mul(s), ref.ec_mul((r + s) % N, point))
    return (e + x1) % N == r


EDGE_KEYS = [_b32(1), _b32(2), _b32(N - 2), b"\x80" * 32, b"\x7f" * 32, _b32(0xFF)]


@pytest.mark.parametrize("private", EDGE_KEYS + [os.urandom(31) + b"\x01"], ids=["1", "2", "n-2", "80..", "7f..", "ff", "random"])
def test_same_bytes_as_a_plain_python_signer(ref, private):
    key = yibao_core.SigningKey(private)
    assert key.public_key == ref.public_point(private) == yibao_core.sm2_public_key(private)
    for message in (b"", b"message digest", os.urandom(163 + 9)):
        sig = key.sign(message)
        assert sig == python_sign(ref, private, message)
        assert python_verify(ref, key.public_key, message, sig)


@settings(max_examples=300)
@given(private=st.integers(min_value=1, max_value=N - 2), message=st.binary(max_size=400))
def test_same_bytes_as_sm2_sign(private, message):
    priv = _b32(private)
    key = yibao_core.SigningKey(priv)
    sig = key.sign(message)
    assert isinstance(sig, bytes) and len(sig) == 64
    assert sig == yibao_core.sm2_sign(priv, message)
    assert yibao_core.sm2_verify(key.public_key, message, sig) is True
    assert yibao_core.sm2_verify(key.public_key, message + b"\0", sig) is False


def test_one_key_many_messages_and_threads():
    priv = yibao_core.sm2_generate_private_key()
    key = yibao_core.SigningKey(priv)
    messages = [os.urandom(i) for i in range(0, 400, 7)]
    expected = [yibao_core.sm2_sign(priv, m) for m in messages]
    assert [key.sign(m) for m in messages] == expected
    got: list[list[bytes]] = []

    def worker() -> None:
        got.append([key.sign(m) for m in messages])

    threads = [threading.Thread(target=worker) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert got == [expected] * 4


@pytest.mark.parametrize(
    ("private", "why"),
    [
        (bytes(32), r"outside \[1, n-2\]"),
        (_b32(N - 1), r"n-1, outside \[1, n-2\]"),
        (_b32(N), r"outside \[1, n-2\]"),
        (b"\xff" * 32, r"outside \[1, n-2\]"),
        (b"\x01" * 31, "expected 32 bytes, got 31"),
        (b"\x01" * 33, "expected 32 bytes, got 33"),
        (b"", "expected 32 bytes, got 0"),
    ],
    ids=["zero", "n-1", "n", "all-ff", "31", "33", "empty"],
)
def test_invalid_keys_raise_value_error_naming_the_argument(private, why):
    with pytest.raises(ValueError, match=PRIV_NAME) as err:
        yibao_core.SigningKey(private)
    assert err.match(why)
    with pytest.raises(ValueError, match=PRIV_NAME):
        yibao_core.sm2_sign(private, b"m")


def test_types_and_immutability():
    key = yibao_core.SigningKey(_b32(7))
    with pytest.raises(TypeError):
        yibao_core.SigningKey("00" * 32)  # type: ignore[arg-type]
    with pytest.raises(TypeError):
        key.sign("text")  # type: ignore[arg-type]
    with pytest.raises(AttributeError):
        key.public_key = b"x"  # type: ignore[misc]
    assert repr(key) == f"<SigningKey key_id={yibao_core.key_id(key.public_key)}>"
