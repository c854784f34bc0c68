"""Build: render every dashboard module to `dashboards/<slug>.json`, validated, atomically, byte-stable.

`build_outputs` is pure (config -> {file name: text}); `write_outputs` writes only what changed;
`check_outputs` compares without writing (for CI and pre-commit): stale, missing and unexpected files.
Other generated files (provisioning) join the same check through `extra` outputs.
"""

from __future__ import annotations

from pathlib import Path

from dashgen.config import Config
from dashgen.fsutil import dumps_json
from dashgen.outputs import OutputsResult, check_outputs, write_outputs

DEFAULT_OUT = Path("dashboards")


def render_dashboards(config: Config, root: Path | None = None) -> dict[str, dict]:
    """Every dashboard (the built-ins `[build] builtins` keeps and the user's `[build] sources`, read below
    `root`, default the current folder) as current Grafana JSON data, keyed by file name; each one validated,
    uids unique."""
    from dashgen.definitions import DefinitionError, build_definition, load_definitions
    from dashgen.grafana.validate import check

    out: dict[str, dict] = {}
    origins: dict[str, str] = {}
    for defn in load_definitions(config, root):
        data = build_definition(defn, config)
        if data["uid"] in origins:
            raise DefinitionError(f"{defn.origin}: uid {data['uid']!r} is already used by {origins[data['uid']]}")
        origins[data["uid"]] = defn.origin
        check(data, defn.file_name if defn.builtin else defn.origin, config)
        out[defn.file_name] = data
    return out


def build_outputs(config: Config, root: Path | None = None) -> dict[str, str]:
    """File name -> exact file text, for every dashboard."""
    return {name: dumps_json(data) for name, data in sorted(render_dashboards(config, root).items())}


def build(
    config: Config, out_dir: Path = DEFAULT_OUT, *, check: bool = False, provisioning_dir: Path | None = None
) -> OutputsResult:
    """`dashgen build`: render, validate and write (or, with `check`, only compare) every dashboard;
    with `provisioning_dir`, the provisioning files too (`dashgen provision`), reported in `.provisioning`."""
    outputs = build_outputs(config)
    result = check_outputs(outputs, out_dir) if check else write_outputs(outputs, out_dir)
    if provisioning_dir is not None:
        from dashgen.grafana.provision import provision

        result.provisioning = provision(config, provisioning_dir, check=check)
    return result


def review_build(config: Config, out_dir: Path = DEFAULT_OUT, provisioning_dir: Path | None = None):  # noqa: ANN201
    """`dashgen build --check --format markdown|json`: the check as a `review.Review`, each stale dashboard with
    the panels the build would change; stale provisioning files listed by name."""
    from dashgen.grafana.review import DashboardReview, Review, check_review

    outputs = build_outputs(config)
    result = check_outputs(outputs, out_dir)
    review = check_review(outputs, out_dir, result.stale, result.missing, result.unexpected)
    if provisioning_dir is not None:
        from dashgen.grafana.provision import provision

        prov = provision(config, provisioning_dir, check=True)
        extra = [DashboardReview("", f"{provisioning_dir / n}", action, str(provisioning_dir / n), why)
                 for action, names, why in (("stale", prov.stale, "differs from what dashgen build writes"),
                                            ("missing", prov.missing, "not written yet"),
                                            ("unexpected", prov.unexpected, "not written by dashgen"))
                 for n in names]
        review = Review(review.kind, review.dashboards + tuple(extra))
    return review
