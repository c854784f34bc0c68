import datetime as dt
from pathlib import Path

import pytest

from dashgen.config import SAMPLE_CONFIG, Config, load_config, parse_config, write_sample_config
from dashgen.errors import EXIT_USAGE, ConfigError


def write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "dashgen.toml"
    path.write_text(text)
    return path


def test_defaults_without_a_file(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    cfg = load_config()
    assert cfg == Config()
    assert cfg.cpu_threshold == 80
    assert cfg.threshold("EBSIOBalance%") == 20
    assert cfg.threshold("NetworkIn") is None


def test_sample_config_is_the_defaults(tmp_path: Path) -> None:
    path = tmp_path / "dashgen.toml"
    write_sample_config(path)
    assert path.read_text() == SAMPLE_CONFIG
    cfg = load_config(path)
    assert cfg == Config(source=str(path), thresholds={"CPUUtilization": 80.0})
    with pytest.raises(ConfigError, match="already exists"):
        write_sample_config(path)


def test_values_are_read(tmp_path: Path) -> None:
    cfg = load_config(write(tmp_path, """
[grafana]
folder_uid = "ml-costs"
[thresholds]
CPUUtilization = 70
"EBSIOBalance%" = 10
[aws]
regions = ["eu-central-1", "us-east-1"]
[[experiments]]
name = "t4g-sizing"
budget_usd = 50
deadline = 2026-12-31T18:00:00Z
[experiments.progress]
namespace = "Training"
metric_name = "Progress"
dimensions = { Experiment = "t4g-sizing" }
"""))
    assert cfg.folder_uid == "ml-costs"
    assert cfg.grafana_version == "12.3"  # the default: the Grafana docker-compose.yml pins
    assert cfg.cpu_threshold == 70 and cfg.threshold("EBSIOBalance%") == 10
    assert cfg.regions == ("eu-central-1", "us-east-1")
    (exp,) = cfg.experiments
    assert exp.tag_key == "experiment" and exp.tag_value == "t4g-sizing" and exp.budget_usd == 50
    assert exp.deadline == dt.datetime(2026, 12, 31, 18, tzinfo=dt.UTC)
    assert exp.progress_metric == "Progress" and exp.progress_dimensions == (("Experiment", "t4g-sizing"),)


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ('[thresholds]\nCPUUtilization = "high"', "thresholds.CPUUtilization: expected a percentage"),
        ("[thresholds]\nCPUUtilization = 150", "thresholds.CPUUtilization: expected a percentage"),
        ("[thresholds]\nCPUUtil = 3", "thresholds.CPUUtil: expected an AWS/EC2 metric name"),
        ("[grafana]\nfolder_uid = 'has spaces'", "grafana.folder_uid: expected a uid"),
        ("[grafana]\nfolder = 'x'", "grafana.folder: expected one of the known keys"),
        ("[dashboards]\nrefresh = 'often'", "dashboards.refresh: expected a duration"),
        ("[aws]\nregions = ['mars-1']", "aws.regions: expected a non-empty list of AWS regions"),
        ("[pricing]\nprices = 'cheap'", "pricing.prices: expected 'api' or 'bundled'"),
        ("[grafana]\nversion = '11.6'", "grafana.version: expected '12.3' or '13', got '11.6'"),
        ("[grafana]\nversion = 13", "grafana.version: expected '12.3' or '13', got 13"),
        ("[pricing]\ndsn = 'postgresql://u:secret@h/db'", "pricing.dsn: expected a DSN without a password"),
        ("[[experiments]]\nname = 'x'\ndeadline = 2026-12-01", "experiments[0].budget_usd: expected a number"),
        ("[[experiments]]\nname = 'x'\nbudget_usd = 5\ndeadline = 'soon'", "experiments[0].deadline: expected an ISO"),
        ("[grafana", "not valid TOML"),
    ],
)
def test_bad_config_names_file_key_and_expectation(tmp_path: Path, text: str, expected: str) -> None:
    path = write(tmp_path, text)
    with pytest.raises(ConfigError) as info:
        load_config(path)
    message = str(info.value)
    assert message.startswith(f"{path}: ")
    assert expected in message
    assert "\n" not in message
    assert info.value.exit_code == EXIT_USAGE


def test_secret_is_never_echoed(tmp_path: Path) -> None:
    with pytest.raises(ConfigError) as info:
        load_config(write(tmp_path, "[pricing]\ndsn = 'postgresql://u:hunter2@h/db'"))
    assert "hunter2" not in str(info.value)


def test_missing_explicit_file(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="no such config file"):
        load_config(tmp_path / "nope.toml")


def test_parse_config_rejects_duplicate_experiments() -> None:
    exp = {"name": "a", "budget_usd": 1, "deadline": "2026-12-01"}
    with pytest.raises(ConfigError, match="unique names"):
        parse_config({"experiments": [exp, exp]}, "x.toml")
