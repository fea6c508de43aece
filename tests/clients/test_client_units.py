"""Pure-client pieces: enum names, code-file lines, JSON conversion, channel settings."""

from __future__ import annotations

import json

import pytest
import yibao_client as yc
from google.protobuf.timestamp_pb2 import Timestamp
from yibao.v1 import admin_pb2, common_pb2, settlement_pb2, verifier_pb2
from yibao_client import _channel, enums
from yibao_client.codes import iter_code_lines, split_code_lines


# -- enums -------------------------------------------------------------------------
def test_outcome_names_round_trip() -> None:
    assert yc.OUTCOMES == (
        "VALID",
        "MALFORMED",
        "UNSUPPORTED_VERSION",
        "UNKNOWN_KEY",
        "KEY_NOT_VALID",
        "NOT_YET_VALID",
        "EXPIRED",
        "BAD_SIGNATURE",
        "REVOKED",
        "CHANNEL_REVOKED",
        "REPLAYED",
    )
    for v in verifier_pb2.Outcome.values():
        name = yc.outcome_name(v)
        assert yc.outcome_value(name) == v
        assert yc.outcome_value(name.lower()) == v
        assert yc.outcome_value(verifier_pb2.Outcome.Name(v)) == v
    assert yc.outcome_name(verifier_pb2.OUTCOME_VALID) == "VALID"
    assert yc.outcome_value("VALID") == verifier_pb2.OUTCOME_VALID == 1


def test_channel_names_are_credential_v1_numbers() -> None:
    assert yc.CHANNELS == ("national_app", "wechat", "alipay", "bank_app", "gov_service")
    for number, name in enumerate(yc.CHANNELS, start=1):
        assert yc.channel_value(name) == number
        assert yc.channel_name(number) == name
        assert yc.channel_value(name.upper()) == number
        assert yc.channel_value("CHANNEL_" + name.upper()) == number
        assert common_pb2.Channel.Name(number) == "CHANNEL_" + name.upper()


@pytest.mark.parametrize(
    ("names", "to_name", "to_value", "enum"),
    [
        (
            yc.REVOCATION_REASONS,
            yc.revocation_reason_name,
            yc.revocation_reason_value,
            common_pb2.RevocationReason,
        ),
        (yc.ACCOUNT_STATUSES, yc.account_status_name, yc.account_status_value, common_pb2.AccountStatus),
        (yc.SETTLE_OUTCOMES, yc.settle_outcome_name, yc.settle_outcome_value, settlement_pb2.SettleOutcome),
        (yc.REFUND_OUTCOMES, yc.refund_outcome_name, yc.refund_outcome_value, settlement_pb2.RefundOutcome),
    ],
)
def test_other_enums_round_trip(names, to_name, to_value, enum) -> None:  # type: ignore[no-untyped-def]
    assert len(names) == len(enum.values()) - 1
    for v in enum.values():
        assert to_value(to_name(v)) == v
        assert to_value(enum.Name(v)) == v


def test_enum_names_spot_checks() -> None:
    assert yc.REVOCATION_REASONS == ("lost", "frozen", "cancelled", "deceased")
    assert yc.ACCOUNT_STATUSES == ("active", "frozen")
    assert (
        yc.settle_outcome_name(settlement_pb2.SETTLE_OUTCOME_INSUFFICIENT_BALANCE) == "INSUFFICIENT_BALANCE"
    )
    assert yc.refund_outcome_value("exceeds_remaining") == settlement_pb2.REFUND_OUTCOME_EXCEEDS_REMAINING


def test_unknown_enum_values() -> None:
    # a number from a newer server round-trips as its decimal text
    assert yc.outcome_name(42) == "42" and yc.outcome_value("42") == 42
    assert yc.channel_value(7) == 7
    with pytest.raises(ValueError, match="national_app, wechat, alipay, bank_app, gov_service"):
        yc.channel_value("weibo")
    with pytest.raises(ValueError, match="lost"):
        yc.revocation_reason_value("")
    with pytest.raises(TypeError):
        yc.outcome_value(True)


