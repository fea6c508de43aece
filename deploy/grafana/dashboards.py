"""Writes the Grafana dashboards of yibao-verify as JSON (Grafana's
dashboard model, schemaVersion 39), one file per dashboard beside this one.

    python deploy/grafana/dashboards.py          # rewrite the JSON files
    python deploy/grafana/dashboards.py --check  # exit 1 if they differ

Plain Python rather than a dashboard SDK: the panels are a list of
(title, queries) that tests/sre/ reads too, so every query a dashboard shows
is one the live Prometheus test runs. Datasource: a variable, so the JSON
imports into any Grafana."""

from __future__ import annotations

import json
import sys
from dataclasses import dataclass, field
from pathlib import Path

HERE = Path(__file__).resolve().parent
DATASOURCE = {"type": "prometheus", "uid": "${datasource}"}
# Every query is limited to the chosen nodes.
SEL = 'job="yibao-node", instance=~"$instance"'


@dataclass(frozen=True)
class Panel:
    title: str
    #: (legend, PromQL)
    queries: tuple[tuple[str, str], ...]
    unit: str = "short"
    kind: str = "timeseries"
    description: str = ""
    #: Whether a node under mixed traffic must give it data (the live test).
    main: bool = False


@dataclass(frozen=True)
class Row:
    title: str
    panels: tuple[Panel, ...] = field(default_factory=tuple)


def _grpc(method_re: str, what: str) -> str:
    return f'{what}{{{SEL}, grpc_method=~"{method_re}"}}'


