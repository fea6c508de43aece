"""Property and behaviour tests of the checks (credential-v1 section 4), the
issuer, the revocation set and the replay guard.

Outcomes are compared with ``ref.model_outcome`` (conftest), a plain-Python
reading of steps 1 to 5 in which "the signature is valid" means "these are
the exact bytes a key signed"."""

from __future__ import annotations

import json

import pytest
from hypothesis import assume, example, given, settings
from hypothesis import strategies as st

import yibao_core

NOW = 1790000000000  # 2026-09-21T14:13:20Z
SKEW = 5000
DAY = 86_400_000
CRED = "3A7C0F19B2D44E8A9C115E6B0D2F4A71"
CRED2 = "0A0B0C0D0E0F10111213141516171819"
GUARDIAN = "11111111222222223333333344444444"
NONCE = bytes.fromhex("0102030405060708")
B45 = "0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZ $%*+-./:"
WS = " \t\r\n\f"  # ASCII white space (VT left out: see conftest.ASCII_WS)

# Two private keys whose public keys share the key id 4031F913 (see test_sm.py).
COLLIDING = (
    bytes.fromhex("45f1185bd2b13fd3e54addbfb9ca15588d2f9bdc1b8c11287a5388bc36c48716"),
    bytes.fromhex("45f1185bd2b13fd3e54addbfb9ca15588d2f9bdc1b8c11287a5388bc36c4c09c"),
)


def _issue(issuer, **kw):
    kw.setdefault("credential_id", CRED)
    kw.setdefault("insured_region", "440300")
    kw.setdefault("channel", 2)
    kw.setdefault("issued_at_ms", NOW)
    kw.setdefault("nonce", NONCE)
    return yibao_core.issue(issuer.private_key, **kw)


def _check(code, issuer, now=NOW, **kw):
    return yibao_core.check(code, issuer.trust_list, now, **kw)


@pytest.fixture(scope="module")
def base(issuer, ref):
    """Valid codes of the test issuer, their payloads, and the vectors' valid codes."""
    plain = _issue(issuer)
    family = _issue(issuer, credential_id=CRED2, presenter_id=GUARDIAN, channel=1, insured_region="110105", ttl_s=300)
    assert _check(plain, issuer).outcome == "VALID"
    assert _check(family, issuer).outcome == "VALID"
    return {
        "plain": plain,
        "family": family,
        "good": {ref.payload_of(plain), ref.payload_of(family)},
    }


@pytest.fixture(scope="module")
def spec_keys(trust_list_data, ref):
    return [
        {"key_id": k["key_id"], "not_before_ms": ref.iso_ms(k["not_before"]), "not_after_ms": ref.iso_ms(k["not_after"])}
        for k in trust_list_data["keys"]
    ]


@pytest.fixture(scope="module")
def spec_good(cases, ref):
    """Payloads of the vectors that carry a valid signature."""
    return {ref.payload_of(c["code"]) for c in cases if c["outcome"] in {"VALID", "EXPIRED", "NOT_YET_VALID"}}


# --------------------------------------------------------------------------
# Strategies
# --------------------------------------------------------------------------
ANY_CHAR = st.characters(codec="utf-8", exclude_characters="\x0b")
ODD_CHARS = list("abcxyz#_~!\"'`^&()[]{}<>=?@\\|;,") + [" ", "\t", "\r", "\n", "\f", "\x00", "\u00a0", "\u3000", "\u2003", "\u0660", "\uff21", "\u00e9"]
CHARS = st.one_of(st.sampled_from(list(B45)), st.sampled_from(ODD_CHARS), ANY_CHAR)
POSITIONS = st.one_of(st.integers(0, 8), st.integers(186, 200), st.integers(0, 400))
TEXT_OPS = st.lists(st.tuples(st.sampled_from(["replace", "insert", "delete"]), POSITIONS, CHARS), min_size=1, max_size=4)
BYTE_OPS = st.lists(
    st.tuples(st.sampled_from(["xor", "insert", "delete"]), st.integers(0, 300), st.integers(0, 255)), min_size=1, max_size=4
)


def apply_text(code: str, ops) -> str:
    s = list(code)
    for kind, pos, ch in ops:
        if kind == "insert":
            s.insert(pos % (len(s) + 1), ch)
        elif not s:
            continue
        elif kind == "replace":
            s[pos % len(s)] = ch
        else:
            del s[pos % len(s)]
    return "".join(s)


def apply_bytes(p: bytes, ops) -> bytes:
    b = bytearray(p)
    for kind, pos, v in ops:
        if kind == "insert":
            b.insert(pos % (len(b) + 1), v)
        elif not b:
            continue
        elif kind == "xor":
            b[pos % len(b)] ^= v or 0x80
        else:
            del b[pos % len(b)]
    return bytes(b)


# --------------------------------------------------------------------------
# Junk never crashes and is never VALID
# --------------------------------------------------------------------------
@settings(max_examples=300)
@given(text=st.text(alphabet=st.characters(codec="utf-8"), max_size=300))
@example(text="")
@example(text="YB1:")
@example(text="YB1: ")
@example(text="   ")
@example(text="YB1:00")
@example(text="yb1:" + "0" * 191)
def test_random_text_never_valid(issuer, trust_list, base, spec_keys, ref, text):
    for t in (text, "YB1:" + text):
        for tl in (issuer.trust_list, trust_list):
            res = yibao_core.check(t, tl, NOW)
            assert res.outcome in yibao_core.OUTCOMES
            assert res.outcome != "VALID", t
        assume("\x0b" not in t)
        assert _check(t, issuer).outcome == ref.model_outcome(t, issuer.keys, NOW, SKEW, base["good"]), t


@settings(max_examples=300)
@given(data=st.binary(max_size=300))
def test_random_bytes_never_valid(issuer, trust_list, data):
    for code in (data, b"YB1:" + data):
        for tl in (issuer.trust_list, trust_list):
            res = yibao_core.check(code, tl, NOW)
            assert res.outcome in yibao_core.OUTCOMES
            assert res.outcome != "VALID"


@settings(max_examples=300)
@given(payload=st.binary(max_size=300))
def test_random_payload_outcome(issuer, base, ref, payload):
    """Any Base45 payload: version byte other than 1 is UNSUPPORTED_VERSION
    whatever the length, version 1 of the wrong length is MALFORMED, etc."""
    code = "YB1:" + ref.b45encode(payload)
    res = _check(code, issuer)
    assert res.outcome != "VALID"
    assert res.outcome == ref.model_outcome(code, issuer.keys, NOW, SKEW, base["good"]), payload.hex()
    if payload and payload[0] != 1:
        assert res.outcome == "UNSUPPORTED_VERSION"


