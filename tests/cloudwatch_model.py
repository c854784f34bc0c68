"""A CloudWatch GetMetricData model for incremental-read tests: a real botocore client whose replies are made
from each request (a `before-call` handler returns them, as botocore's Stubber does), so the test sees what
was asked (StartTime, EndTime, the InstanceId of each query) and gets what CloudWatch would return.

Modelled from the GetMetricData API reference: each query's datapoints are at the start of each Period within
[StartTime, EndTime), only where the metric has data (an instance has EC2 metrics only while it runs); the
hour in progress has a partial value that changes until the hour is over.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass, field
from typing import Any

import boto3
from botocore.awsrequest import AWSResponse

HOUR = dt.timedelta(hours=1)


def value(iid: str, metric: str, stat: str, hour: dt.datetime, now: dt.datetime, period: dt.timedelta = HOUR) -> float:
    """The value CloudWatch reports for one period (an hour, or 5 minutes) starting at `hour`; the period in
    progress reads the part of it that has passed so far."""
    base = (sum(map(ord, iid + metric + stat)) % 50) + hour.hour
    if hour + period > now:
        return base + (now - hour) / period
    return float(base)


@dataclass
class CloudWatchModel:
    runs: dict[str, list[tuple[dt.datetime, dt.datetime | None]]]  # instance -> [(start, end or None)]
    now: dt.datetime
    calls: list[tuple[dt.datetime, dt.datetime, list[str]]] = field(default_factory=list)

    def client(self) -> Any:
        client = boto3.client("cloudwatch", region_name="us-east-1", aws_access_key_id="test",
                              aws_secret_access_key="test")
        client.meta.events.register("before-parameter-build.cloudwatch.GetMetricData", self._remember)
        client.meta.events.register("before-call.cloudwatch.GetMetricData", self._reply)
        return client

    @staticmethod
    def _remember(params: dict[str, Any], context: dict[str, Any], **_: Any) -> None:
        context["model_params"] = dict(params)

    def _ran(self, iid: str, hour: dt.datetime) -> bool:
        return any(start < hour + HOUR and (end is None or end > hour) for start, end in self.runs.get(iid, ()))

    def _reply(self, context: dict[str, Any], **_: Any) -> tuple[AWSResponse, dict[str, Any]]:
        params = context["model_params"]
        start, end = params["StartTime"], min(params["EndTime"], self.now)
        results, asked = [], []
        for query in params["MetricDataQueries"]:
            stat = query["MetricStat"]
            dims = {d["Name"]: d["Value"] for d in stat["Metric"]["Dimensions"]}
            iid = dims["InstanceId"]
            asked.append(iid)
            hours = []
            t = start
            while t < end:
                if self._ran(iid, t):
                    hours.append(t)
                t += dt.timedelta(seconds=stat["Period"])
            results.append({"Id": query["Id"], "Label": query["Id"], "StatusCode": "Complete", "Timestamps": hours,
                            "Values": [value(iid, stat["Metric"]["MetricName"], stat["Stat"], h, self.now,
                                             dt.timedelta(seconds=stat["Period"])) for h in hours]})
        self.calls.append((params["StartTime"], params["EndTime"], sorted(set(asked))))
        return AWSResponse("https://monitoring.us-east-1.amazonaws.com/", 200, {}, None), {
            "MetricDataResults": results, "Messages": [], "ResponseMetadata": {"HTTPStatusCode": 200}}
