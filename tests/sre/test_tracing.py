"""OpenTelemetry tracing across a forwarded call: two real nodes export
their spans over OTLP/HTTP to a collector in this test (a real HTTP server
decoding the real protobuf export), and the Settle of a person insured in
Beijing, made at a Guangdong hospital, is one trace over both nodes. And
OpenTelemetry's own variables turn it on and off as their specification says."""

from __future__ import annotations

import gzip
import os
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest
from opentelemetry.proto.collector.trace.v1 import trace_service_pb2

from server import config
from server.local import Issuer, Node, Redis, free_port
from yibao.v1 import admin_pb2, admin_pb2_grpc, settlement_pb2, settlement_pb2_grpc, verifier_pb2, verifier_pb2_grpc

HOSPITAL = "H44030500001"


class Collector:
    """An OTLP/HTTP trace receiver on loopback: keeps every span it is sent
    as (region, name, trace id, span id, parent span id)."""

    def __init__(self) -> None:
        self.spans: list[tuple[str, str, bytes, bytes, bytes]] = []
        spans, lock = self.spans, threading.Lock()

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:  # noqa: N802 - http.server's name
                body = self.rfile.read(int(self.headers["Content-Length"]))
                if self.headers.get("Content-Encoding") == "gzip":
                    body = gzip.decompress(body)
                export = trace_service_pb2.ExportTraceServiceRequest.FromString(body)
                with lock:
                    for rs in export.resource_spans:
                        attrs = {a.key: a.value.string_value for a in rs.resource.attributes}
                        for ss in rs.scope_spans:
                            for s in ss.spans:
                                spans.append((attrs.get("yibao.region", ""), s.name, s.trace_id, s.span_id,
                                              s.parent_span_id))  # fmt: skip
                reply = trace_service_pb2.ExportTraceServiceResponse().SerializeToString()
                self.send_response(200)
                self.send_header("Content-Type", "application/x-protobuf")
                self.send_header("Content-Length", str(len(reply)))
                self.end_headers()
                self.wfile.write(reply)

            def log_message(self, *args: object) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", free_port()), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


def test_a_forwarded_settle_is_one_trace_over_both_provinces(tmp_path: Path) -> None:
    national = Redis(tmp_path / "national").start()
    regional = Redis(tmp_path / "regional", appendfsync="always").start()
    issuer = Issuer.create(tmp_path)
    collector = Collector()
    beijing = Node(tmp_path / "bj", national.url, issuer.trust_list_path, region="11",
                   extra=("--regional-redis-url", regional.url, "--otel-endpoint", collector.url))  # fmt: skip
    guangdong = Node(
        tmp_path / "gd", national.url, issuer.trust_list_path, region="44",
        extra=("--regional-redis-url", regional.url, "--peer", f"11={beijing.target}",
               "--otel-endpoint", collector.url),
    )  # fmt: skip
    try:
        beijing.start()
        guangdong.start()
        cid = os.urandom(16).hex().upper()
        with guangdong.channel() as ch:
            admin_pb2_grpc.AdminStub(ch).OpenAccount(admin_pb2.OpenAccountRequest(
                credential_id=cid, balance_fen=10_000, per_payment_limit_fen=10_000, daily_limit_fen=10_000,
                insured_region="110105"), timeout=10)  # fmt: skip
            valid = verifier_pb2_grpc.VerifierStub(ch).Verify(verifier_pb2.VerifyRequest(
                code=issuer.issue(cid, "110105", 2), institution_code=HOSPITAL, request_id="v1"), timeout=10)  # fmt: skip
            settled = settlement_pb2_grpc.SettlementStub(ch).Settle(settlement_pb2.SettleRequest(
                ec_token=valid.ec_token, institution_code=HOSPITAL, order_id="trace-1", total_fen=500,
                account_pay_fen=300), timeout=10)  # fmt: skip
        assert settled.outcome == settlement_pb2.SETTLE_OUTCOME_SETTLED
        assert settled.settled_region == "11"
    finally:
        # A node sends what it buffered when it stops.
        guangdong.stop()
        beijing.stop()
        regional.stop()
        national.stop()
        collector.close()

    settles = [s for s in collector.spans if s[1] == "yibao.v1.Settlement/Settle"]
    gd = [s for s in settles if s[0] == "44"]
    bj = [s for s in settles if s[0] == "11"]
    assert len(gd) == 1 and len(bj) == 1, collector.spans
    assert bj[0][2] == gd[0][2], "the two provinces' spans are not one trace"
    assert bj[0][4] == gd[0][3], "Beijing's span is not the child of Guangdong's"
    assert gd[0][4] == b"", "the HIS sent no trace context: Guangdong's span is the root"


@pytest.mark.parametrize(
    ("env", "want"),
    [
        ({}, None),
        ({"OTEL_EXPORTER_OTLP_ENDPOINT": "http://127.0.0.1:4318"}, "http://127.0.0.1:4318"),
        ({"OTEL_EXPORTER_OTLP_ENDPOINT": "http://127.0.0.1:4318", "OTEL_TRACES_EXPORTER": "none"}, None),
        ({"OTEL_EXPORTER_OTLP_ENDPOINT": "http://127.0.0.1:4318", "OTEL_SDK_DISABLED": "true"}, None),
        ({"YIBAO_OTEL_ENDPOINT": "http://127.0.0.1:9999", "OTEL_TRACES_EXPORTER": "none"}, "http://127.0.0.1:9999"),
    ],
)
def test_opentelemetry_variables_turn_tracing_on_and_off(
    monkeypatch: pytest.MonkeyPatch, env: dict[str, str], want: str | None
) -> None:
    for name in ("OTEL_EXPORTER_OTLP_ENDPOINT", "OTEL_TRACES_EXPORTER", "OTEL_SDK_DISABLED", "YIBAO_OTEL_ENDPOINT"):
        monkeypatch.delenv(name, raising=False)
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    assert config.parse(["--insecure", "--redis-url", "redis://127.0.0.1:6379/0"]).otel_endpoint == want
