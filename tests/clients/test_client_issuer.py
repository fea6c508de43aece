"""`yibao keygen` and `yibao issue`: offline, checked with the core's own verifier."""

from __future__ import annotations

import io
import json
import os
import stat
import struct
import time
import zlib
from pathlib import Path

import pytest
import segno
import yibao_core
from yibao_client import issuer
from yibao_client.cli import main

CRED = "00112233445566778899AABBCCDDEEFF"
GUARDIAN = "FFEEDDCCBBAA99887766554433221100"


def run(*argv: str) -> tuple[int, str, str]:
    out, err = io.StringIO(), io.StringIO()
    code = main(list(argv), stdout=out, stderr=err)
    return code, out.getvalue(), err.getvalue()


@pytest.fixture
def keys(tmp_path: Path) -> tuple[Path, Path]:
    key, tl = tmp_path / "issuer.key", tmp_path / "trust-list.json"
    code, out, err = run(
        "keygen",
        "--out",
        str(key),
        "--trust-list",
        str(tl),
        "--not-before",
        "2026-01-01",
        "--not-after",
        "2100-01-01T00:00:00Z",
        "--issuer",
        "test platform",
    )
    assert code == 0, err
    return key, tl


def check(code: str, tl: Path, now_ms: int | None = None) -> yibao_core.CheckResult:
    trust = yibao_core.TrustList.from_json(tl.read_text())
    return yibao_core.check(code, trust, time.time_ns() // 1_000_000 if now_ms is None else now_ms)


def test_keygen_writes_private_key_0600_and_trust_list(keys: tuple[Path, Path]) -> None:
    key, tl = keys
    assert stat.S_IMODE(os.stat(key).st_mode) == 0o600
    text = key.read_text()
    assert len(text.strip()) == 64 and text.endswith("\n")
    priv = bytes.fromhex(text)
    pub = yibao_core.sm2_public_key(priv)
    data = json.loads(tl.read_text())
    assert data["version"] == 1 and len(data["keys"]) == 1
    entry = data["keys"][0]
    assert entry == {
        "key_id": yibao_core.key_id(pub),
        "public_key": pub.hex(),
        "not_before": "2026-01-01T00:00:00Z",
        "not_after": "2100-01-01T00:00:00Z",
        "issuer": "test platform",
    }
    assert yibao_core.TrustList.from_json(tl.read_text()).key_ids == [entry["key_id"]]


def test_keygen_refuses_to_overwrite(keys: tuple[Path, Path]) -> None:
    key, tl = keys
    before = key.read_bytes()
    code, _, err = run("keygen", "--out", str(key))
    assert code == 2 and "--out" in err and "--force" in err
    assert key.read_bytes() == before
    code, out, err = run("--json", "keygen", "--out", str(key), "--force")
    assert code == 0, err
    assert key.read_bytes() != before and stat.S_IMODE(os.stat(key).st_mode) == 0o600
    d = json.loads(out)
    assert d["key_id"] == yibao_core.key_id(bytes.fromhex(d["public_key"]))


def test_keygen_default_validity_covers_now(tmp_path: Path) -> None:
    code, out, err = run(
        "--json", "keygen", "--out", str(tmp_path / "k"), "--trust-list", str(tmp_path / "t")
    )
    assert code == 0, err
    d = json.loads(out)
    now = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())
    assert d["not_before"] <= now < d["not_after"]


def test_keygen_rejects_inverted_validity(tmp_path: Path) -> None:
    code, _, err = run(
        "keygen", "--out", str(tmp_path / "k"), "--not-before", "2027-01-01", "--not-after", "2026-01-01"
    )
    assert code == 2 and "--not-after" in err
    assert not (tmp_path / "k").exists()


