"""A real Prometheus (Debian's) on loopback scrapes two real nodes under
mixed traffic with deploy/prometheus's rules loaded: every dashboard query
runs, the main ones return data, and the store and peer alerts go pending
when a store dies and a peer cannot be reached."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import time
import urllib.parse
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import grpc
import pytest
import yaml

from deploy.grafana import dashboards
from server.local import Issuer, Node, Redis, free_port
from yibao.v1 import admin_pb2, admin_pb2_grpc, settlement_pb2, settlement_pb2_grpc, verifier_pb2, verifier_pb2_grpc

REPO = Path(__file__).resolve().parents[2]
RULES = REPO / "deploy" / "prometheus" / "yibao.rules.yml"
GD_HOSPITAL = "H44030500001"


class Prometheus:
    def __init__(self, workdir: Path, targets: list[str]) -> None:
        exe = shutil.which("prometheus")
        if exe is None:
            pytest.fail("prometheus is not installed: run scripts/setup", pytrace=False)
        self.port = free_port()
        config = {
            "global": {"scrape_interval": "1s", "evaluation_interval": "1s", "scrape_timeout": "900ms"},
            "rule_files": [str(RULES)],
            "scrape_configs": [{"job_name": "yibao-node", "static_configs": [{"targets": targets}]}],
        }
        workdir.mkdir(parents=True, exist_ok=True)
        (workdir / "prometheus.yml").write_text(yaml.safe_dump(config))
        self.log = workdir / "prometheus.log"
        with self.log.open("wb") as out:
            self.proc = subprocess.Popen(
                [exe, f"--config.file={workdir / 'prometheus.yml'}", f"--storage.tsdb.path={workdir / 'data'}",
                 f"--web.listen-address=127.0.0.1:{self.port}"],
                stdout=out, stderr=subprocess.STDOUT,
            )  # fmt: skip
        self._until(lambda: self._get("/-/ready", raw=True) is not None, "prometheus ready", 30)

    def _get(self, path: str, raw: bool = False) -> object:
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{self.port}{path}", timeout=5) as r:
                body = r.read()
        except OSError:
            return None
        return body if raw else json.loads(body)

    def query(self, expr: str) -> dict:
        reply = self._get("/api/v1/query?" + urllib.parse.urlencode({"query": expr}))
        assert isinstance(reply, dict), f"no answer from prometheus for {expr!r}"
        return reply

    def alerts(self) -> list[dict]:
        reply = self._get("/api/v1/alerts")
        return reply["data"]["alerts"] if isinstance(reply, dict) else []  # type: ignore[index]

    def _until(self, ready: object, what: str, timeout_s: float) -> None:
        deadline = time.monotonic() + timeout_s
        while not ready():  # type: ignore[operator]
            if self.proc.poll() is not None or time.monotonic() > deadline:
                raise AssertionError(f"{what}: not within {timeout_s:g} s\n{self.log.read_text()[-2000:]}")
            time.sleep(0.25)

    def until_alert(self, name: str, timeout_s: float = 30, **labels: str) -> dict:
        found: list[dict] = []

        def seen() -> bool:
            found[:] = [
                a for a in self.alerts()
                if a["labels"].get("alertname") == name and all(a["labels"].get(k) == v for k, v in labels.items())
            ]  # fmt: skip
            return bool(found)

        self._until(seen, f"alert {name} {labels}", timeout_s)
        return found[0]

    def stop(self) -> None:
        self.proc.terminate()
        try:
            self.proc.wait(10)
        except subprocess.TimeoutExpired:
            self.proc.kill()


@pytest.fixture
def nodes(tmp_path: Path) -> Iterator[tuple[Redis, Node, Node, Issuer]]:
    national = Redis(tmp_path / "national").start()
    regional = Redis(tmp_path / "regional", appendfsync="always").start()
    issuer = Issuer.create(tmp_path)
    unreachable = free_port()  # nothing listens there: province 65's node is down
    beijing = Node(tmp_path / "bj", national.url, issuer.trust_list_path, region="11",
                   extra=("--regional-redis-url", regional.url))  # fmt: skip
    guangdong = Node(
        tmp_path / "gd", national.url, issuer.trust_list_path, region="44",
        extra=("--regional-redis-url", regional.url, "--peer", f"11={beijing.target}",
               "--peer", f"65=127.0.0.1:{unreachable}"),
    )  # fmt: skip
    try:
        beijing.start()
        guangdong.start()
        yield national, guangdong, beijing, issuer
    finally:
        guangdong.stop()
        beijing.stop()
        regional.stop()
        national.stop()


def _traffic(node: Node, issuer: Issuer) -> None:
    """Every kind of call a dashboard shows: VALID, REPLAYED and MALFORMED
    codes, settlements at home and across provinces, a refund."""
    with node.channel() as ch:
        verifier = verifier_pb2_grpc.VerifierStub(ch)
        admin = admin_pb2_grpc.AdminStub(ch)
        settlement = settlement_pb2_grpc.SettlementStub(ch)

        def verify(code: str, rid: str) -> verifier_pb2.VerifyResponse:
            return verifier.Verify(
                verifier_pb2.VerifyRequest(code=code, institution_code=GD_HOSPITAL, request_id=rid), timeout=10
            )

        for n, region6 in enumerate(("440300", "110105")):
            cid = os.urandom(16).hex().upper()
            admin.OpenAccount(admin_pb2.OpenAccountRequest(
                credential_id=cid, balance_fen=100_000, per_payment_limit_fen=50_000, daily_limit_fen=90_000,
                insured_region=region6), timeout=10)  # fmt: skip
            code = issuer.issue(cid, region6, 2)
            first = verify(code, f"v{n}")
            assert first.outcome == verifier_pb2.OUTCOME_VALID, first
            assert verify(code, f"again{n}").outcome == verifier_pb2.OUTCOME_REPLAYED
            settled = settlement.Settle(settlement_pb2.SettleRequest(
                ec_token=first.ec_token, institution_code=GD_HOSPITAL, order_id=f"o{n}", total_fen=3000,
                account_pay_fen=2000), timeout=10)  # fmt: skip
            assert settled.outcome == settlement_pb2.SETTLE_OUTCOME_SETTLED, settled
            settlement.Refund(settlement_pb2.RefundRequest(
                settlement_id=settled.settlement_id, refund_id=f"r{n}", amount_fen=500,
                institution_code=GD_HOSPITAL), timeout=10)  # fmt: skip
        # Insured in province 65, whose node does not answer: UNAVAILABLE, for
        # the forwarding panels and the peer alert.
        xinjiang = verify(issuer.issue(os.urandom(16).hex().upper(), "650102", 2), "xj")
        assert xinjiang.outcome == verifier_pb2.OUTCOME_VALID, xinjiang
        with pytest.raises(grpc.RpcError) as refused:
            settlement.Settle(settlement_pb2.SettleRequest(
                ec_token=xinjiang.ec_token, institution_code=GD_HOSPITAL, order_id="o-xj", total_fen=3000,
                account_pay_fen=2000), timeout=10)  # fmt: skip
        assert refused.value.code() == grpc.StatusCode.UNAVAILABLE, refused.value
        assert verify("not a code", "junk").outcome == verifier_pb2.OUTCOME_MALFORMED
        with pytest.raises(grpc.RpcError):  # a call the node refuses, for the error panels
            verify("x", "")


def _grafana_to_promql(expr: str) -> str:
    return expr.replace("$__rate_interval", "30s").replace("$instance", ".*")


def test_dashboards_and_alerts_against_a_live_prometheus(nodes, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    national, guangdong, beijing, issuer = nodes
    prom = Prometheus(
        tmp_path / "prometheus",
        [f"127.0.0.1:{guangdong.metrics_port}", f"127.0.0.1:{beijing.metrics_port}"],
    )
    try:
        _traffic(guangdong, issuer)
        # Scraped twice since the traffic, so every rate() has two samples to compare.
        prom._until(
            lambda: prom.query('sum(yibao_settlements_total{job="yibao-node"})')["data"]["result"]
            and prom.query("sum(increase(yibao_settlements_total[30s]))")["data"]["result"],
            "settlements scraped", 30,
        )  # fmt: skip
        time.sleep(2.5)

        empty = []
        for title, rows in dashboards.DASHBOARDS.values():
            for panel in dashboards.panels(rows):
                results = []
                for _, expr in panel.queries:
                    reply = prom.query(_grafana_to_promql(expr))
                    assert reply["status"] == "success", (title, panel.title, expr, reply)
                    results += reply["data"]["result"]
                if panel.main and not results:
                    empty.append(panel.title)
        assert not empty, f"main panels without data under traffic: {empty}"

        # An unreachable peer province, and then the national store killed.
        prom.until_alert("YibaoPeerProvinceDown", peer="65")
        failed = prom.query('sum(yibao_forward_requests_total{peer="65",code="UNAVAILABLE"})')["data"]["result"]
        assert failed and float(failed[0]["value"][1]) >= 1, f"the call forwarded to 65 is not counted: {failed}"
        national.kill()
        alert = prom.until_alert("YibaoNationalStoreDown")
        assert alert["state"] in ("pending", "firing")
        assert alert["annotations"]["runbook_url"].startswith("docs/operations.md#")
    finally:
        prom.stop()
