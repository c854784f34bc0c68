"""docker-compose.yml, .env.example and the Dockerfile, checked as files (no Docker engine in CI): the Compose
Specification schema, the semantic points (pinned images, healthchecks, start order, volumes, no literal
secrets) and agreement with the provisioning files and the README's install step."""

from __future__ import annotations

import json
import re
import shlex
import tomllib
from pathlib import Path
from typing import Any

import jsonschema
import pytest
import yaml

from dashgen.config import Config
from dashgen.grafana import provision as P

REPO = Path(__file__).resolve().parents[1]
DATA = Path(__file__).resolve().parent / "data"
ENV_REF = re.compile(r"^\$\{([A-Z_][A-Z0-9_]*)(:?[-?][^}]*)?\}$")
SECRET_NAME = re.compile(r"PASSWORD|SECRET|TOKEN|ACCESS_KEY", re.IGNORECASE)


@pytest.fixture(scope="module")
def compose() -> dict[str, Any]:
    return yaml.safe_load((REPO / "docker-compose.yml").read_text())


def services(compose: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return compose["services"]


def mounts(service: dict[str, Any]) -> dict[str, tuple[str, str]]:
    """Container path -> (source, mode) of a service's volumes (short or long syntax)."""
    out = {}
    for spec in service.get("volumes", []):
        if isinstance(spec, dict):
            out[spec["target"]] = (spec["source"], "ro" if spec.get("read_only") else "rw")
            continue
        source, target, mode = spec.rsplit(":", 2) if spec.endswith((":ro", ":rw")) else (*spec.rsplit(":", 1), "rw")
        out[target] = (source, mode)
    return out


def env_file_vars() -> dict[str, str]:
    out = {}
    for line in (REPO / ".env.example").read_text().splitlines():
        line = line.strip().removeprefix("# ").strip()
        if re.match(r"^[A-Z_][A-Z0-9_]*=", line):
            key, _, value = line.partition("=")
            out[key] = value
    return out


def test_compose_file_is_valid_against_the_compose_specification(compose: dict[str, Any]) -> None:
    schema = json.loads((DATA / "compose-spec.json").read_text())
    assert "draft-07" in schema["$schema"]
    jsonschema.Draft7Validator.check_schema(schema)
    errors = [f"{list(e.absolute_path)}: {e.message}" for e in jsonschema.Draft7Validator(schema).iter_errors(compose)]
    assert errors == []
    broken = json.loads(json.dumps(compose))
    broken["services"]["grafana"]["depends_on"]["postgres"]["condition"] = "service_ready"
    assert list(jsonschema.Draft7Validator(schema).iter_errors(broken))  # the schema does check what we use


def test_images_are_pinned_grafana_12_and_postgres_16(compose: dict[str, Any]) -> None:
    s = services(compose)
    assert re.fullmatch(r"grafana/grafana:12\.\d+\.\d+", s["grafana"]["image"])
    assert re.fullmatch(r"postgres:16(\.\d+)?(-[a-z0-9]+)?", s["postgres"]["image"])
    assert s["dashgen"]["build"] in (".", {"context": "."})


def test_healthchecks_and_start_order(compose: dict[str, Any]) -> None:
    s = services(compose)
    for name in ("postgres", "grafana"):
        check = s[name]["healthcheck"]
        assert check["test"][0] in ("CMD", "CMD-SHELL") and not check.get("disable")
    pg_check = s["postgres"]["healthcheck"]["test"]
    assert "pg_isready" in pg_check and pg_check[pg_check.index("--host") + 1] == "127.0.0.1"  # not during init
    assert "/api/health" in " ".join(s["grafana"]["healthcheck"]["test"])
    for name in ("grafana", "dashgen"):
        assert s[name]["depends_on"] == {"postgres": {"condition": "service_healthy"}}


def test_named_volumes_hold_the_state_and_the_project_folders_are_mounted(compose: dict[str, Any]) -> None:
    s = services(compose)
    assert set(compose["volumes"]) == {"pgdata", "grafana-data"}
    assert mounts(s["postgres"])["/var/lib/postgresql/data"][0] == "pgdata"
    assert mounts(s["grafana"])["/var/lib/grafana"][0] == "grafana-data"
    grafana = mounts(s["grafana"])
    assert grafana["/etc/grafana/provisioning/datasources"] == ("./provisioning/datasources", "ro")
    assert grafana["/etc/grafana/provisioning/dashboards"] == ("./provisioning/dashboards", "ro")
    assert grafana[P.DASHBOARDS_PATH] == ("./dashboards", "ro")  # where the provider looks
    init_dir = str(Path(P.INIT_SQL_FILE).parent)
    assert mounts(s["postgres"])["/docker-entrypoint-initdb.d"] == (f"./provisioning/{init_dir}", "ro")
    for name in ("grafana", "dashgen"):  # AWS credentials: environment, or ~/.aws read-only
        source, mode = mounts(s[name])["/etc/aws"]
        assert "~/.aws" in source and mode == "ro"
        assert s[name]["environment"]["AWS_SHARED_CREDENTIALS_FILE"].startswith("/etc/aws/")


def test_no_literal_secrets_and_no_default_admin_password(compose: dict[str, Any]) -> None:
    for name, service in services(compose).items():
        for key, value in service.get("environment", {}).items():
            if SECRET_NAME.search(key):
                # either a pass-through (no value) or a required ${VAR:?...} reference: never a literal
                assert value is None or (ENV_REF.match(value) and ":?" in value), (name, key, value)
            if isinstance(value, str) and "://" in value:
                assert not re.search(r"://[^/@:]+:[^/@]+@", value), (name, key)  # no password in a DSN
    grafana_env = services(compose)["grafana"]["environment"]
    assert grafana_env["GF_SECURITY_ADMIN_PASSWORD"] == "${GRAFANA_ADMIN_PASSWORD:?set it in .env}"
    text = (REPO / "docker-compose.yml").read_text()
    assert "admin/admin" not in text and not re.search(r"PASSWORD:\s*['\"]?admin", text)


def test_env_example_lists_every_required_variable_with_no_secret_value(compose: dict[str, Any]) -> None:
    values = json.dumps(compose)  # the parsed file: values only, no comments
    required = set(re.findall(r"\$\{([A-Z_][A-Z0-9_]*):\?", values))
    example = env_file_vars()
    assert required and required <= set(example), required - set(example)
    for key, value in example.items():
        if SECRET_NAME.search(key):
            assert value == "", key
    assert ".env" in (REPO / ".gitignore").read_text().split()


def test_compose_agrees_with_the_provisioning_files(compose: dict[str, Any]) -> None:
    s = services(compose)
    pg_env, grafana_env, dashgen_env = (s[n]["environment"] for n in ("postgres", "grafana", "dashgen"))
    assert pg_env["POSTGRES_DB"] == P.DATABASE
    # every ${VAR} the provisioning files expand exists in the environment of the container that reads them
    outputs = P.provision_outputs(Config())
    for name, env in ((P.DATASOURCES_FILE, grafana_env), (P.INIT_SQL_FILE, pg_env)):
        text = "\n".join(line for line in outputs[name].splitlines() if not line.lstrip().startswith(("#", "--")))
        wanted = set(re.findall(r"\$\{([A-Z_]+)\}", text)) | set(re.findall(r"\\getenv \w+ ([A-Z_]+)", text))
        assert wanted and wanted <= set(env), (name, wanted - set(env))
    assert grafana_env["DASHGEN_READER_PASSWORD"] == pg_env["DASHGEN_READER_PASSWORD"]
    host = P.POSTGRES_URL.split(":")[0]
    assert host in s and "5432" in P.POSTGRES_URL
    assert dashgen_env["DASHGEN_DSN"] == f"postgresql://{P.OWNER_ROLE}@{P.POSTGRES_URL}/{P.DATABASE}"
    assert dashgen_env["PGPASSWORD"] == pg_env["DASHGEN_OWNER_PASSWORD"]


def test_dashgen_service_syncs_every_15_minutes(compose: dict[str, Any]) -> None:
    service = services(compose)["dashgen"]
    assert service["command"] == ["sync", "--loop"]  # the interval is [pricing] every, default:
    assert Config().sync_every == "15m"


# ---------------------------------------------------------------- Dockerfile


def dockerfile_instructions() -> list[tuple[str, str]]:
    text = (REPO / "Dockerfile").read_text().replace("\\\n", " ")
    return [(line.split(None, 1)[0].upper(), line.split(None, 1)[1].strip())
            for line in text.splitlines() if line.strip() and not line.lstrip().startswith("#")]


def pip_install(command: str) -> tuple[str, set[str], set[str]]:
    """(target, extras, flags) of the first `pip install` in a shell command line."""
    for part in re.split(r"&&|;", command):
        words = shlex.split(part)
        names = [Path(w).name for w in words]
        if "pip" in names and "install" in words[names.index("pip"):]:
            args = words[words.index("install") + 1:]
            targets = [a for a in args if not a.startswith("-")]
            assert len(targets) == 1, args
            target, _, extras = targets[0].partition("[")
            return target, set(filter(None, extras.rstrip("]").split(","))), {a for a in args if a.startswith("-")}
    raise AssertionError(f"no pip install in {command!r}")


def readme_install_command() -> str:
    readme = (REPO / "README.md").read_text()
    quick = readme.split("## Quick start", 1)[1]
    return re.search(r"```sh\n(.*?)```", quick, re.S).group(1).strip()


def test_dockerfile_installs_the_package_as_the_readme_does() -> None:
    readme_target, readme_extras, _ = pip_install(readme_install_command())
    runs = [arg for op, arg in dockerfile_instructions() if op == "RUN" and "pip" in arg]
    assert len(runs) == 1
    target, extras, flags = pip_install(runs[0])
    assert target == readme_target == "."  # this checkout, as the quick start installs it
    assert extras <= readme_extras and "test" not in extras  # no test tools in the image
    assert "-e" not in flags and "--editable" not in flags  # a real install in the image


def test_dockerfile_base_user_and_entrypoint() -> None:
    ops = dockerfile_instructions()
    (base,) = [arg for op, arg in ops if op == "FROM"]
    assert base == "python:3.11-slim"
    requires = tomllib.loads((REPO / "pyproject.toml").read_text())["project"]["requires-python"]
    assert requires == ">=3.11" and base.split(":")[1].startswith("3.11")
    users = [arg for op, arg in ops if op == "USER"]
    assert users and users[-1] not in ("root", "0")
    assert [i for i, (op, _) in enumerate(ops) if op == "USER"][-1] > max(
        i for i, (op, _) in enumerate(ops) if op == "RUN")  # nothing runs as root after the switch
    assert json.loads(next(arg for op, arg in ops if op == "ENTRYPOINT")) == ["dashgen"]
    copied = " ".join(arg for op, arg in ops if op == "COPY")
    assert "pyproject.toml" in copied and "src" in copied and ".env" not in copied
    ignore = (REPO / ".dockerignore").read_text().splitlines()
    assert ignore[1:2] == ["*"] or "*" in ignore  # only what is listed goes into the build context


def test_dashgen_toml_is_mounted_read_only_never_baked_into_the_image(compose: dict[str, Any]) -> None:
    """The config may name hosts, users and experiments: it stays out of the image (and the build context) and
    reaches the `dashgen` service as a read-only bind mount where dashgen looks for it (its working directory).
    `create_host_path: false`: a missing file stops compose, instead of Docker creating a folder in its place."""
    ops = dockerfile_instructions()
    copied = " ".join(arg for op, arg in ops if op in ("COPY", "ADD"))
    assert "dashgen.toml" not in copied and "*" not in copied
    ignore = [line.strip() for line in (REPO / ".dockerignore").read_text().splitlines()]
    assert "*" in ignore and not any("dashgen.toml" in line for line in ignore if line.startswith("!"))
    workdir = [arg for op, arg in ops if op == "WORKDIR"][-1]
    service = services(compose)["dashgen"]
    assert "working_dir" not in service
    assert mounts(service)[f"{workdir}/dashgen.toml"] == ("./dashgen.toml", "ro")
    (spec,) = [v for v in service["volumes"] if isinstance(v, dict) and v["source"] == "./dashgen.toml"]
    assert spec["type"] == "bind" and spec["bind"]["create_host_path"] is False
