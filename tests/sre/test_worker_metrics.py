"""The operations metrics with --workers 2: one metrics endpoint for the
node, and every gauge folded over the workers by its multiprocess mode (one
series each, not one per worker's pid), the event-loop lag of both workers
summed into one histogram."""

from __future__ import annotations

import time
import urllib.request
from pathlib import Path

from prometheus_client.parser import text_string_to_metric_families

from server.local import Issuer, Node, Redis

# Gauges whose value the node folds over its workers, and what it must be here.
ONE_SERIES = {
    "yibao_build_info": 1.0,
    "yibao_national_store_up": 1.0,
    "yibao_regional_store_up": 1.0,
    "yibao_in_flight_calls": None,  # the scrape itself is not a gRPC call: any count >= 0
}


def _samples(url: str) -> dict[str, list[tuple[dict[str, str], float]]]:
    with urllib.request.urlopen(url, timeout=5) as reply:
        text = reply.read().decode()
    out: dict[str, list[tuple[dict[str, str], float]]] = {}
    for family in text_string_to_metric_families(text):
        for s in family.samples:
            out.setdefault(s.name, []).append((s.labels, s.value))
    return out


def test_gauges_and_loop_lag_are_one_series_over_two_workers(tmp_path: Path) -> None:
    redis = Redis(tmp_path / "redis").start()
    issuer = Issuer.create(tmp_path)
    node = Node(tmp_path / "node", redis.url, issuer.trust_list_path, extra=("--workers", "2"))
    try:
        node.start()
        # Both workers' 0.25 s lag timers have fired a few times within 3 s.
        deadline = time.monotonic() + 15
        while True:
            got = _samples(node.metrics_url)
            lag = sum(v for _, v in got.get("yibao_event_loop_lag_seconds_count", []))
            if lag >= 8 or time.monotonic() > deadline:
                break
            time.sleep(0.5)
        assert lag >= 8, f"yibao_event_loop_lag_seconds_count = {lag}: fewer timer turns than two workers make"
        assert len(got["yibao_event_loop_lag_seconds_count"]) == 1, got["yibao_event_loop_lag_seconds_count"]
        for name, want in ONE_SERIES.items():
            series = got.get(name, [])
            assert len(series) == 1, f"{name}: {series} (one series for the node, no pid label)"
            labels, value = series[0]
            assert "pid" not in labels, (name, labels)
            assert value == want if want is not None else value >= 0, (name, value)
        (build,) = got["yibao_build_info"]
        assert set(build[0]) == {"version", "core_version", "python"}, build
    finally:
        node.stop()
        redis.stop()