@st.composite
def plausible_payloads(draw, key_ids):
    """Well-formed payloads with random fields and a random (wrong) signature."""
    family = draw(st.booleans())
    cred = draw(st.binary(min_size=16, max_size=16).filter(any))
    pres = draw(st.binary(min_size=16, max_size=16).filter(lambda b: any(b) and b != cred)) if family else None
    prov = draw(st.sampled_from(sorted(["11", "31", "44", "65", "54", "81", "99", "00"])))
    region = prov + "".join(draw(st.lists(st.sampled_from("0123456789"), min_size=4, max_size=4)))
    body = bytes([1, draw(st.sampled_from([0, 1, 2, 0x80])) if draw(st.booleans()) else int(family)])
    body += bytes.fromhex(draw(st.sampled_from(key_ids))) if draw(st.booleans()) else draw(st.binary(min_size=4, max_size=4))
    body += cred + (pres or bytes(16)) + region.encode()
    body += bytes([draw(st.integers(0, 7))])
    body += (NOW + draw(st.integers(-400_000, 400_000))).to_bytes(8, "big")
    body += draw(st.integers(0, 310)).to_bytes(2, "big")
    body += draw(st.binary(min_size=8, max_size=8))
    assert len(body) == 63
    return body + draw(st.binary(min_size=64, max_size=64))


@settings(max_examples=300)
@given(data=st.data())
def test_plausible_forgeries_never_valid(issuer, base, ref, data):
    p = data.draw(plausible_payloads([issuer.key_id, "8461942B"]))
    code = ref.code_of(p)
    res = _check(code, issuer)
    assert res.outcome != "VALID"
    assert res.outcome == ref.model_outcome(code, issuer.keys, NOW, SKEW, base["good"]), ref.parse_payload(p)


# --------------------------------------------------------------------------
# Mutations of valid codes
# --------------------------------------------------------------------------
@pytest.mark.parametrize("which", ["plain", "family"])
@settings(max_examples=300)
@given(ops=TEXT_OPS)
def test_text_mutations_never_valid(issuer, base, ref, which, ops):
    code = base[which]
    mutated = apply_text(code, ops)
    res = _check(mutated, issuer, NOW + 1000)
    if mutated.strip(WS) == code:
        assert res.outcome == "VALID", repr(mutated)
    else:
        assert res.outcome != "VALID", repr(mutated)


@pytest.mark.parametrize("which", ["plain", "family"])
@settings(max_examples=300)
@given(ops=TEXT_OPS)
def test_text_mutations_match_model(issuer, base, ref, which, ops):
    mutated = apply_text(base[which], ops)
    expected = ref.model_outcome(mutated, issuer.keys, NOW + 1000, SKEW, base["good"])
    assert _check(mutated, issuer, NOW + 1000).outcome == expected, repr(mutated)


@pytest.mark.parametrize("name", ["valid-wechat-shenzhen", "valid-family-account-beijing"])
@settings(max_examples=200)
@given(ops=TEXT_OPS)
def test_text_mutations_of_vectors(trust_list, cases, spec_keys, spec_good, ref, name, ops):
    case = next(c for c in cases if c["name"] == name)
    mutated = apply_text(case["code"], ops)
    res = yibao_core.check(mutated, trust_list, case["now_ms"])
    assert res.outcome == ref.model_outcome(mutated, spec_keys, case["now_ms"], SKEW, spec_good), repr(mutated)
    if mutated.strip(WS) != case["code"]:
        assert res.outcome != "VALID"


@pytest.mark.parametrize("which", ["plain", "family"])
@settings(max_examples=300)
@given(ops=BYTE_OPS)
def test_payload_mutations_never_valid(issuer, base, ref, which, ops):
    payload = ref.payload_of(base[which])
    mutated = apply_bytes(payload, ops)
    code = "YB1:" + yibao_core.base45_encode(mutated)
    res = _check(code, issuer, NOW + 1000)
    if mutated == payload:
        assert res.outcome == "VALID"
    else:
        assert res.outcome != "VALID", mutated.hex()
    assert res.outcome == ref.model_outcome(code, issuer.keys, NOW + 1000, SKEW, base["good"]), mutated.hex()


@pytest.mark.parametrize("which", ["plain", "family"])
@settings(max_examples=300)
@given(offset=st.integers(0, 62), xor=st.integers(1, 255))
def test_signed_byte_mutation_never_valid(issuer, base, ref, which, offset, xor):
    payload = bytearray(ref.payload_of(base[which]))
    payload[offset] ^= xor
    code = ref.code_of(bytes(payload))
    res = _check(code, issuer, NOW + 1000)
    assert res.outcome != "VALID"
    assert res.outcome == ref.model_outcome(code, issuer.keys, NOW + 1000, SKEW, base["good"]), (offset, xor)
    # Field by field, what the spec makes of the change:
    if offset == 0:
        assert res.outcome == "UNSUPPORTED_VERSION"
    elif 2 <= offset < 6:
        assert res.outcome == "UNKNOWN_KEY"
    elif 55 <= offset < 63:
        assert res.outcome == "BAD_SIGNATURE"


@settings(max_examples=300)
@given(offset=st.integers(63, 126), xor=st.integers(1, 255))
def test_signature_byte_mutation_is_bad_signature(issuer, base, ref, offset, xor):
    payload = bytearray(ref.payload_of(base["plain"]))
    payload[offset] ^= xor
    assert _check(ref.code_of(bytes(payload)), issuer).outcome == "BAD_SIGNATURE"


@settings(max_examples=200)
@given(lead=st.text(alphabet=WS, max_size=6), trail=st.text(alphabet=WS, max_size=6))
def test_surrounding_whitespace_is_stripped(issuer, base, lead, trail):
    for which in ("plain", "family"):
        code = lead + base[which] + trail
        assert _check(code, issuer).outcome == "VALID", repr(code)
        assert _check(code.encode(), issuer).outcome == "VALID", repr(code)


@pytest.mark.parametrize("ch", ["\t", "\r", "\n", "\f", "\u00a0", "\u3000", "\x00"])
def test_inner_whitespace_is_malformed(issuer, base, ch):
    code = base["plain"]
    for pos in (4, 50, len(code) - 1):
        assert _check(code[:pos] + ch + code[pos:], issuer).outcome == "MALFORMED", (pos, ch)


