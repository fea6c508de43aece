"""Client behaviour against a stand-in peer (tests/clients/conftest.py):
retries on UNAVAILABLE and on a node's refusals (throttled; never after the
caller cancels), error wrapping with rich status, batch and stream
ordering, for the sync and the asyncio client."""

from __future__ import annotations

import asyncio
import pickle

import grpc
import pytest
import yibao_client
from client_fake_peer import CREDENTIAL_ID, INSTITUTION, FakeNode
from yibao.v1 import verifier_pb2
from yibao_client import AsyncClient, Client, YibaoError

FAST = {"retry_initial_backoff": 0.01, "retry_max_backoff": 0.05}


def test_retries_unavailable_then_answers(fake_node: FakeNode) -> None:
    fake_node.fail_first = 2
    with Client(fake_node.target, insecure=True, retries=2, **FAST) as c:
        r = c.verify("OK-1", institution_code=INSTITUTION, request_id="req-1")
    assert r.outcome == verifier_pb2.OUTCOME_VALID
    assert r.ec_token == "tok-req-1"
    sent = fake_node.calls_to("Verify")
    assert len(sent) == 3
    # every attempt carries the same request: the request id is the idempotency key
    assert all(s == sent[0] for s in sent)
    assert sent[0].request_id == "req-1"


def test_gives_up_after_retries(fake_node: FakeNode) -> None:
    fake_node.fail_first = 10
    with Client(fake_node.target, insecure=True, retries=1, **FAST) as c:
        with pytest.raises(YibaoError) as info:
            c.verify("OK-1", institution_code=INSTITUTION)
    e = info.value
    assert e.code is grpc.StatusCode.UNAVAILABLE
    assert e.details == "national store unreachable"
    assert e.method == "/yibao.v1.Verifier/Verify"
    assert isinstance(e.__cause__, grpc.RpcError)
    assert len(fake_node.calls_to("Verify")) == 2


def test_no_retry_when_retries_is_zero(fake_node: FakeNode) -> None:
    fake_node.fail_first = 1
    with Client(fake_node.target, insecure=True, retries=0) as c:
        with pytest.raises(YibaoError) as info:
            c.verify("OK-1", institution_code=INSTITUTION)
    assert info.value.code is grpc.StatusCode.UNAVAILABLE
    assert len(fake_node.calls_to("Verify")) == 1


@pytest.mark.parametrize("code", [grpc.StatusCode.RESOURCE_EXHAUSTED, grpc.StatusCode.CANCELLED])
def test_a_nodes_refusal_is_retried(fake_node: FakeNode, code: grpc.StatusCode) -> None:
    """RESOURCE_EXHAUSTED (the node's limits, reason OVERLOADED) and a
    CANCELLED sent by the server (gRPC core's queue bound) are sent again like
    UNAVAILABLE; without retries the caller sees them, with the reason."""
    fake_node.fail_code, fake_node.fail_first = code, 2
    with Client(fake_node.target, insecure=True, retries=2, **FAST) as c:
        r = c.verify("OK-1", institution_code=INSTITUTION, request_id="req-1")
    assert r.outcome == verifier_pb2.OUTCOME_VALID
    assert len(fake_node.calls_to("Verify")) == 3
    fake_node.fail_first = 4
    with Client(fake_node.target, insecure=True, retries=0) as c:
        with pytest.raises(YibaoError) as info:
            c.verify("OK-1", institution_code=INSTITUTION, request_id="req-2")
    assert info.value.code is code
    assert info.value.reason == ("OVERLOADED" if code == grpc.StatusCode.RESOURCE_EXHAUSTED else None)
    assert len(fake_node.calls_to("Verify")) == 4


def test_a_call_the_caller_cancels_is_not_sent_again(fake_node: FakeNode) -> None:
    """CANCELLED is retryable only as the server's answer: gRPC never resends
    a call its caller cancelled (here an asyncio task, while the node works)."""
    fake_node.verify_s = 0.5

    async def go() -> None:
        async with AsyncClient(fake_node.target, insecure=True, **FAST) as c:
            task = asyncio.create_task(c.verify("OK-1", institution_code=INSTITUTION, request_id="req-1"))
            await asyncio.sleep(0.2)
            task.cancel()
            with pytest.raises(asyncio.CancelledError):
                await task
            await asyncio.sleep(1.0)  # many backoffs

    asyncio.run(go())
    assert len(fake_node.calls_to("Verify")) == 1