def test_issue_is_valid_with_the_trust_list(keys: tuple[Path, Path]) -> None:
    key, tl = keys
    code, out, err = run(
        "issue",
        "--key",
        str(key),
        "--credential-id",
        CRED.lower(),
        "--region",
        "440300",
        "--channel",
        "wechat",
    )
    assert code == 0, err
    text = out.strip()
    assert out == text + "\n" and text.startswith("YB1:") and len(text) == 195
    r = check(text, tl)
    assert r.outcome == "VALID", r.detail
    assert (r.credential_id, r.insured_region, r.channel, r.ttl_s, r.family) == (CRED, "440300", 2, 60, False)


def test_issue_all_options(keys: tuple[Path, Path]) -> None:
    key, tl = keys
    issued = 1_780_000_000_000
    code, out, err = run(
        "--json",
        "issue",
        "--key",
        str(key),
        "--credential-id",
        CRED,
        "--presenter-id",
        GUARDIAN,
        "--region",
        "110105",
        "--channel",
        "gov_service",
        "--ttl",
        "300",
        "--issued-at-ms",
        str(issued),
        "--nonce",
        "0102030405060708",
    )
    assert code == 0, err
    d = json.loads(out)
    assert d["issued_at_ms"] == issued and d["expires_at_ms"] == issued + 300_000
    r = check(d["code"], tl, now_ms=issued + 1000)
    assert r.outcome == "VALID", r.detail
    assert (r.family, r.presenter_id, r.channel, r.insured_region) == (True, GUARDIAN, 5, "110105")
    assert (r.nonce, r.key_id, r.issued_at_ms) == ("0102030405060708", d["key_id"], issued)
    # the same fields and nonce sign to the same code (RFC 6979 nonces in the core)
    again = json.loads(
        run(
            "--json",
            "issue",
            "--key",
            str(key),
            "--credential-id",
            CRED,
            "--presenter-id",
            GUARDIAN,
            "--region",
            "110105",
            "--channel",
            "gov_service",
            "--ttl",
            "300",
            "--issued-at-ms",
            str(issued),
            "--nonce",
            "0102030405060708",
        )[1]
    )
    assert again["code"] == d["code"]
    # and the trust list's dates are honoured: issued before not_before
    early = run(
        "issue",
        "--key",
        str(key),
        "--credential-id",
        CRED,
        "--region",
        "110105",
        "--channel",
        "alipay",
        "--issued-at-ms",
        "1700000000000",
    )[1].strip()
    assert check(early, tl, now_ms=1_700_000_001_000).outcome == "KEY_NOT_VALID"


def test_issue_errors_exit_2(keys: tuple[Path, Path], tmp_path: Path) -> None:
    key, _ = keys
    base = ["issue", "--credential-id", CRED, "--region", "440300", "--channel", "wechat"]
    code, _, err = run(*base, "--key", str(tmp_path / "nope.key"))
    assert code == 2 and "--key" in err and "nope.key" in err
    bad = tmp_path / "bad.key"
    bad.write_text("00" * 32 + "\n")  # zero is not a private key
    code, _, err = run(*base, "--key", str(bad))
    assert code == 2 and "--key" in err
    code, _, err = run(*base, "--key", str(key), "--nonce", "0102")
    assert code == 2 and "--nonce" in err
    code, _, err = run(*base, "--key", str(key), "--presenter-id", CRED)
    assert code == 2 and "presenter_id" in err


