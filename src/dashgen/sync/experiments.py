"""Experiment progress: the latest 0-100 % points of each experiment's CloudWatch metric, for the store.

The cost dashboard computes ETA and cost to finish in SQL from these stored points, so that one query (and
the tests) sees spend and progress together.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from decimal import Decimal
from typing import Any

from dashgen.config import Experiment

PERIOD_SECONDS = 300


@dataclass(frozen=True)
class ProgressMetric:
    """An experiment's progress metric (0-100 %), defined once and read twice: for the experiment with its
    configured dimensions (`fetch_progress`: 5-minute maxima into `dashgen.experiment_progress`, the cost
    dashboard's ETA), and per instance with the extra dimension InstanceId (`cloudwatch.metric_queries`: hourly
    maxima into `instance_utilisation_hourly.progress_pct`, the experiment comparison)."""

    namespace: str
    metric: str
    dimensions: tuple[tuple[str, str], ...] = ()

    @classmethod
    def of(cls, namespace: str | None, metric: str | None,
           dimensions: Mapping[Any, Any] | Iterable[tuple[Any, Any]] | None) -> ProgressMetric | None:
        """From the config's (or the store's) namespace, metric and dimensions; None without a metric."""
        if not (namespace and metric):
            return None
        items = dimensions.items() if isinstance(dimensions, Mapping) else (dimensions or ())
        return cls(namespace, metric, tuple(sorted((str(k), str(v)) for k, v in items)))

    def cloudwatch(self, instance_id: str | None = None) -> dict[str, Any]:
        """The CloudWatch `Metric` (Namespace, MetricName, Dimensions); with `instance_id`, that instance's series."""
        dims = [{"Name": k, "Value": v} for k, v in self.dimensions if instance_id is None or k != "InstanceId"]
        if instance_id is not None:
            dims.append({"Name": "InstanceId", "Value": instance_id})
        return {"Namespace": self.namespace, "MetricName": self.metric, "Dimensions": dims}


def fetch_progress(client: Any, experiment: Experiment, start: dt.datetime,
                   end: dt.datetime) -> list[tuple[dt.datetime, Decimal]]:
    """(time, percent) points of `experiment`'s progress metric in [start, end], oldest first."""
    metric = ProgressMetric.of(experiment.progress_namespace, experiment.progress_metric,
                               experiment.progress_dimensions)
    if metric is None:
        return []
    query = {
        "Id": "progress",
        "MetricStat": {
            "Metric": metric.cloudwatch(),
            "Period": PERIOD_SECONDS,
            "Stat": "Maximum",
        },
        "ReturnData": True,
    }
    points: dict[dt.datetime, Decimal] = {}
    for page in client.get_paginator("get_metric_data").paginate(
        MetricDataQueries=[query], StartTime=start, EndTime=end, ScanBy="TimestampAscending"
    ):
        for result in page.get("MetricDataResults", []):
            for at, value in zip(result.get("Timestamps", []), result.get("Values", []), strict=False):
                points[at.astimezone(dt.UTC)] = Decimal(str(value))
    return sorted(points.items())