def test_retries_stop_while_the_node_keeps_refusing(fake_node: FakeNode) -> None:
    """Bounded beyond maxAttempts: retry throttling. A node refusing every
    call gets each of the first calls up to 5 times, then each call once
    (no retries on top of load it cannot take)."""
    fake_node.fail_code, fake_node.fail_first = grpc.StatusCode.RESOURCE_EXHAUSTED, 10_000
    with Client(fake_node.target, insecure=True, retries=4, **FAST) as c:
        for i in range(40):
            with pytest.raises(YibaoError):
                c.verify("OK", institution_code=INSTITUTION, request_id=f"t-{i}")
    sent = [r.request_id for r in fake_node.calls_to("Verify")]  # type: ignore[attr-defined]
    assert sent.count("t-0") == 5, "the first call was not retried"
    # 100 tokens, one a failed attempt, retries only above half: about 50 attempts retried, then none
    assert len(sent) <= 40 + 55, f"{len(sent)} attempts for 40 calls"
    assert all(sent.count(f"t-{i}") == 1 for i in range(30, 40)), "retries went on"


def test_batch_is_retried_too(fake_node: FakeNode) -> None:
    fake_node.fail_first = 1
    items = [(f"OK-{i}", INSTITUTION, f"b-{i}") for i in range(1000)]
    with Client(fake_node.target, insecure=True, **FAST) as c:
        answers = c.verify_batch(items)
    assert [a.request_id for a in answers] == [f"b-{i}" for i in range(1000)]
    # a full batch of 1,000 codes fits the retry buffer, so it was replayed
    assert len(fake_node.calls_to("VerifyBatch")) == 2


def test_invalid_argument_with_rich_status(fake_node: FakeNode) -> None:
    with Client(fake_node.target, insecure=True, **FAST) as c:
        with pytest.raises(YibaoError) as info:
            c.verify("OK-1", institution_code=INSTITUTION, request_id="")
    e = info.value
    assert e.code is grpc.StatusCode.INVALID_ARGUMENT
    assert e.code_name == "INVALID_ARGUMENT"
    assert e.details == "request_id is empty"
    assert e.reason == "FIELD_OUT_OF_FORM"
    assert e.domain == "yibao.v1"
    assert e.metadata == {"field": "request_id"}
    assert e.field_violations == [("request_id", "request_id is empty")]
    assert e.status is not None and e.status.code == grpc.StatusCode.INVALID_ARGUMENT.value[0]
    line = str(e)
    assert "\n" not in line
    assert line.startswith("INVALID_ARGUMENT: request_id is empty")
    assert "reason=FIELD_OUT_OF_FORM" in line and "field=request_id" in line
    # not retried: the request is at fault, sending it again cannot help
    assert len(fake_node.calls_to("Verify")) == 1
    # survives pickling (e.g. across a process pool)
    again = pickle.loads(pickle.dumps(e))
    assert again.reason == e.reason and again.code is e.code


def test_error_without_rich_status(fake_node: FakeNode) -> None:
    fake_node.fail_first = 5
    with Client(fake_node.target, insecure=True, retries=0) as c:
        with pytest.raises(YibaoError) as info:
            c.verify_batch([("OK", INSTITUTION)])
    assert info.value.status is None
    assert info.value.reason is None and info.value.metadata == {}


def test_default_request_id_is_fresh(fake_node: FakeNode) -> None:
    with Client(fake_node.target, insecure=True) as c:
        a = c.verify("OK", institution_code=INSTITUTION)
        b = c.verify("OK", institution_code=INSTITUTION)
    assert len(a.request_id) == 32 and int(a.request_id, 16) >= 0
    assert a.request_id != b.request_id


def test_stream_answers_in_order(fake_node: FakeNode) -> None:
    codes = ["OK-a", "EXP-b", "junk", "REV-c"] * 50
    with Client(fake_node.target, insecure=True) as c:
        answers = list(c.verify_stream((code, INSTITUTION, f"s-{i}") for i, code in enumerate(codes)))
    assert [a.request_id for a in answers] == [f"s-{i}" for i in range(len(codes))]
    assert [yibao_client.outcome_name(a.outcome) for a in answers[:4]] == [
        "VALID",
        "EXPIRED",
        "MALFORMED",
        "REVOKED",
    ]


def test_batch_size_checked_locally() -> None:
    with Client("127.0.0.1:9", insecure=True) as c:
        with pytest.raises(ValueError, match="1 to 1000"):
            c.verify_batch([])
        with pytest.raises(ValueError, match="1 to 1000"):
            c.verify_batch([("x", INSTITUTION)] * 1001)
        with pytest.raises(TypeError, match="fen"):
            c.settle(
                ec_token="t", institution_code=INSTITUTION, order_id="o", total_fen=10.5, account_pay_fen=0
            )  # type: ignore[arg-type]