@pytest.mark.parametrize("ch", ["\u00a0", "\u3000", "\u2003", "\ufeff", "\x00"])
def test_non_ascii_whitespace_is_not_stripped(issuer, base, ch):
    """Only ASCII white space is stripped; anything else is not Base45."""
    assert _check(ch + base["plain"], issuer).outcome == "MALFORMED"
    assert _check(base["plain"] + ch, issuer).outcome == "MALFORMED"


def test_prefix_is_exact(issuer, base):
    body = base["plain"][4:]
    for prefix in ("yb1:", "Yb1:", "YB1", "YB1::", "YB01:", ":YB1", "YB2:", "YB0:", ""):
        assert _check(prefix + body, issuer).outcome == "MALFORMED", prefix


# --------------------------------------------------------------------------
# check_batch == check
# --------------------------------------------------------------------------
@pytest.fixture(scope="module")
def pool(base, cases, issuer):
    codes = [base["plain"], base["family"]] + [c["code"] for c in cases]
    codes += [
        _issue(issuer, nonce=bytes([i]) * 8, channel=1 + i % 5, issued_at_ms=NOW - 30_000 * i) for i in range(6)
    ]
    codes += [_issue(issuer, credential_id="AB" * 16, nonce=NONCE), _issue(issuer, credential_id="CD" * 16)]
    return codes


@settings(max_examples=150)
@given(
    picks=st.lists(st.one_of(st.integers(0, 10_000), st.text(max_size=20), st.tuples(st.integers(0, 10_000), TEXT_OPS)), max_size=40),
    threads=st.sampled_from([None, 1, 2, 3, 16]),
    offset=st.sampled_from([-10_000, 0, 1000, 61_000, 70_000, 400_000]),
    with_state=st.booleans(),
)
def test_batch_equals_single(issuer, pool, picks, threads, offset, with_state):
    codes = []
    for p in picks:
        if isinstance(p, int):
            codes.append(pool[p % len(pool)])
        elif isinstance(p, tuple):
            codes.append(apply_text(pool[p[0] % len(pool)], p[1]))
        else:
            codes.append(p)
    now = NOW + offset

    def state():
        if not with_state:
            return {}
        rev = yibao_core.RevocationSet()
        rev.revoke("AB" * 16, "FROZEN")
        rev.withdraw_channel(CRED, 3)
        return {"revocations": rev, "replay": yibao_core.ReplayGuard()}

    batch = yibao_core.check_batch(codes, issuer.trust_list, now, threads=threads, **state())
    st_single = state()
    single = [yibao_core.check(c, issuer.trust_list, now, **st_single) for c in codes]
    assert [r.to_dict() for r in batch] == [r.to_dict() for r in single]


def test_batch_accepts_bytes_and_str(issuer, base):
    res = yibao_core.check_batch([base["plain"], base["plain"].encode(), b"junk", "junk"], issuer.trust_list, NOW)
    assert [r.outcome for r in res] == ["VALID", "VALID", "MALFORMED", "MALFORMED"]


def test_batch_large_in_order(issuer, pool):
    codes = (pool * 200)[:5000]
    batch = yibao_core.check_batch(codes, issuer.trust_list, NOW, threads=2)
    expected = {c: yibao_core.check(c, issuer.trust_list, NOW).outcome for c in set(codes)}
    assert [r.outcome for r in batch] == [expected[c] for c in codes]


# --------------------------------------------------------------------------
# The issuer refuses fields that break their rule
# --------------------------------------------------------------------------
BAD_FIELDS = [
    ({"ttl_s": 0}, r"ttl"),
    ({"ttl_s": 301}, r"ttl"),
    ({"ttl_s": 65535}, r"ttl"),
    ({"channel": 0}, r"channel"),
    ({"channel": 6}, r"channel"),
    ({"channel": 255}, r"channel"),
    ({"insured_region": "990000"}, r"region"),
    ({"insured_region": "100000"}, r"region"),
    ({"insured_region": "000000"}, r"region"),
    ({"insured_region": "810000"}, r"region"),  # Hong Kong: not in the section 5 list
    ({"insured_region": "44030"}, r"region"),
    ({"insured_region": "4403000"}, r"region"),
    ({"insured_region": "44030a"}, r"region"),
    ({"insured_region": "44 300"}, r"region"),
    ({"insured_region": "44-300"}, r"region"),
    ({"insured_region": ""}, r"region"),
    ({"insured_region": "\uff14\uff14\uff10\uff13\uff10\uff10"}, r"region"),  # full-width digits
    ({"insured_region": "\u0664\u0664\u0660\u0663\u0660\u0660"}, r"region"),  # Arabic-Indic digits
    ({"credential_id": "0" * 32}, r"credential"),
    ({"credential_id": bytes(16)}, r"credential"),
    ({"credential_id": "3A7C0F19B2D44E8A9C115E6B0D2F4A7"}, r"credential"),  # 31 digits
    ({"credential_id": "3A7C0F19B2D44E8A9C115E6B0D2F4A711"}, r"credential"),  # 33 digits
    ({"credential_id": "ZZ7C0F19B2D44E8A9C115E6B0D2F4A71"}, r"credential"),
    ({"credential_id": b"\x01" * 15}, r"credential"),
    ({"credential_id": b"\x01" * 17}, r"credential"),
    ({"presenter_id": CRED}, r"presenter"),
    ({"presenter_id": CRED.lower()}, r"presenter"),
    ({"presenter_id": bytes.fromhex(CRED)}, r"presenter"),
    ({"presenter_id": "0" * 32}, r"presenter"),
    ({"presenter_id": "12345"}, r"presenter"),
    ({"nonce": b"\x01" * 7}, r"nonce"),
    ({"nonce": b"\x01" * 9}, r"nonce"),
    ({"nonce": b""}, r"nonce"),
]


@pytest.mark.parametrize(("bad", "name"), BAD_FIELDS, ids=[f"{k}={v!r}" for (d, _) in BAD_FIELDS for k, v in d.items()])
def test_issuer_refuses_bad_field(issuer, bad, name):
    with pytest.raises(ValueError, match=rf"(?i){name}"):
        _issue(issuer, **bad)