def test_every_known_outcome_has_chinese_words() -> None:
    assert set(enums.OUTCOME_WORDS) == set(yc.OUTCOMES)
    assert set(enums.CHANNEL_WORDS) == set(yc.CHANNELS)
    assert set(enums.REVOCATION_WORDS) == set(yc.REVOCATION_REASONS)


# -- code-file lines ---------------------------------------------------------------
def test_lines_keep_inner_and_trailing_spaces() -> None:
    text = "YB1:AB CD  EF\r\nYB1:G H \n\n \t \r\nYB1:IJ\x0bK\x0cL\x1cM\x1dN\x1eO\x85P\u2028Q\u2029R\nYB1:last"
    assert split_code_lines(text) == [
        (1, "YB1:AB CD  EF"),
        (2, "YB1:G H "),
        (5, "YB1:IJ\x0bK\x0cL\x1cM\x1dN\x1eO\x85P\u2028Q\u2029R"),
        (6, "YB1:last"),
    ]


def test_only_one_line_ending_is_removed() -> None:
    assert list(iter_code_lines([b"A B\r\r\n", b"C\n", b"\r\n"])) == [(1, "A B\r"), (2, "C")]


def test_undecodable_bytes_still_make_a_line() -> None:
    assert list(iter_code_lines([b"YB1:\xff\xfe\n"])) == [(1, "YB1:\ufffd\ufffd")]


def test_real_codes_with_spaces_survive(tmp_path) -> None:  # type: ignore[no-untyped-def]
    codes = ["YB1:" + "A B" * 60 + "Z", "YB1:" + " " * 10 + "X"]
    f = tmp_path / "codes.txt"
    f.write_bytes(("\r\n".join(codes) + "\r\n").encode())
    with open(f, "rb") as fh:
        assert [c for _, c in iter_code_lines(fh)] == codes


# -- to_dict -------------------------------------------------------------------------
def test_to_dict_rules() -> None:
    r = verifier_pb2.VerifyResponse(
        request_id="r",
        outcome=verifier_pb2.OUTCOME_VALID,
        credential=common_pb2.Credential(
            credential_id="AB" * 16,
            channel=common_pb2.CHANNEL_BANK_APP,
            issued_at=Timestamp(seconds=1_780_000_000, nanos=7_000_000),
        ),
        ec_token="t",
    )
    d = yc.to_dict(r)
    assert d["outcome"] == "VALID"
    assert d["revocation_reason"] is None  # UNSPECIFIED
    assert d["token_expires_at"] is None  # unset
    assert d["credential"]["channel"] == "bank_app"
    assert d["credential"]["issued_at"] == "2026-05-28T20:26:40.007Z"
    assert d["credential"]["expires_at"] is None
    assert d["credential"]["family"] is False and d["credential"]["presenter_id"] == ""
    json.dumps(d)

    s = settlement_pb2.SettleResponse(
        outcome=settlement_pb2.SETTLE_OUTCOME_SETTLED,
        account_pay_fen=9_007_199_254_740_993,  # beyond a double's exact range: stays an int
        receipt=b"\x01\x02",
    )
    d = yc.to_dict(s)
    assert d["outcome"] == "SETTLED" and d["receipt"] == "0102" and d["receipt_signature"] == ""
    assert d["account_pay_fen"] == 9_007_199_254_740_993 and isinstance(d["account_pay_fen"], int)

    a = yc.to_dict(admin_pb2.LoadTrustListResponse(keys_loaded=2, key_ids=["A", "B"]))
    assert a == {"keys_loaded": 2, "key_ids": ["A", "B"]}
    g = yc.to_dict(
        settlement_pb2.GetSettlementResponse(found=True, refunds=[settlement_pb2.RefundRecord(refund_id="x")])
    )
    assert g["settlement"] is None and g["refunds"][0]["refund_id"] == "x"


