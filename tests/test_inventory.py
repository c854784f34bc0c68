"""The EC2 inventory: describe_instances through moto, and the StateTransitionReason time."""

from __future__ import annotations

import datetime as dt

import boto3
import pytest
from moto import mock_aws

from cost_scenario import LINUX_AMI, WINDOWS_AMI, MotoClock
from dashgen.sync.inventory import describe_region, ec2_client, from_describe, parse_transition_time

UTC = dt.UTC


@pytest.mark.parametrize("reason, expected", [
    ("User initiated (2026-11-20 10:15:00 GMT)", dt.datetime(2026, 11, 20, 10, 15, tzinfo=UTC)),
    ("User initiated (2026-11-20 10:15:00 UTC)", dt.datetime(2026, 11, 20, 10, 15, tzinfo=UTC)),
    ("Server.ScheduledStop (2026-11-20T10:15:00Z)", dt.datetime(2026, 11, 20, 10, 15, tzinfo=UTC)),
    ("User initiated (2026-11-20 11:15:00 +01:00)", dt.datetime(2026, 11, 20, 10, 15, tzinfo=UTC)),
    ("User initiated (2026-11-20 05:15 GMT-0500)", dt.datetime(2026, 11, 20, 10, 15, tzinfo=UTC)),
    ("User initiated (2026-11-20 10:15:00)", dt.datetime(2026, 11, 20, 10, 15, tzinfo=UTC)),
    ("", None),
    ("Server.SpotInstanceTermination: Spot instance termination", None),
    ("User initiated (2026-13-40 10:15:00 GMT)", None),
])
def test_the_time_in_state_transition_reason_in_any_spelling(reason, expected) -> None:
    assert parse_transition_time(reason) == expected


def test_from_describe_maps_tags_platform_and_tenancy() -> None:
    inst = from_describe({
        "InstanceId": "i-1", "InstanceType": "m5.large", "State": {"Name": "stopped"},
        "LaunchTime": dt.datetime(2026, 11, 20, 8, tzinfo=UTC), "PlatformDetails": "Red Hat Enterprise Linux",
        "Placement": {"Tenancy": "dedicated"}, "StateTransitionReason": "User initiated (2026-11-20 09:00:00 GMT)",
        "Tags": [{"Key": "team", "Value": "ml"}, {"Key": "Name", "Value": "box"}],
    }, "eu-west-1")
    assert (inst.region, inst.name, inst.tags) == ("eu-west-1", "box", {"Name": "box", "team": "ml"})
    assert (inst.operating_system, inst.tenancy, inst.running) == ("RHEL", "Dedicated", False)
    assert inst.state_changed_at == dt.datetime(2026, 11, 20, 9, tzinfo=UTC)


def test_describe_region_reads_every_page_with_states_tags_and_times(monkeypatch) -> None:
    for key in ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY"):
        monkeypatch.setenv(key, "testing")
    start = dt.datetime(2026, 11, 20, 8, tzinfo=UTC)
    with mock_aws():
        clock = MotoClock(monkeypatch, start)
        ec2 = boto3.client("ec2", region_name="eu-west-1")
        ids = [i["InstanceId"] for i in ec2.run_instances(
            ImageId=LINUX_AMI, MinCount=3, MaxCount=3, InstanceType="t4g.large",
            TagSpecifications=[{"ResourceType": "instance", "Tags": [{"Key": "experiment", "Value": "x"}]}],
        )["Instances"]]
        win = ec2.run_instances(ImageId=WINDOWS_AMI, MinCount=1, MaxCount=1, InstanceType="t3.micro")
        clock.now = start + dt.timedelta(minutes=42)
        ec2.stop_instances(InstanceIds=ids[:1])
        ec2.terminate_instances(InstanceIds=ids[1:2])
        client = ec2_client(boto3.Session(region_name="eu-west-1"), "eu-west-1")
        found = {i.instance_id: i for i in describe_region(client, "eu-west-1")}
    assert len(found) == 4
    stopped, terminated, running = (found[i] for i in ids)
    assert (stopped.state, stopped.state_changed_at) == ("stopped", start + dt.timedelta(minutes=42))
    assert (terminated.state, terminated.state_changed_at) == ("terminated", start + dt.timedelta(minutes=42))
    assert (running.state, running.state_changed_at, running.launch_time) == ("running", None, start)
    assert running.tags == {"experiment": "x"} and running.name is None and running.operating_system == "Linux"
    assert found[win["Instances"][0]["InstanceId"]].operating_system == "Windows"
