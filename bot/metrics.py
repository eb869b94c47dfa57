"""Process metrics in Prometheus text format: counters, a latency histogram, live gauges."""

from __future__ import annotations

import logging
import threading
from bisect import bisect_left
from collections import defaultdict
from collections.abc import Callable

log = logging.getLogger(__name__)

_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0)
Labels = tuple[tuple[str, str], ...]


def _labels(labels: Labels) -> str:
    if not labels:
        return ""
    inner = ",".join(
        f'{k}="{v.replace(chr(92), chr(92) * 2).replace(chr(34), chr(92) + chr(34))}"'
        for k, v in labels
    )
    return "{" + inner + "}"


class Metrics:
    """The process's counters; thread-safe, rendered on `GET /metrics`."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._counters: dict[str, dict[Labels, float]] = defaultdict(dict)
        self._help: dict[str, str] = {}
        self._hist: dict[Labels, list[float]] = {}
        self._gauges: dict[str, tuple[str, Callable[[], float]]] = {}

    def inc(self, name: str, help_text: str, amount: float = 1.0, **labels: str) -> None:
        key = tuple(sorted(labels.items()))
        with self._lock:
            self._help[name] = help_text
            series = self._counters[name]
            series[key] = series.get(key, 0.0) + amount

    def observe_command(self, skill: str, seconds: float, outcome: str) -> None:
        key = (("outcome", outcome), ("skill", skill))
        with self._lock:
            hist = self._hist.setdefault(key, [0.0] * (len(_BUCKETS) + 2))
            hist[bisect_left(_BUCKETS, seconds)] += 1
            hist[-1] += seconds

    def gauge(self, name: str, help_text: str, read: Callable[[], float]) -> None:
        self._gauges[name] = (help_text, read)

    def value(self, name: str, **labels: str) -> float:
        with self._lock:
            return self._counters.get(name, {}).get(tuple(sorted(labels.items())), 0.0)

    def render(self) -> str:
        lines: list[str] = []
        with self._lock:
            for name, series in sorted(self._counters.items()):
                lines.append(f"# HELP {name} {self._help[name]}")
                lines.append(f"# TYPE {name} counter")
                lines.extend(f"{name}{_labels(k)} {v:g}" for k, v in sorted(series.items()))
            name = "nightshift_command_seconds"
            lines.append(f"# HELP {name} Chat command latency, from text to reply.")
            lines.append(f"# TYPE {name} histogram")
            for key, hist in sorted(self._hist.items()):
                running = 0.0
                for bound, count in zip((*_BUCKETS, float("inf")), hist[:-1], strict=True):
                    running += count
                    le = "+Inf" if bound == float("inf") else f"{bound:g}"
                    lines.append(f"{name}_bucket{_labels((*key, ('le', le)))} {running:g}")
                lines.append(f"{name}_count{_labels(key)} {running:g}")
                lines.append(f"{name}_sum{_labels(key)} {hist[-1]:g}")
        for name, (help_text, read) in sorted(self._gauges.items()):
            try:
                value = read()
            except Exception:  # a gauge whose source is down is left out, not a 500
                log.debug("gauge %s unavailable", name)
                continue
            lines.append(f"# HELP {name} {help_text}")
            lines.append(f"# TYPE {name} gauge")
            lines.append(f"{name} {value:g}")
        return "\n".join(lines) + "\n"