def test_constructor_rules(tmp_path) -> None:
    with pytest.raises(ValueError, match="insecure"):
        Client(insecure=True, root_certificates=b"pem")
    with pytest.raises(ValueError, match="both"):
        Client(private_key=b"k")
    with pytest.raises(ValueError, match="retries"):
        Client(insecure=True, retries=5)
    with pytest.raises(ValueError, match="cannot read"):
        Client(root_certificates=str(tmp_path / "missing.pem"))


def test_async_client(fake_node: FakeNode) -> None:
    async def run() -> None:
        fake_node.fail_first = 1
        async with AsyncClient(fake_node.target, insecure=True, **FAST) as c:
            r = await c.verify("OK", institution_code=INSTITUTION, request_id="a-1")
            assert r.outcome == verifier_pb2.OUTCOME_VALID
            assert len(fake_node.calls_to("Verify")) == 2  # retried once

            with pytest.raises(YibaoError) as info:
                await c.verify("OK", institution_code="", request_id="a-2")
            assert info.value.code is grpc.StatusCode.INVALID_ARGUMENT
            assert info.value.reason == "FIELD_OUT_OF_FORM"
            assert info.value.metadata == {"field": "institution_code"}

            batch = await c.verify_batch([("EXP", INSTITUTION, "x"), ("OK", INSTITUTION, "y")])
            assert [b.request_id for b in batch] == ["x", "y"]

            async def gen():
                for i in range(20):
                    yield ("OK", INSTITUTION, f"st-{i}")

            got = [r.request_id async for r in c.verify_stream(gen())]
            assert got == [f"st-{i}" for i in range(20)]

            key = await c.get_node_key()
            assert key.region == "44"
            rv = await c.revoke(CREDENTIAL_ID.lower(), "lost")
            assert rv.reason == 1

    asyncio.run(run())


def test_admin_calls_map_names(fake_node: FakeNode) -> None:
    with Client(fake_node.target, insecure=True) as c:
        c.revoke(CREDENTIAL_ID, "deceased")
        c.withdraw_channel(CREDENTIAL_ID, "bank_app")
        c.restore_channel(CREDENTIAL_ID, 5)
        tl = c.load_trust_list(b'{"version": 1, "keys": [{"key_id": "0F26FD26"}]}')
    assert tl.keys_loaded == 1 and list(tl.key_ids) == ["0F26FD26"]
    assert fake_node.calls_to("Revoke")[0].reason == 4
    assert fake_node.calls_to("WithdrawChannel")[0].channel == 4
    assert fake_node.calls_to("RestoreChannel")[0].channel == 5


def test_stream_retried_before_any_answer(fake_node: FakeNode) -> None:
    fake_node.fail_first = 1  # the first stream fails before it answers anything
    with Client(fake_node.target, insecure=True, retries=1, **FAST) as c:
        got = [r.request_id for r in c.verify_stream([("OK", INSTITUTION, "s1"), ("EXP", INSTITUTION, "s2")])]
    assert got == ["s1", "s2"]
    assert len(fake_node.calls_to("VerifyStream")) == 2


def test_stream_error_is_wrapped(fake_node: FakeNode) -> None:
    fake_node.fail_first = 100
    with Client(fake_node.target, insecure=True, retries=1, **FAST) as c:
        with pytest.raises(YibaoError) as info:
            list(c.verify_stream([("OK", INSTITUTION, "s1")]))
    assert info.value.code is grpc.StatusCode.UNAVAILABLE
    assert info.value.method == "/yibao.v1.Verifier/VerifyStream"


def test_wait_ready(fake_node: FakeNode) -> None:
    with Client(fake_node.target, insecure=True) as c:
        c.wait_ready(5)
    with Client("127.0.0.1:9", insecure=True) as c:
        with pytest.raises(YibaoError) as info:
            c.wait_ready(0.2)
        assert info.value.code is grpc.StatusCode.UNAVAILABLE

    async def run() -> None:
        async with AsyncClient(fake_node.target, insecure=True) as a:
            await a.wait_ready(5)
        async with AsyncClient("127.0.0.1:9", insecure=True) as a:
            with pytest.raises(YibaoError):
                await a.wait_ready(0.2)

    asyncio.run(run())