# -- QR image --------------------------------------------------------------------
def read_png_grey(data: bytes) -> tuple[int, int, bytes]:
    """(width, height, one byte per pixel, 0 black to 255 white) of a
    greyscale or palette PNG, as segno writes them. Plain zlib, no imaging library."""
    assert data[:8] == b"\x89PNG\r\n\x1a\n"
    pos, idat, palette = 8, b"", None
    width = height = depth = ctype = 0
    while pos < len(data):
        (n,) = struct.unpack(">I", data[pos : pos + 4])
        kind, body = data[pos + 4 : pos + 8], data[pos + 8 : pos + 8 + n]
        assert zlib.crc32(kind + body) == struct.unpack(">I", data[pos + 8 + n : pos + 12 + n])[0]
        if kind == b"IHDR":
            width, height, depth, ctype, _, _, interlace = struct.unpack(">IIBBBBB", body)
            assert ctype in (0, 3) and depth in (1, 2, 4, 8) and interlace == 0
        elif kind == b"PLTE":
            palette = [body[i : i + 3] for i in range(0, len(body), 3)]
        elif kind == b"IDAT":
            idat += body
        pos += 12 + n
    raw = zlib.decompress(idat)
    stride = (width * depth + 7) // 8
    prev = bytearray(stride)
    out = bytearray()
    i = 0
    for _ in range(height):
        ftype, line = raw[i], bytearray(raw[i + 1 : i + 1 + stride])
        i += 1 + stride
        bpp = 1
        for x in range(stride):
            a = line[x - bpp] if x >= bpp else 0
            b, c = prev[x], prev[x - bpp] if x >= bpp else 0
            if ftype == 1:
                line[x] = (line[x] + a) & 0xFF
            elif ftype == 2:
                line[x] = (line[x] + b) & 0xFF
            elif ftype == 3:
                line[x] = (line[x] + (a + b) // 2) & 0xFF
            elif ftype == 4:
                p = a + b - c
                pa, pb, pc = abs(p - a), abs(p - b), abs(p - c)
                line[x] = (line[x] + (a if pa <= pb and pa <= pc else b if pb <= pc else c)) & 0xFF
        prev = line
        per = 8 // depth
        for x in range(width):
            v = (line[x // per] >> (8 - depth * (x % per + 1))) & ((1 << depth) - 1)
            if palette is not None:
                out.append(palette[v][0])
            else:
                out.append(v * 255 // ((1 << depth) - 1))
    return width, height, bytes(out)


def test_issue_png_is_the_code(keys: tuple[Path, Path], tmp_path: Path) -> None:
    key, tl = keys
    png = tmp_path / "code.png"
    code, out, err = run(
        "issue",
        "--key",
        str(key),
        "--credential-id",
        CRED,
        "--region",
        "440300",
        "--channel",
        "national_app",
        "--png",
        str(png),
        "--scale",
        "3",
    )
    assert code == 0, err
    text = out.strip()
    assert str(png) in err
    data = png.read_bytes()
    assert data[:8] == b"\x89PNG\r\n\x1a\n"

    qr = issuer.qr_code(text)
    assert qr.mode == "alphanumeric"
    assert qr.error in ("M", "Q", "H")
    # segno's own symbol for the text, sampled from the image module by module
    matrix = segno.make_qr(text, mode="alphanumeric", error=qr.error, boost_error=False).matrix
    assert [list(r) for r in matrix] == [list(r) for r in qr.matrix]
    width, height, pixels = read_png_grey(data)
    border, scale, n = 4, 3, len(matrix)
    assert width == height == (n + 2 * border) * scale
    sampled = [
        [
            0 if pixels[((y + border) * scale + 1) * width + (x + border) * scale + 1] >= 128 else 1
            for x in range(n)
        ]
        for y in range(n)
    ]
    assert sampled == [[1 if v else 0 for v in row] for row in matrix]
    assert check(text, tl).outcome == "VALID"


def test_png_decodes_with_a_qr_reader(keys: tuple[Path, Path], tmp_path: Path) -> None:
    """A real QR decoder (zxing-cpp, from the clients' `test` extra) reads the image back."""
    import zxingcpp  # the clients' `test` extra, installed by scripts/setup
    key, _ = keys
    png = tmp_path / "code.png"
    code, out, err = run(
        "issue",
        "--key",
        str(key),
        "--credential-id",
        CRED,
        "--region",
        "440300",
        "--channel",
        "wechat",
        "--png",
        str(png),
    )
    assert code == 0, err
    width, height, pixels = read_png_grey(png.read_bytes())
    image = memoryview(pixels).cast("B", (height, width))
    found = zxingcpp.read_barcodes(image, formats=zxingcpp.BarcodeFormat.QRCode)
    assert [b.text for b in found] == [out.strip()]