@pytest.mark.parametrize(
    "priv",
    [b"", b"\x01" * 31, b"\x01" * 33, bytes(32),
     (0xFFFFFFFEFFFFFFFFFFFFFFFFFFFFFFFF7203DF6B21C6052B53BBF40939D54123).to_bytes(32, "big"),
     (0xFFFFFFFEFFFFFFFFFFFFFFFFFFFFFFFF7203DF6B21C6052B53BBF40939D54122).to_bytes(32, "big")],
    ids=["empty", "31-bytes", "33-bytes", "zero", "n", "n-1"],
)  # fmt: skip
def test_issuer_refuses_bad_private_key(priv):
    """SM2 private keys are 1 <= d <= n-2; anything else names private_key."""
    with pytest.raises(ValueError, match=r"(?i)private[_ ]key"):
        yibao_core.issue(priv, credential_id=CRED, insured_region="440300", channel=2, issued_at_ms=NOW)


@pytest.mark.parametrize(
    "good",
    [{"ttl_s": 1}, {"ttl_s": 300}, {"channel": 1}, {"channel": 5}, {"credential_id": CRED.lower()},
     {"credential_id": bytes.fromhex(CRED)}, {"presenter_id": bytes.fromhex(GUARDIAN)}, {"presenter_id": GUARDIAN.lower()},
     {"credential_id": "00" * 15 + "01"}, {"nonce": bytes(8)}],
)  # fmt: skip
def test_issuer_accepts_boundary_fields(issuer, good, ref):
    code = _issue(issuer, **good)
    res = _check(code, issuer)
    assert res.outcome == "VALID"
    p = ref.parse_payload(ref.payload_of(code))
    assert res.credential_id == p["credential_id"] and res.credential_id == res.credential_id.upper()
    if "presenter_id" in good:
        assert res.family is True and res.presenter_id == GUARDIAN


@pytest.mark.parametrize("prov", sorted(["11", "12", "13", "14", "15", "21", "22", "23", "31", "32", "33", "34", "35", "36", "37", "41",
                                         "42", "43", "44", "45", "46", "50", "51", "52", "53", "54", "61", "62", "63", "64", "65"]))  # fmt: skip
def test_every_province_accepted(issuer, prov, ref):
    assert prov in ref.PROVINCES
    code = _issue(issuer, insured_region=prov + "0102")
    res = _check(code, issuer)
    assert res.outcome == "VALID" and res.province == prov and res.insured_region == prov + "0102"


@pytest.mark.parametrize("prov", [f"{i:02d}" for i in range(100) if f"{i:02d}" not in {
    "11", "12", "13", "14", "15", "21", "22", "23", "31", "32", "33", "34", "35", "36", "37", "41",
    "42", "43", "44", "45", "46", "50", "51", "52", "53", "54", "61", "62", "63", "64", "65"}])  # fmt: skip
def test_every_other_region_prefix_is_malformed(issuer, prov):
    """A correctly signed code whose region does not start with a province-level code is MALFORMED."""
    code = issuer.make(credential_id=CRED, insured_region=prov + "0100", issued_at_ms=NOW)
    assert _check(code, issuer).outcome == "MALFORMED"


def test_issue_draws_random_nonce(issuer, ref):
    a = ref.payload_of(yibao_core.issue(issuer.private_key, credential_id=CRED, insured_region="440300", channel=2, issued_at_ms=NOW))
    b = ref.payload_of(yibao_core.issue(issuer.private_key, credential_id=CRED, insured_region="440300", channel=2, issued_at_ms=NOW))
    assert a[55:63] != b[55:63]
    assert ref.parse_payload(a)["ttl_s"] == 60  # the default TTL


def test_issued_family_flag(issuer, ref):
    p = ref.parse_payload(ref.payload_of(_issue(issuer, presenter_id=GUARDIAN)))
    assert p["flags"] == 1 and p["presenter_id"] == GUARDIAN
    p = ref.parse_payload(ref.payload_of(_issue(issuer)))
    assert p["flags"] == 0 and p["presenter_id"] == "0" * 32


# --------------------------------------------------------------------------
# Codes with a field that breaks its rule, correctly signed: MALFORMED
# --------------------------------------------------------------------------
@pytest.mark.parametrize(
    "fields",
    [
        {"ttl_s": 0}, {"ttl_s": 301}, {"channel": 0}, {"channel": 6}, {"insured_region": "990000"},
        {"insured_region": "44030a"}, {"insured_region": b"44\x00300"}, {"credential_id": bytes(16)},
        {"presenter_id": CRED}, {"presenter_id": bytes(16), "flags": 1}, {"presenter_id": GUARDIAN, "flags": 0},
        {"flags": 2}, {"flags": 0x80}, {"presenter_id": GUARDIAN, "flags": 3},
    ],
)  # fmt: skip
def test_signed_but_malformed(issuer, fields):
    code = issuer.make(**({"credential_id": CRED, "issued_at_ms": NOW} | fields))
    assert _check(code, issuer).outcome == "MALFORMED"


def test_signed_made_codes_are_valid(issuer):
    """Control for the test above: the same helper with lawful fields gives VALID."""
    assert _check(issuer.make(credential_id=CRED, issued_at_ms=NOW), issuer).outcome == "VALID"
    assert _check(issuer.make(credential_id=CRED, issued_at_ms=NOW, presenter_id=GUARDIAN), issuer).outcome == "VALID"


@pytest.mark.parametrize("version", [0, 2, 255])
@pytest.mark.parametrize("length", [1, 2, 63, 126, 127, 128, 300])
def test_other_versions_any_length(issuer, ref, version, length):
    body = issuer.make(credential_id=CRED, issued_at_ms=NOW, version=version)
    p = ref.payload_of(body)
    p = (p + bytes(300))[:length]
    assert _check(ref.code_of(p), issuer).outcome == "UNSUPPORTED_VERSION"


@pytest.mark.parametrize("length", [1, 2, 63, 126, 128, 191, 300])
def test_version_one_wrong_length(issuer, base, ref, length):
    p = ref.payload_of(base["plain"])
    p = (p + p + p)[:length]
    assert _check(ref.code_of(p), issuer).outcome == "MALFORMED"


