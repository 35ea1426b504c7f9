"""What every benchmark shares: the machine description and the record shape."""

from __future__ import annotations

import os
import platform


def machine() -> dict:
    return {"cpu": platform.processor() or platform.machine(), "cores": len(os.sched_getaffinity(0)),
            "python": platform.python_version(), "node": platform.node()}


def record(stage: str, metric: str, value: float, peer: str, peer_value: float) -> dict:
    return {"stage": stage, "metric": metric, "value": value, "peer": peer, "peer_value": peer_value,
            "ratio": value / peer_value if peer_value else float("inf"), "machine": machine()["cpu"]}
