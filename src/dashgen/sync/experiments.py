"""Experiment progress: the latest 0-100 % points of each experiment's CloudWatch metric, for the store.

The cost dashboard computes ETA and cost to finish in SQL from these stored points, so that one query (and
the tests) sees spend and progress together.
"""

from __future__ import annotations

import datetime as dt
from decimal import Decimal
from typing import Any

from dashgen.config import Experiment

PERIOD_SECONDS = 300


def fetch_progress(client: Any, experiment: Experiment, start: dt.datetime,
                   end: dt.datetime) -> list[tuple[dt.datetime, Decimal]]:
    """(time, percent) points of `experiment`'s progress metric in [start, end], oldest first."""
    if not (experiment.progress_namespace and experiment.progress_metric):
        return []
    query = {
        "Id": "progress",
        "MetricStat": {
            "Metric": {
                "Namespace": experiment.progress_namespace,
                "MetricName": experiment.progress_metric,
                "Dimensions": [{"Name": k, "Value": v} for k, v in experiment.progress_dimensions],
            },
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
