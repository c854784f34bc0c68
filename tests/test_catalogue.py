import csv
import json

from conftest import DATA
from dashgen.catalogue import GROUPS, GROUPS_BY_KEY, METRICS, METRICS_BY_NAME, NAMESPACE

GRAFANA_EC2_LIST = json.loads((DATA / "aws-ec2-metrics-dimensions.json").read_text())["v0.36.0"]
AWS_ROWS = {r["metric"]: r for r in csv.DictReader((DATA / "aws_ec2_cloudwatch_metrics.csv").open())
            if r["namespace"] == NAMESPACE}
NEWER = {"MetadataNoToken", "MetadataNoTokenRejected", "GPUPowerUtilization", "InstanceEBSIOPSExceededCheck",
         "InstanceEBSThroughputExceededCheck"}
GRAFANA_UNITS = {"percent", "bytes", "short", "none"}


def test_each_metric_once_and_the_full_set() -> None:
    names = [m.name for m in METRICS]
    assert len(names) == len(set(names)) == 29
    grafana_list = set(GRAFANA_EC2_LIST["namespaces"]["AWS/EC2"]["metrics"])  # Grafana's picker (v0.36.0)
    assert grafana_list <= set(names)
    assert set(names) == (grafana_list - {"MetadataNoToken"}) | NEWER
    assert set(names) == set(AWS_ROWS)


def test_statistic_is_one_aws_calls_meaningful() -> None:
    for m in METRICS:
        meaningful = AWS_ROWS[m.name]["meaningful_statistics"].split("|")
        assert m.statistic in meaningful or (m.statistic == "Sum" and "Sum" in meaningful), m.name


def test_units_groups_and_descriptions() -> None:
    for m in METRICS:
        assert m.unit in GRAFANA_UNITS, m.name
        assert m.group in GROUPS_BY_KEY, m.name
        assert len(m.description) > 40 and m.applies_to, m.name
        aws_unit = AWS_ROWS[m.name]["unit"]
        if aws_unit == "Percent":
            assert m.unit == "percent", m.name
        if aws_unit == "Bytes":
            assert m.unit == "bytes", m.name
    assert [g.key for g in GROUPS] == ["cpu", "cpu_credit", "instance_store", "ebs", "network", "status_check",
                                       "metadata", "gpu"]
    assert all(any(m.group == g.key for m in METRICS) for g in GROUPS)


def test_default_thresholds() -> None:
    assert METRICS_BY_NAME["CPUUtilization"].threshold == 80
    assert METRICS_BY_NAME["EBSByteBalance%"].threshold == 20
    assert METRICS_BY_NAME["EBSByteBalance%"].direction == "below"
    assert all(METRICS_BY_NAME[n].threshold == 0 for n in METRICS_BY_NAME if n.startswith("StatusCheckFailed"))
    assert METRICS_BY_NAME["CPUCreditBalance"].direction == "below"