# --------------------------------------------------------------------------
# Clock edges
# --------------------------------------------------------------------------
@settings(max_examples=300)
@given(
    ttl=st.integers(1, 300),
    skew=st.integers(0, 120_000),
    issued=st.integers(1767225600000, 1814400000000 - 1),
)
@example(ttl=60, skew=5000, issued=1790000000000)
@example(ttl=1, skew=0, issued=1767225600000)
@example(ttl=300, skew=0, issued=1814400000000 - 1)
def test_clock_edges(issuer, ttl, skew, issued):
    code = _issue(issuer, ttl_s=ttl, issued_at_ms=issued)
    expires = issued + ttl * 1000

    def outcome(now):
        return yibao_core.check(code, issuer.trust_list, now, skew_ms=skew).outcome

    assert outcome(issued - skew - 1) == "NOT_YET_VALID"
    assert outcome(issued - skew) == "VALID"
    assert outcome(expires + skew - 1) == "VALID"
    assert outcome(expires + skew) == "EXPIRED"
    res = yibao_core.check(code, issuer.trust_list, issued, skew_ms=skew)
    assert (res.issued_at_ms, res.ttl_s, res.expires_at_ms) == (issued, ttl, expires)


@pytest.mark.parametrize(
    ("issued", "outcome"),
    [
        (1767225600000 - 1, "KEY_NOT_VALID"),
        (1767225600000, "VALID"),
        (1814400000000 - 1, "VALID"),
        (1814400000000, "KEY_NOT_VALID"),
        (0, "KEY_NOT_VALID"),
        (2**63, "KEY_NOT_VALID"),
        (2**64 - 1, "KEY_NOT_VALID"),
    ],
)
def test_key_window_edges(issuer, issued, outcome):
    """issued_at_ms must lie in [not_before, not_after) of the key, whatever the clock."""
    assert issuer.not_before_ms == 1767225600000 and issuer.not_after_ms == 1814400000000
    code = issuer.make(credential_id=CRED, issued_at_ms=issued)
    assert yibao_core.check(code, issuer.trust_list, min(issued, 2**62)).outcome == outcome


def test_huge_clock_and_skew_do_not_overflow(issuer, base):
    for now in (0, 1, 2**62, 2**63 - 1):
        r = _check(base["plain"], issuer, now)
        assert r.outcome == ("NOT_YET_VALID" if now < NOW else "EXPIRED")
    try:
        r = _check(base["plain"], issuer, 2**63 - 1, skew_ms=2**62)
    except ValueError:
        return  # refusing an absurd skew is acceptable; a panic is not
    assert r.outcome == "EXPIRED"


def test_vectors_at_their_clock_edges(cases, trust_list, spec_keys, spec_good, ref):
    """Every vector at the edges of its own validity window: outcomes as the
    model says (time checks come before the signature, after the key)."""
    for case in cases:
        nows = [case["now_ms"], 0, 2**62]
        t = case["code"].strip(ref.ASCII_WS)
        p = ref.b45decode(t[4:]) if t.startswith("YB1:") else None
        if p and len(p) == 127:
            f = ref.parse_payload(p)
            exp = f["issued_at_ms"] + 1000 * f["ttl_s"]
            nows += [f["issued_at_ms"] - SKEW - 1, f["issued_at_ms"] - SKEW, exp + SKEW - 1, exp + SKEW]
        for now in nows:
            got = yibao_core.check(case["code"], trust_list, now, skew_ms=SKEW).outcome
            assert got == ref.model_outcome(case["code"], spec_keys, now, SKEW, spec_good), (case["name"], now)


# --------------------------------------------------------------------------
# RevocationSet
# --------------------------------------------------------------------------
@pytest.mark.parametrize("reason", ["LOST", "FROZEN", "CANCELLED", "DECEASED"])
@pytest.mark.parametrize("form", ["upper", "lower", "bytes"])
def test_revoked_with_reason(issuer, base, reason, form):
    rev = yibao_core.RevocationSet()
    cid = {"upper": CRED, "lower": CRED.lower(), "bytes": bytes.fromhex(CRED)}[form]
    rev.revoke(cid, reason)
    assert len(rev) == 1
    assert rev.reason(CRED) == rev.reason(CRED.lower()) == rev.reason(bytes.fromhex(CRED)) == reason
    res = _check(base["plain"], issuer, revocations=rev)
    assert res.outcome == "REVOKED"
    assert res.revocation_reason == reason
    assert res.credential_id == CRED and res.channel == 2  # fields still reported
    # Another person is not affected.
    assert _check(base["family"], issuer, revocations=rev).outcome == "VALID"


def test_restore(issuer, base):
    rev = yibao_core.RevocationSet()
    rev.revoke(CRED, "LOST")
    assert _check(base["plain"], issuer, revocations=rev).outcome == "REVOKED"
    assert rev.restore(CRED.lower()) is True
    assert rev.restore(CRED) is False
    assert rev.reason(CRED) is None
    assert len(rev) == 0
    res = _check(base["plain"], issuer, revocations=rev)
    assert res.outcome == "VALID" and res.revocation_reason is None


def test_revoking_the_guardian_does_not_revoke_the_insured(issuer, base):
    """REVOKED is about credential_id; the presenter (guardian) is someone else."""
    rev = yibao_core.RevocationSet()
    rev.revoke(GUARDIAN, "DECEASED")
    assert _check(base["family"], issuer, revocations=rev).outcome == "VALID"
    rev.revoke(CRED2, "FROZEN")
    assert _check(base["family"], issuer, revocations=rev).outcome == "REVOKED"


@pytest.mark.parametrize("reason", ["STOLEN", "", "LOST ", "EXPIRED"])
def test_revoke_bad_reason(reason):
    with pytest.raises(ValueError):
        yibao_core.RevocationSet().revoke(CRED, reason)


@pytest.mark.parametrize(
    "cid", [CRED[:-1], CRED + "0", "ZZ" + CRED[2:], "", b"\x01" * 15, b"\x01" * 17, b"", " " + CRED[1:]]
)
def test_revocation_bad_credential_id(cid):
    rev = yibao_core.RevocationSet()
    with pytest.raises(ValueError):
        rev.revoke(cid, "LOST")
    with pytest.raises(ValueError):
        rev.withdraw_channel(cid, 2)
    assert len(rev) == 0 and rev.withdrawals == 0


