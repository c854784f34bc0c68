"""dashgen.sync.instance_facts: DescribeInstanceTypes -> dashgen.instance_types, on real API shapes.

moto's `DescribeInstanceTypes` (a dump of the real API, `moto/ec2/resources/instance_types.json.gz`) for the
facts; botocore's Stubber (which validates every response against botocore's ec2 model) for the paginator's
NextToken, an item without the fields older generations lack, and errors. The bundled CSV is checked against the
same parser on moto's dump: the offline fallback says what the API says.
"""

from __future__ import annotations

import datetime as dt
import gzip
import json
from decimal import Decimal
from pathlib import Path

import boto3
import psycopg
import pytest
from botocore.stub import Stubber
from moto import mock_aws

from dashgen.store.db import migrate
from dashgen.sync.instance_facts import (
    API_SOURCE,
    CSV_KINDS,
    bundled_facts,
    collect_facts,
    describe_instance_types,
    facts_from_api,
    store_facts,
)

NOW = dt.datetime(2026, 11, 30, 12, 0, tzinfo=dt.UTC)


def _moto_dump() -> dict[str, dict]:
    import moto

    path = Path(moto.__file__).parent / "ec2" / "resources" / "instance_types.json.gz"
    return json.loads(gzip.decompress(path.read_bytes()))


def _ec2() -> object:
    return boto3.client("ec2", region_name="us-east-1", aws_access_key_id="test", aws_secret_access_key="test")


@mock_aws
def test_accelerators_network_ebs_and_storage_from_moto_describe_instance_types() -> None:
    facts = {f["instance_type"]: f for f in describe_instance_types(_ec2())}
    assert len(facts) > 1000  # every type the region offers, one paginated read
    trn = facts["trn1.32xlarge"]
    assert (trn["neuron_devices"], trn["neuron_model"], trn["neuron_memory_mib"]) == (16, "Trainium", 524288)
    assert (trn["gpus"], trn["vcpu"], trn["memory_mib"]) == (0, 128, 524288)
    assert trn["network_baseline_gbps"] == Decimal("800.0")  # 8 network cards of 100 Gbit/s
    assert trn["instance_storage_gb"] == 7600
    assert (facts["trn1.2xlarge"]["neuron_devices"], facts["trn1.2xlarge"]["network_baseline_gbps"]) == (
        1, Decimal("3.125"))
    inf = facts["inf2.48xlarge"]
    assert (inf["neuron_devices"], inf["neuron_model"], inf["other_accelerators"]) == (12, "Inferentia2", 0)
    g5, g4 = facts["g5.2xlarge"], facts["g4dn.xlarge"]
    assert (g5["gpus"], g5["gpu_model"], g5["gpu_memory_mib"]) == (1, "A10G", 22888)
    assert (g4["gpus"], g4["gpu_model"], g4["gpu_memory_mib"]) == (1, "T4", 16384)
    m7i8, m7i2 = facts["m7i.8xlarge"], facts["m7i.2xlarge"]
    assert (m7i8["network_baseline_gbps"], m7i8["network_performance"]) == (Decimal("12.5"), "12.5 Gigabit")
    # "Up to 12.5 Gigabit" is a credit burst: the baseline is 3.125
    assert (m7i2["network_baseline_gbps"], m7i2["network_peak_gbps"], m7i2["network_performance"]) == (
        Decimal("3.125"), Decimal("12.5"), "Up to 12.5 Gigabit")
    m6id = facts["m6id.2xlarge"]
    assert (m6id["instance_storage_gb"], m6id["ebs_baseline_mbps"], m6id["ebs_max_mbps"]) == (
        474, Decimal("312.5"), Decimal("1250.0"))
    assert (m6id["ebs_baseline_iops"], m6id["ebs_max_iops"]) == (12000, 40000)
    assert facts["m6id.large"]["instance_storage_gb"] == 118 and facts["m6g.large"]["instance_storage_gb"] == 0
    # burstable: the baseline and credits come from the shipped T-instance credit table (the API has neither)
    t4g = facts["t4g.large"]
    assert (t4g["burstable"], t4g["arch"], t4g["burst_baseline_pct"], t4g["burst_credits_per_hour"]) == (
        True, "arm64", Decimal("30"), Decimal("36"))
    assert facts["m7i.2xlarge"]["burst_baseline_pct"] is None
    assert "p3.2xlarge" not in facts  # moto's dump lacks it (as does the bundled snapshot)


@mock_aws
def test_a_filter_read_skips_unknown_types_instead_of_failing() -> None:
    facts = describe_instance_types(_ec2(), {"t4g.large", "p3.2xlarge"})
    assert [f["instance_type"] for f in facts] == ["t4g.large"]