def test_format_time_is_china_standard_time() -> None:
    ts = Timestamp(seconds=1_780_000_000, nanos=123_000_000)
    assert yc.format_time(ts) == "2026-05-29 04:26:40.123 +08:00"
    assert yc.timestamp_text(ts) == "2026-05-28T20:26:40.123Z"
    assert yc.timestamp_ms(ts) == 1_780_000_000_123


# -- channel settings -------------------------------------------------------------
def test_service_config_retries_what_a_node_answers_for_a_call_it_did_not_take() -> None:
    cfg = json.loads(_channel.service_config(3, 0.2, 3.0))
    (mc,) = cfg["methodConfig"]
    assert {n["service"] for n in mc["name"]} == {
        "yibao.v1.Verifier",
        "yibao.v1.Settlement",
        "yibao.v1.Admin",
    }
    assert mc["retryPolicy"] == {
        "maxAttempts": 4,
        "initialBackoff": "0.200s",
        "maxBackoff": "3.000s",
        "backoffMultiplier": 2,
        "retryableStatusCodes": ["UNAVAILABLE", "RESOURCE_EXHAUSTED", "CANCELLED"],
    }
    # Never a code that says the request or the caller is at fault, nor a spent deadline.
    assert not {"INVALID_ARGUMENT", "PERMISSION_DENIED", "UNAUTHENTICATED", "DEADLINE_EXCEEDED", "INTERNAL",
                "UNKNOWN"} & set(mc["retryPolicy"]["retryableStatusCodes"])  # fmt: skip
    assert cfg["retryThrottling"] == {"maxTokens": 100, "tokenRatio": 0.1}
    assert "retryPolicy" not in json.loads(_channel.service_config(0, 0.2, 3.0))["methodConfig"][0]
    with pytest.raises(ValueError):
        _channel.service_config(5, 0.2, 3.0)


def test_channel_options_fit_a_full_batch() -> None:
    opts = dict(_channel.channel_options(retries=4, initial_backoff=0.2, max_backoff=3.0))
    batch = verifier_pb2.VerifyBatchRequest(
        requests=[
            verifier_pb2.VerifyRequest(
                code="YB1:" + "X" * 191, institution_code="H44030000001", request_id="f" * 64
            )
            for _ in range(yc.MAX_BATCH)
        ]
    )
    size = batch.ByteSize()
    assert size < opts["grpc.per_rpc_retry_buffer_size"] <= opts["grpc.retry_buffer_size"]
    assert size < opts["grpc.max_send_message_length"]
    assert opts["grpc.max_receive_message_length"] >= 4 * size
    assert opts["grpc.keepalive_time_ms"] > 0
    assert (
        dict(
            _channel.channel_options(retries=0, initial_backoff=1, max_backoff=1, server_name="node.example")
        )["grpc.ssl_target_name_override"]
        == "node.example"
    )


def test_to_dict_map_fields_and_new_words() -> None:
    from yibao_client import enums

    e = admin_pb2.AuditEntry(id="1-0", who="H1", what="Settle", outcome="SETTLED", detail={"a": "1", "b": "x y"})
    d = yc.to_dict(e)
    assert d == {"id": "1-0", "who": "H1", "what": "Settle", "when": None, "outcome": "SETTLED",
                 "detail": {"a": "1", "b": "x y"}}  # fmt: skip
    json.dumps(d)
    assert yc.to_dict(admin_pb2.ReadAuditResponse(region="44", entries=[e]))["entries"][0]["detail"]["b"] == "x y"
    assert set(enums.SETTLE_OUTCOME_WORDS) == set(yc.SETTLE_OUTCOMES)
    assert set(enums.REFUND_OUTCOME_WORDS) == set(yc.REFUND_OUTCOMES)
    assert set(enums.ACCOUNT_STATUS_WORDS) == set(yc.ACCOUNT_STATUSES)