def test_channel_withdrawn_only_that_channel(issuer, base):
    rev = yibao_core.RevocationSet()
    rev.withdraw_channel(CRED, 2)
    assert rev.channel_withdrawn(CRED, 2) is True
    assert rev.channel_withdrawn(CRED.lower(), 2) is True
    assert rev.channel_withdrawn(CRED, 3) is False
    assert rev.withdrawals == 1 and len(rev) == 0
    res = _check(base["plain"], issuer, revocations=rev)  # channel 2 (WeChat)
    assert res.outcome == "CHANNEL_REVOKED" and res.revocation_reason is None
    for ch in (1, 3, 4, 5):
        assert _check(_issue(issuer, channel=ch), issuer, revocations=rev).outcome == "VALID", ch
    # The same channel for another person is fine.
    assert _check(_issue(issuer, credential_id=CRED2, channel=2), issuer, revocations=rev).outcome == "VALID"
    rev.withdraw_channel(CRED, 4)
    assert rev.withdrawals == 1
    assert _check(_issue(issuer, channel=4), issuer, revocations=rev).outcome == "CHANNEL_REVOKED"
    assert rev.restore_channel(CRED, 2) is True
    assert rev.restore_channel(CRED, 2) is False
    assert _check(base["plain"], issuer, revocations=rev).outcome == "VALID"
    assert _check(_issue(issuer, channel=4), issuer, revocations=rev).outcome == "CHANNEL_REVOKED"
    assert rev.restore_channel(bytes.fromhex(CRED), 4) is True
    assert rev.withdrawals == 0


@pytest.mark.parametrize("channel", [0, 6, 255])
def test_withdraw_bad_channel(channel):
    with pytest.raises(ValueError, match=r"(?i)channel"):
        yibao_core.RevocationSet().withdraw_channel(CRED, channel)


def test_revoked_beats_channel_revoked(issuer, base):
    rev = yibao_core.RevocationSet()
    rev.withdraw_channel(CRED, 2)
    rev.revoke(CRED, "CANCELLED")
    res = _check(base["plain"], issuer, revocations=rev)
    assert res.outcome == "REVOKED" and res.revocation_reason == "CANCELLED"


def test_revoke_many(issuer, base):
    ids = b"".join(i.to_bytes(16, "big") for i in range(1, 100_001))
    rev = yibao_core.RevocationSet()
    rev.revoke_many(ids + bytes.fromhex(CRED), "FROZEN")
    assert len(rev) == 100_001
    assert rev.reason((77).to_bytes(16, "big")) == "FROZEN"
    assert rev.reason("0" * 31 + "7") == "FROZEN"
    assert rev.reason(CRED2) is None
    res = _check(base["plain"], issuer, revocations=rev)
    assert res.outcome == "REVOKED" and res.revocation_reason == "FROZEN"
    assert _check(base["family"], issuer, revocations=rev).outcome == "VALID"
    rev.revoke_many(b"", "LOST")
    assert len(rev) == 100_001
    rev.clear()
    assert len(rev) == 0 and rev.withdrawals == 0
    assert _check(base["plain"], issuer, revocations=rev).outcome == "VALID"


@pytest.mark.parametrize("n", [1, 15, 17, 33])
def test_revoke_many_bad_length(n):
    rev = yibao_core.RevocationSet()
    with pytest.raises(ValueError):
        rev.revoke_many(b"\x01" * n, "LOST")


def test_revoke_many_bad_reason():
    with pytest.raises(ValueError):
        yibao_core.RevocationSet().revoke_many(b"\x01" * 16, "STOLEN")


# --------------------------------------------------------------------------
# ReplayGuard
# --------------------------------------------------------------------------
def test_replayed_second_time(issuer, base):
    guard = yibao_core.ReplayGuard()
    assert len(guard) == 0
    assert _check(base["plain"], issuer, replay=guard).outcome == "VALID"
    assert len(guard) == 1
    res = _check(base["plain"], issuer, replay=guard)
    assert res.outcome == "REPLAYED" and res.credential_id == CRED
    assert len(guard) == 1
    # White space does not make a new code.
    assert _check("\r\n" + base["plain"] + "\n", issuer, replay=guard).outcome == "REPLAYED"
    # Another code is not affected.
    assert _check(base["family"], issuer, replay=guard).outcome == "VALID"
    assert len(guard) == 2


def test_retry_key(issuer, base):
    guard = yibao_core.ReplayGuard()
    code = base["plain"]
    assert _check(code, issuer, replay=guard, retry_key=b"hospital-1/req-42").outcome == "VALID"
    assert _check(code, issuer, replay=guard, retry_key=b"hospital-1/req-42").outcome == "VALID"
    assert _check(code, issuer, replay=guard, retry_key=b"hospital-1/req-42").outcome == "VALID"
    assert _check(code, issuer, replay=guard, retry_key=b"hospital-2/req-42").outcome == "REPLAYED"
    assert _check(code, issuer, replay=guard, retry_key=b"hospital-1/req-43").outcome == "REPLAYED"
    assert _check(code, issuer, replay=guard).outcome == "REPLAYED"
    # The first request may still retry after the others were refused.
    assert _check(code, issuer, replay=guard, retry_key=b"hospital-1/req-42").outcome == "VALID"
    assert len(guard) == 1


def test_no_retry_key_is_no_retry(issuer, base):
    guard = yibao_core.ReplayGuard()
    assert _check(base["plain"], issuer, replay=guard).outcome == "VALID"
    assert _check(base["plain"], issuer, replay=guard, retry_key=b"k").outcome == "REPLAYED"
    assert _check(base["plain"], issuer, replay=guard, retry_key=b"").outcome == "REPLAYED"


def test_replay_is_per_credential_and_nonce(issuer):
    guard = yibao_core.ReplayGuard()
    a = _issue(issuer, nonce=NONCE)
    same_pair = _issue(issuer, nonce=NONCE, channel=3, issued_at_ms=NOW - 1000)  # other bytes, same (id, nonce)
    other_nonce = _issue(issuer, nonce=b"\x09" * 8)
    other_person = _issue(issuer, credential_id=CRED2, nonce=NONCE)
    assert _check(a, issuer, replay=guard).outcome == "VALID"
    assert _check(same_pair, issuer, replay=guard).outcome == "REPLAYED"
    assert _check(other_nonce, issuer, replay=guard).outcome == "VALID"
    assert _check(other_person, issuer, replay=guard).outcome == "VALID"
    assert len(guard) == 3