def test_the_paginator_follows_next_token_and_older_items_without_bandwidth_figures() -> None:
    """An item shaped as AWS documents an older generation: no NetworkCards baseline, no EBS-optimised info,
    one GPU (botocore's Stubber refuses any field the ec2 model does not have)."""
    client = _ec2()
    p3 = {"InstanceType": "p3.2xlarge", "BareMetal": False, "BurstablePerformanceSupported": False,
          "VCpuInfo": {"DefaultVCpus": 8}, "MemoryInfo": {"SizeInMiB": 62464},
          "ProcessorInfo": {"SupportedArchitectures": ["x86_64"]},
          "GpuInfo": {"Gpus": [{"Name": "V100", "Manufacturer": "NVIDIA", "Count": 1,
                                "MemoryInfo": {"SizeInMiB": 16384}}], "TotalGpuMemoryInMiB": 16384},
          "NetworkInfo": {"NetworkPerformance": "Up to 10 Gigabit"}}
    m6g = _moto_dump()["m6g.large"]
    with Stubber(client) as stub:
        stub.add_response("describe_instance_types", {"InstanceTypes": [p3], "NextToken": "page2"}, {})
        stub.add_response("describe_instance_types", {"InstanceTypes": [m6g]}, {"NextToken": "page2"})
        facts = describe_instance_types(client)
        stub.assert_no_pending_responses()
    assert [f["instance_type"] for f in facts] == ["m6g.large", "p3.2xlarge"]
    old = facts[1]
    assert (old["gpus"], old["gpu_model"], old["gpu_memory_mib"], old["vcpu"]) == (1, "V100", 16384, 8)
    # unknown, never 0: a measured network or EBS load then excludes it as a candidate
    assert (old["network_baseline_gbps"], old["ebs_baseline_mbps"], old["ebs_baseline_iops"]) == (None, None, None)
    assert old["network_performance"] == "Up to 10 Gigabit" and old["instance_storage_gb"] == 0


def test_the_bundled_snapshot_is_the_parser_applied_to_moto_dump() -> None:
    dump, bundled = _moto_dump(), bundled_facts()
    compared = 0
    for itype, facts in bundled.items():
        if itype not in dump:
            assert facts["vcpu"] is None  # the 27 retired types: no facts, "not analysed"
            continue
        expected = facts_from_api(dump[itype])
        assert {c: facts[c] for c in CSV_KINDS} == {c: expected[c] for c in CSV_KINDS}, itype
        compared += 1
    assert compared > 1300


@pytest.fixture
def store(migrated_db: str):
    with psycopg.connect(migrated_db, autocommit=True) as conn:
        migrate(conn)
        yield conn


@mock_aws
def test_each_wanted_type_is_read_at_most_daily_by_name(store) -> None:
    client = _ec2()
    calls: list[dict] = []
    client.meta.events.register("provide-client-params.ec2.DescribeInstanceTypes",
                                lambda params, **_: calls.append(dict(params)))
    wanted = {"t4g.large", "t4g.xlarge", "m6g.large"}
    facts = collect_facts(store, client, wanted, NOW)
    assert sorted(f["instance_type"] for f in facts) == sorted(wanted)
    assert calls == [{"Filters": [{"Name": "instance-type", "Values": sorted(wanted)}]}]
    with store.transaction():
        store_facts(store, facts, NOW)
    # an hour later: fresh, nothing read; a new candidate: only that one
    assert collect_facts(store, client, wanted, NOW + dt.timedelta(hours=1)) == [] and len(calls) == 1
    facts = collect_facts(store, client, wanted | {"m7i.large", "p3.2xlarge"}, NOW + dt.timedelta(hours=2))
    assert [f["instance_type"] for f in facts] == ["m7i.large"]  # p3.2xlarge: unknown to AWS (moto), skipped
    assert calls[-1] == {"Filters": [{"Name": "instance-type", "Values": ["m7i.large", "p3.2xlarge"]}]}
    # a day after they were read: again
    assert len(collect_facts(store, client, wanted, NOW + dt.timedelta(hours=24))) == 3


def test_many_wanted_types_are_read_100_names_a_call(store) -> None:
    dump = _moto_dump()
    names = sorted(dump)[:250]
    client = _ec2()
    with Stubber(client) as stub:
        for i in range(0, 250, 100):
            part = names[i:i + 100]
            stub.add_response("describe_instance_types", {"InstanceTypes": [dump[n] for n in part]},
                              {"Filters": [{"Name": "instance-type", "Values": part}]})
        facts = collect_facts(store, client, names, NOW)
        stub.assert_no_pending_responses()
    assert [f["instance_type"] for f in facts] == names


def test_aws_facts_survive_the_bundled_load_at_every_migrate(store) -> None:
    item = dict(_moto_dump()["m7i.2xlarge"])
    item["MemoryInfo"] = {"SizeInMiB": 40000}  # differs from the bundled snapshot
    with store.transaction():
        store_facts(store, [facts_from_api(item)], NOW)
    migrate(store)  # reloads the bundled snapshot
    row = store.execute("SELECT memory_mib, source, fetched_at, network_baseline_gbps FROM dashgen.instance_types "
                        "WHERE instance_type = 'm7i.2xlarge'").fetchone()
    assert row == (40000, API_SOURCE, NOW, Decimal("3.125"))
    bundled = store.execute("SELECT source, fetched_at, burst_baseline_pct FROM dashgen.instance_types "
                            "WHERE instance_type = 't4g.large'").fetchone()
    assert bundled == ("bundled-snapshot", None, Decimal("30"))


def test_an_unreadable_item_is_one_line_naming_the_type() -> None:
    from dashgen.errors import AwsError

    client = _ec2()
    item = {k: v for k, v in _moto_dump()["m6g.large"].items() if k != "InstanceType"}  # optional in the model
    with Stubber(client) as stub:
        stub.add_response("describe_instance_types", {"InstanceTypes": [item]}, {})
        with pytest.raises(AwsError, match=r"^ec2 DescribeInstanceTypes: unreadable facts for \?: KeyError"):
            describe_instance_types(client)