OVERVIEW: tuple[Row, ...] = (
    Row("Verification", (
        Panel("Verifications/s by outcome", (
            ("{{outcome}}", f"sum by (outcome) (rate(yibao_verifications_total{{{SEL}}}[$__rate_interval]))"),
        ), unit="ops", main=True),
        Panel("Verifications/s by insured province", (
            ("{{province}}", f"sum by (province) (rate(yibao_verifications_total{{{SEL}}}[$__rate_interval]))"),
        ), unit="ops", main=True),
        Panel("VALID ratio", (
            ("VALID", f'sum(rate(yibao_verifications_total{{{SEL}, outcome="VALID"}}[$__rate_interval])) '
                      f"/ sum(rate(yibao_verifications_total{{{SEL}}}[$__rate_interval]))"),
        ), unit="percentunit", main=True),
        Panel("Replay rejections/s", (
            ("REPLAYED", f'sum(rate(yibao_verifications_total{{{SEL}, outcome="REPLAYED"}}[$__rate_interval]))'),
        ), unit="ops", main=True),
        Panel("Degraded verifications/s (national store away)", (
            ("degraded", f"sum by (instance) (rate(yibao_degraded_verifications_total{{{SEL}}}[$__rate_interval]))"),
        ), unit="ops"),
        Panel("Verify error budget: bad ratio (SLO 99.9%)", (
            ("5m", "yibao:verify_errors:ratio_rate5m"),
            ("1h", "yibao:verify_errors:ratio_rate1h"),
            ("6h", "yibao:verify_errors:ratio_rate6h"),
        ), unit="percentunit", main=True),
    )),
    Row("Latency and load", (
        Panel("p50 / p99 latency per method", (
            ("p50 {{grpc_method}}", "histogram_quantile(0.5, sum by (grpc_method, le) "
                                    f"(rate(grpc_server_handling_seconds_bucket{{{SEL}}}[$__rate_interval])))"),
            ("p99 {{grpc_method}}", "histogram_quantile(0.99, sum by (grpc_method, le) "
                                    f"(rate(grpc_server_handling_seconds_bucket{{{SEL}}}[$__rate_interval])))"),
        ), unit="s", main=True),
        Panel("Calls/s per method and code", (
            ("{{grpc_method}} {{grpc_code}}",
             f"sum by (grpc_method, grpc_code) (rate(grpc_server_handled_total{{{SEL}}}[$__rate_interval]))"),
        ), unit="ops", main=True),
        Panel("Calls shed/s", (
            # gRPC core's refusals never reach a handler, so grpc_server_handled_total
            # does not see them: only the node's count from channelz does.
            ("before any handler (past --max-queued) {{instance}}",
             f"sum by (instance) (rate(yibao_grpc_calls_without_handler_total{{{SEL}}}[$__rate_interval]))"),
            ("in-flight limits (OVERLOADED) {{instance}}",
             f'sum by (instance) (rate(grpc_server_handled_total{{{SEL}, grpc_code="RESOURCE_EXHAUSTED"}}'
             "[$__rate_interval]))"),
        ), unit="ops", main=True,
           description="Calls a node refused as overloaded (alert YibaoLoadShedding): CANCELLED by gRPC past "
                       "--max-queued or after a second queued, and RESOURCE_EXHAUSTED by --max-in-flight "
                       "(-per-caller). Clients retry them, throttled."),
        Panel("In-flight calls", (
            ("{{instance}}", f"sum by (instance) (yibao_in_flight_calls{{{SEL}}})"),
        ), main=True),
        Panel("Event-loop lag p99", (
            ("{{instance}}", "histogram_quantile(0.99, sum by (instance, le) "
                             f"(rate(yibao_event_loop_lag_seconds_bucket{{{SEL}}}[$__rate_interval])))"),
        ), unit="s", main=True),
    )),
    Row("Settlement", (
        Panel("Settlements per minute by outcome", (
            ("{{outcome}}", f"sum by (outcome) (increase(yibao_settlements_total{{{SEL}}}[1m]))"),
        ), main=True),
        Panel("Fen settled per minute", (
            ("fen", f"sum(increase(yibao_settled_fen_total{{{SEL}}}[1m]))"),
        ), main=True),
        Panel("Settle p99", (
            ("p99", "histogram_quantile(0.99, sum by (le) (rate("
                    + _grpc("Settle", "grpc_server_handling_seconds_bucket") + "[$__rate_interval])))"),
        ), unit="s", main=True),
    )),
    Row("Forwarding (异地就医)", (
        Panel("Forwarded calls/s by peer province", (
            ("{{peer}} {{code}}", f"sum by (peer, code) (rate(yibao_forward_requests_total{{{SEL}}}[$__rate_interval]))"),
        ), unit="ops", main=True),
        Panel("Forwarding error ratio by peer", (
            # No failures is no series: "or ... * 0" gives those peers a 0.
            ("{{peer}}", f'(sum by (peer) (rate(yibao_forward_requests_total{{{SEL}, code!="OK"}}[$__rate_interval])) '
                         f"or sum by (peer) (rate(yibao_forward_requests_total{{{SEL}}}[$__rate_interval])) * 0) "
                         f"/ sum by (peer) (rate(yibao_forward_requests_total{{{SEL}}}[$__rate_interval]))"),
        ), unit="percentunit", main=True),
        Panel("Forwarded call p99 by peer", (
            ("{{peer}}", "histogram_quantile(0.99, sum by (peer, le) "
                         f"(rate(yibao_forward_duration_seconds_bucket{{{SEL}}}[$__rate_interval])))"),
        ), unit="s", main=True),
        Panel("Peer provinces up", (
            ("{{peer}} seen by {{instance}}", f"yibao_peer_up{{{SEL}}}"),
        ), main=True),
        Panel("Peer circuit open (calls refused at once)", (
            ("{{peer}} at {{instance}}", f"yibao_peer_circuit_open{{{SEL}}}"),
        ), main=True),
    )),
    Row("Stores and state", (
        Panel("Stores up", (
            ("national {{instance}}", f"yibao_national_store_up{{{SEL}}}"),
            ("regional {{instance}}", f"yibao_regional_store_up{{{SEL}}}"),
        ), main=True),
        Panel("Redis errors/s by store", (
            ("{{store}}", f"sum by (store) (rate(yibao_redis_errors_total{{{SEL}}}[$__rate_interval]))"),
        ), unit="ops", main=True),
        Panel("Redis script latency p99 by store", (
            ("{{store}}", "histogram_quantile(0.99, sum by (store, le) "
                          f"(rate(yibao_redis_command_duration_seconds_bucket{{{SEL}}}[$__rate_interval])))"),
        ), unit="s", main=True),
        Panel("Revocation mirror size", (
            ("{{instance}}", f"yibao_revocations_loaded{{{SEL}}}"),
        ), main=True),
        Panel("Revocation mirror age", (
            ("{{instance}}", f"yibao_revocation_sync_age_seconds{{{SEL}}}"),
        ), unit="s", main=True),
        Panel("Trust-list keys loaded", (
            ("{{instance}}", f"yibao_trust_keys_loaded{{{SEL}}}"),
        ), main=True),
        Panel("Versions", (
            ("{{instance}} {{version}} core {{core_version}}", f"yibao_build_info{{{SEL}}}"),
        ), kind="table", main=True),
    )),
)