def test_only_accepted_codes_are_recorded(issuer, base, ref):
    guard = yibao_core.ReplayGuard()
    rev = yibao_core.RevocationSet()
    rev.revoke(CRED, "LOST")
    assert _check(base["plain"], issuer, replay=guard, revocations=rev).outcome == "REVOKED"
    assert _check(base["plain"], issuer, NOW + 70_000, replay=guard).outcome == "EXPIRED"
    assert _check(base["plain"], issuer, NOW - 10_000, replay=guard).outcome == "NOT_YET_VALID"
    bad = bytearray(ref.payload_of(base["plain"]))
    bad[100] ^= 1
    assert _check(ref.code_of(bytes(bad)), issuer, replay=guard).outcome == "BAD_SIGNATURE"
    rev.withdraw_channel(CRED, 2)
    rev.restore(CRED)
    assert _check(base["plain"], issuer, replay=guard, revocations=rev).outcome == "CHANNEL_REVOKED"
    assert len(guard) == 0
    rev.restore_channel(CRED, 2)
    assert _check(base["plain"], issuer, replay=guard, revocations=rev).outcome == "VALID"
    assert _check(base["plain"], issuer, replay=guard, revocations=rev).outcome == "REPLAYED"


def test_prune(issuer, base):
    guard = yibao_core.ReplayGuard()
    assert guard.prune(NOW) == 0
    assert _check(base["plain"], issuer, replay=guard).outcome == "VALID"  # ttl 60
    assert _check(base["family"], issuer, replay=guard).outcome == "VALID"  # ttl 300
    assert guard.prune(NOW) == 0 and len(guard) == 2
    assert guard.prune(NOW + 60_000 + SKEW + 2000) == 1
    assert len(guard) == 1
    assert guard.prune(NOW + 300_000 + SKEW + 2000) == 1
    assert len(guard) == 0
    assert guard.prune(NOW + 10 * DAY) == 0


@settings(max_examples=200)
@given(offset=st.integers(-SKEW, 60_000 + SKEW - 1), later=st.integers(0, 70_000))
def test_prune_never_opens_a_replay(issuer, base, offset, later):
    """Within the window in which the code is still accepted, pruning must not
    forget it: a second presentation is REPLAYED, never VALID."""
    guard = yibao_core.ReplayGuard()
    now = NOW + offset
    assert _check(base["plain"], issuer, now, replay=guard).outcome == "VALID"
    again = min(now + later, NOW + 60_000 + SKEW - 1)
    guard.prune(again)
    assert _check(base["plain"], issuer, again, replay=guard).outcome == "REPLAYED", (now, again)


def test_batch_first_of_equal_codes_wins(issuer, base):
    guard = yibao_core.ReplayGuard()
    res = yibao_core.check_batch([base["plain"], base["family"], base["plain"], base["plain"] + "\n"], issuer.trust_list, NOW, replay=guard)
    assert [r.outcome for r in res] == ["VALID", "VALID", "REPLAYED", "REPLAYED"]
    res = yibao_core.check_batch([base["plain"]], issuer.trust_list, NOW, replay=guard)
    assert res[0].outcome == "REPLAYED"


@pytest.mark.parametrize("threads", [1, 2, 8])
def test_batch_replay_in_input_order(issuer, threads):
    codes = [_issue(issuer, nonce=i.to_bytes(8, "big")) for i in range(50)]
    batch = codes + codes[::-1]
    res = yibao_core.check_batch(batch, issuer.trust_list, NOW, replay=yibao_core.ReplayGuard(), threads=threads)
    assert [r.outcome for r in res] == ["VALID"] * 50 + ["REPLAYED"] * 50


def test_batch_retry_keys(issuer, base):
    guard = yibao_core.ReplayGuard()
    codes = [base["plain"]] * 4
    res = yibao_core.check_batch(codes, issuer.trust_list, NOW, replay=guard, retry_keys=[b"a", b"a", b"b", None])
    assert [r.outcome for r in res] == ["VALID", "VALID", "REPLAYED", "REPLAYED"]
    with pytest.raises(ValueError):
        yibao_core.check_batch(codes, issuer.trust_list, NOW, replay=guard, retry_keys=[b"a"])


# --------------------------------------------------------------------------
# Order of the checks (section 4: the first failing check decides)
# --------------------------------------------------------------------------
@pytest.fixture(scope="module")
def stranger():
    """A key that is not in the test issuer's trust list."""
    return yibao_core.sm2_generate_private_key()


def _bad_sig(ref, code):
    p = bytearray(ref.payload_of(code))
    p[90] ^= 0x40
    return ref.code_of(bytes(p))


def test_order_revoked_with_bad_signature_is_bad_signature(issuer, base, ref):
    rev = yibao_core.RevocationSet()
    rev.revoke(CRED, "LOST")
    rev.withdraw_channel(CRED, 2)
    assert _check(_bad_sig(ref, base["plain"]), issuer, revocations=rev).outcome == "BAD_SIGNATURE"


def test_order_expired_unknown_key_is_unknown_key(issuer, stranger):
    code = yibao_core.issue(stranger, credential_id=CRED, insured_region="440300", channel=2, issued_at_ms=NOW)
    assert _check(code, issuer, NOW + DAY).outcome == "UNKNOWN_KEY"
    assert _check(code, issuer, NOW - DAY).outcome == "UNKNOWN_KEY"


def test_order_malformed_before_unknown_key(issuer, stranger, ref):
    body = ref.build_body(key_id="DEADBEEF", credential_id=CRED, issued_at_ms=NOW, ttl_s=0)
    code = ref.code_of(body + yibao_core.sm2_sign(stranger, body))
    assert _check(code, issuer).outcome == "MALFORMED"


def test_order_unsupported_version_before_everything(issuer, stranger, ref):
    body = ref.build_body(key_id="DEADBEEF", credential_id=bytes(16), issued_at_ms=0, ttl_s=0, channel=0, version=2)
    assert _check(ref.code_of(body), issuer).outcome == "UNSUPPORTED_VERSION"


def test_order_key_not_valid_before_time(issuer):
    before = issuer.make(credential_id=CRED, issued_at_ms=issuer.not_before_ms - DAY)
    assert _check(before, issuer, NOW).outcome == "KEY_NOT_VALID"  # also long expired
    assert _check(before, issuer, issuer.not_before_ms - DAY).outcome == "KEY_NOT_VALID"  # even at its own time
    after = issuer.make(credential_id=CRED, issued_at_ms=issuer.not_after_ms + DAY)
    assert _check(after, issuer, NOW).outcome == "KEY_NOT_VALID"  # also not yet valid


def test_order_key_not_valid_before_bad_signature(issuer, ref):
    code = issuer.make(credential_id=CRED, issued_at_ms=issuer.not_after_ms + 1)
    assert _check(_bad_sig(ref, code), issuer, issuer.not_after_ms + 1).outcome == "KEY_NOT_VALID"


