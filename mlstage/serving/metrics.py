"""The server's Prometheus metrics (GET /metrics): requests, rows, latency, errors, and
what is served, with any registry problem beside it."""

from __future__ import annotations


class Metrics:
    def __init__(self):
        from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram

        self.registry = CollectorRegistry()
        self.requests = Counter(
            "mlstage_requests",
            "Prediction requests",
            ["model", "version", "endpoint", "code"],
            registry=self.registry,
        )
        self.rows = Counter(
            "mlstage_predicted_rows", "Rows predicted", ["model", "version"], registry=self.registry
        )
        self.latency = Histogram(
            "mlstage_request_seconds",
            "Prediction request latency",
            ["model", "version"],
            buckets=(0.0005, 0.001, 0.002, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 1, 5),
            registry=self.registry,
        )
        self.errors = Counter(
            "mlstage_errors",
            "Requests answered with an error",
            ["endpoint", "code"],
            registry=self.registry,
        )
        self.served = Gauge(
            "mlstage_served_version",
            "Version answering unversioned requests",
            ["model"],
            registry=self.registry,
        )
        self.problem = Gauge(
            "mlstage_serving_problem",
            "1 while the version serving.json points to is not the one served (see the log"
            " or GET /v1/models/NAME), else 0",
            ["model"],
            registry=self.registry,
        )
        self.shadow_copies = Gauge(
            "mlstage_shadow_copies",
            "Requests copied to a shadow's process since the start",
            registry=self.registry,
        )
        self.shadow_dropped = Gauge(
            "mlstage_shadow_dropped",
            "Copies for a shadow dropped (it could not keep up, or its process is gone)",
            registry=self.registry,
        )
        self.stuck_loads = Gauge(
            "mlstage_stuck_loads",
            "Model loads abandoned after the load time limit",
            registry=self.registry,
        )

    def show(self, served, shadow=None) -> None:
        """Set the gauges from the served models' current snapshot (and the shadow's
        counts)."""
        if shadow is not None:
            self.shadow_copies.set(shadow.sent)
            self.shadow_dropped.set(shadow.dropped)
        snap = served.snapshot
        for name in snap.models:
            if name in snap.served:
                self.served.labels(name).set(snap.served[name])
            self.problem.labels(name).set(1 if name in snap.problems else 0)
        self.stuck_loads.set(served.stuck_loads())
