"""The launchpad explains every setting, and the README names only settings, keys and assets that exist."""

from __future__ import annotations

import itertools
import re

import pytest

from retail_seg import settings
from retail_seg.definitions import build_definitions
from retail_seg_tests.pipeline import ALL_ASSETS
from retail_seg_tests.servers import REPO

README = (REPO / "README.md").read_text(encoding="utf-8")


JOBS = ("segment_customers", "load_files")
# Resources whose settings are run settings; the others take theirs from the environment (below).
RUN_RESOURCES = ("load_rules",)


def _config_fields(section: str) -> dict[str, dict[str, object]]:
    """run-config key → its config fields (name → field), for the jobs' ops or resources."""
    fields = {}
    for job in JOBS:
        schema = build_definitions().resolve_job_def(job).run_config_schema.config_type
        for key, entry in schema.fields[section].config_type.fields.items():
            config = getattr(entry.config_type, "fields", {}).get("config")
            if config is not None and hasattr(config.config_type, "fields"):
                fields[key] = config.config_type.fields
    return fields


def _run_settings() -> dict[str, dict[str, object]]:
    """`ops.<step>` or `resources.<resource>` → its fields: everything a run's config sets."""
    resources = _config_fields("resources")
    return {
        **{f"ops.{key}": entries for key, entries in _config_fields("ops").items()},
        **{f"resources.{key}": resources[key] for key in RUN_RESOURCES},
    }


def _table_rows(heading: str) -> list[list[str]]:
    """The body rows of the first Markdown table after `heading`, as cell texts."""
    after = README.split(heading, 1)[1].splitlines()
    start = next(i for i, line in enumerate(after) if line.startswith("|"))
    table = list(itertools.takewhile(lambda line: line.startswith("|"), after[start:]))
    return [[cell.strip() for cell in line.strip("|").split("|")] for line in table[2:]]


def _names(cell: str) -> list[str]:
    return re.findall(r"`([^`]+)`", cell)


@pytest.mark.parametrize("section", ["ops", "resources"])
def test_every_setting_has_a_description_the_launchpad_shows(section):
    fields = _config_fields(section)
    assert fields
    undocumented = [
        f"{key}.{name}"
        for key, entries in fields.items()
        for name, entry in entries.items()
        if not (entry.description or "").strip() and key != "io_manager"
    ]
    assert undocumented == []


def test_the_readme_run_settings_are_the_real_run_config_keys():
    fields = _run_settings()
    documented = set()
    for row in _table_rows("### Run settings"):
        keys, names = _names(row[0]), _names(row[1])
        assert keys and names, f"a row names no run-config key or setting: {row}"
        for key in keys:
            assert key in fields, f"README names run-config key {key!r}; the job has {sorted(fields)}"
            for name in names:
                assert name in fields[key], f"README names {key}.{name}; {key} has {sorted(fields[key])}"
                documented.add((key, name))
    every = {(key, name) for key, entries in fields.items() for name in entries}
    assert every - documented == set(), "settings the README does not document"


def test_the_readme_environment_settings_are_the_projects():
    documented = {_names(row[0])[0]: row for row in _table_rows("### Environment")}
    assert set(documented) == {s.variable for s in settings.SETTINGS}
    for setting in settings.SETTINGS:
        default = _names(documented[setting.variable][1])[0]
        assert setting.default.endswith(default.removeprefix("data/").removeprefix("./")) or (
            default == setting.default
        ), f"{setting.variable}: README says {default}, the project {setting.default}"


def test_the_readme_asset_table_names_every_asset_and_no_other():
    named = {name for row in _table_rows("## The assets") for name in _names(row[0])}
    assert named == ALL_ASSETS