DASHBOARDS = {"yibao-overview": ("yibao-verify: node overview", OVERVIEW)}


def panels(rows: tuple[Row, ...]) -> list[Panel]:
    return [p for row in rows for p in row.panels]


def _panel(p: Panel, pid: int, x: int, y: int) -> dict:
    return {
        "id": pid,
        "type": p.kind,
        "title": p.title,
        "description": p.description,
        "datasource": DATASOURCE,
        "gridPos": {"h": 8, "w": 8, "x": x, "y": y},
        "fieldConfig": {"defaults": {"unit": p.unit}, "overrides": []},
        "options": {},
        "targets": [
            {"refId": chr(ord("A") + i), "datasource": DATASOURCE, "expr": expr, "legendFormat": legend}
            for i, (legend, expr) in enumerate(p.queries)
        ],
    }


def dashboard(uid: str, title: str, rows: tuple[Row, ...]) -> dict:
    out: list[dict] = []
    pid, y = 1, 0
    for row in rows:
        out.append({"id": pid, "type": "row", "title": row.title, "collapsed": False,
                    "gridPos": {"h": 1, "w": 24, "x": 0, "y": y}, "panels": []})  # fmt: skip
        pid, y = pid + 1, y + 1
        for i, p in enumerate(row.panels):
            out.append(_panel(p, pid, 8 * (i % 3), y + 8 * (i // 3)))
            pid += 1
        y += 8 * ((len(row.panels) + 2) // 3)
    return {
        "uid": uid,
        "title": title,
        "tags": ["yibao-verify"],
        "timezone": "browser",
        "schemaVersion": 39,
        "version": 1,
        "refresh": "30s",
        "time": {"from": "now-6h", "to": "now"},
        "templating": {
            "list": [
                {"name": "datasource", "type": "datasource", "query": "prometheus", "label": "Prometheus"},
                {
                    "name": "instance", "type": "query", "datasource": DATASOURCE, "label": "Node",
                    "query": 'label_values(yibao_build_info{job="yibao-node"}, instance)',
                    "includeAll": True, "multi": True, "allValue": ".*",
                    "current": {"text": "All", "value": "$__all"}, "refresh": 2,
                },
            ]
        },  # fmt: skip
        "panels": out,
    }


def rendered() -> dict[Path, str]:
    return {
        HERE / f"{uid}.json": json.dumps(dashboard(uid, title, rows), indent=2, ensure_ascii=False) + "\n"
        for uid, (title, rows) in DASHBOARDS.items()
    }


def main(argv: list[str]) -> int:
    stale = [path for path, text in rendered().items() if not path.exists() or path.read_text() != text]
    if "--check" in argv:
        for path in stale:
            print(f"{path} is not what {Path(__file__).name} writes: run it", file=sys.stderr)
        return 1 if stale else 0
    for path, text in rendered().items():
        path.write_text(text)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