def test_order_time_before_signature(issuer, base, ref):
    bad = _bad_sig(ref, base["plain"])
    assert _check(bad, issuer, NOW - SKEW - 1).outcome == "NOT_YET_VALID"
    assert _check(bad, issuer, NOW + 60_000 + SKEW).outcome == "EXPIRED"
    assert _check(bad, issuer, NOW).outcome == "BAD_SIGNATURE"


def test_order_time_before_revocation(issuer, base):
    rev = yibao_core.RevocationSet()
    rev.revoke(CRED, "DECEASED")
    assert _check(base["plain"], issuer, NOW + DAY, revocations=rev).outcome == "EXPIRED"
    assert _check(base["plain"], issuer, NOW - DAY, revocations=rev).outcome == "NOT_YET_VALID"


def test_order_bad_signature_before_replay(issuer, base, ref):
    """A forged code re-using an accepted (id, nonce) is BAD_SIGNATURE, not REPLAYED."""
    guard = yibao_core.ReplayGuard()
    assert _check(base["plain"], issuer, replay=guard).outcome == "VALID"
    assert _check(_bad_sig(ref, base["plain"]), issuer, replay=guard).outcome == "BAD_SIGNATURE"


def test_order_revocation_before_replay(issuer, base):
    guard = yibao_core.ReplayGuard()
    rev = yibao_core.RevocationSet()
    assert _check(base["plain"], issuer, replay=guard, revocations=rev).outcome == "VALID"
    rev.withdraw_channel(CRED, 2)
    assert _check(base["plain"], issuer, replay=guard, revocations=rev).outcome == "CHANNEL_REVOKED"
    rev.revoke(CRED, "LOST")
    assert _check(base["plain"], issuer, replay=guard, revocations=rev).outcome == "REVOKED"


# --------------------------------------------------------------------------
# Keys sharing a key id (section 4, step 2)
# --------------------------------------------------------------------------
OLD_NB, OLD_NA = "2024-01-01T00:00:00Z", "2025-07-01T00:00:00Z"
NEW_NB, NEW_NA = "2026-01-01T00:00:00Z", "2027-07-01T00:00:00Z"
IN_OLD = 1735689600000  # 2025-01-01


@pytest.fixture(scope="module")
def shared_id(ref):
    k_old, k_new = COLLIDING
    p_old, p_new = (yibao_core.sm2_public_key(k) for k in COLLIDING)
    assert yibao_core.key_id(p_old) == yibao_core.key_id(p_new) == "4031F913"
    entries = {
        "old": {"public_key": p_old, "not_before": OLD_NB, "not_after": OLD_NA},
        "new": {"public_key": p_new, "not_before": NEW_NB, "not_after": NEW_NA},
    }
    lists = {
        "old-first": yibao_core.TrustList.from_json(ref.trust_list_json([entries["old"], entries["new"]])),
        "new-first": yibao_core.TrustList.from_json(ref.trust_list_json([entries["new"], entries["old"]])),
    }

    def make(priv, issued):
        return yibao_core.issue(priv, credential_id=CRED, insured_region="440300", channel=2, issued_at_ms=issued)

    return {"old": k_old, "new": k_new, "lists": lists, "make": make, "pub_old": p_old}


@pytest.mark.parametrize("order", ["old-first", "new-first"])
def test_shared_key_id_each_key_in_its_window(shared_id, order):
    tl = shared_id["lists"][order]
    assert len(tl) == 2 and tl.key_ids == ["4031F913", "4031F913"]
    new_code = shared_id["make"](shared_id["new"], NOW)
    old_code = shared_id["make"](shared_id["old"], IN_OLD)
    assert yibao_core.check(new_code, tl, NOW).outcome == "VALID"
    assert yibao_core.check(old_code, tl, IN_OLD).outcome == "VALID"
    assert yibao_core.check(old_code, tl, NOW).outcome == "EXPIRED"


@pytest.mark.parametrize("order", ["old-first", "new-first"])
def test_shared_key_id_window_and_signature_from_different_keys(shared_id, order):
    """Signed by the retired key but dated inside the new key's window (and
    vice versa): no single key passes both steps 3 and 5, so not VALID."""
    tl = shared_id["lists"][order]
    forged_date = shared_id["make"](shared_id["old"], NOW)
    res = yibao_core.check(forged_date, tl, NOW)
    assert res.outcome != "VALID"
    assert res.outcome in {"KEY_NOT_VALID", "BAD_SIGNATURE"}
    backdated = shared_id["make"](shared_id["new"], IN_OLD)
    res = yibao_core.check(backdated, tl, IN_OLD)
    assert res.outcome in {"KEY_NOT_VALID", "BAD_SIGNATURE"}


def test_shared_key_id_neither_window(shared_id):
    gap = 1754006400000  # 2025-08-01, between the two windows
    for tl in shared_id["lists"].values():
        for priv in (shared_id["old"], shared_id["new"]):
            assert yibao_core.check(shared_id["make"](priv, gap), tl, gap).outcome == "KEY_NOT_VALID"


def test_same_key_listed_twice(shared_id, ref):
    """One key listed with two windows (a shared id): either window will do."""
    pub = shared_id["pub_old"]
    tl = yibao_core.TrustList.from_json(
        ref.trust_list_json(
            [
                {"public_key": pub, "not_before": OLD_NB, "not_after": OLD_NA},
                {"public_key": pub, "not_before": NEW_NB, "not_after": NEW_NA},
            ]
        )
    )
    for issued in (IN_OLD, NOW):
        assert yibao_core.check(shared_id["make"](shared_id["old"], issued), tl, issued).outcome == "VALID"
    gap = 1754006400000
    assert yibao_core.check(shared_id["make"](shared_id["old"], gap), tl, gap).outcome == "KEY_NOT_VALID"


# --------------------------------------------------------------------------
# Argument types
# --------------------------------------------------------------------------
def test_check_argument_types(issuer, base):
    with pytest.raises(TypeError):
        yibao_core.check(12345, issuer.trust_list, NOW)  # type: ignore[arg-type]
    with pytest.raises(TypeError):
        yibao_core.check(base["plain"], json.loads(issuer.trust_list_json), NOW)  # type: ignore[arg-type]
    with pytest.raises(TypeError):
        yibao_core.check(base["plain"], issuer.trust_list, NOW, revocations=object())  # type: ignore[arg-type]
