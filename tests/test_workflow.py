"""The post-deploy workflow's structure: gate after deploy, reports kept, release attached, rollback on failure."""

from __future__ import annotations

import re

import yaml

from tests.conftest import REPO

WORKFLOW = REPO / ".github" / "workflows" / "post-deploy-smoke.yml"
SHARDED = REPO / ".github" / "workflows" / "post-deploy-smoke-sharded.yml"


def _workflow() -> dict:
    return yaml.safe_load(WORKFLOW.read_text())


def _step(job: dict, name: str) -> dict:
    return next(step for step in job["steps"] if step.get("name") == name)


def test_the_gate_runs_the_smoke_suite_against_production_after_the_deploy():
    jobs = _workflow()["jobs"]
    gate = jobs["smoke-gate"]
    assert gate["needs"] == "deploy"
    run = _step(gate, "Run the smoke gate")
    assert "pytest -m smoke --target production" in run["run"]
    for report in ("--html=reports/report.html", "--junitxml=reports/junit.xml", "--json-summary=reports/summary.json"):
        assert report in run["run"]
    assert "continue-on-error" not in run  # a failed gate fails the job


def test_secrets_come_from_repository_secrets_only():
    text = WORKFLOW.read_text()
    gate = _workflow()["jobs"]["smoke-gate"]
    env = _step(gate, "Run the smoke gate")["env"]
    assert env["VIWORKS_API_TOKEN"] == "${{ secrets.VIWORKS_API_TOKEN }}"
    for value in _step(gate, "Write the production target from secrets")["env"].values():
        assert re.fullmatch(r"\$\{\{ secrets\.[A-Z_]+ \}\}", value)
    assert not re.search(r"\b\d{1,3}(\.\d{1,3}){3}\b", text), "no addresses in the workflow"


def test_reports_are_uploaded_always_and_attached_to_tagged_releases():
    gate = _workflow()["jobs"]["smoke-gate"]
    upload = _step(gate, "Upload the reports")
    assert (
        upload["if"] == "always()"
        and upload["uses"].startswith("actions/upload-artifact@")
        and upload["with"]["path"] == "reports/"
    )
    attach = _step(gate, "Attach the report to the release")
    assert "startsWith(github.ref, 'refs/tags/')" in attach["if"] and attach["with"]["files"] == "reports/report.html"


def test_a_failed_gate_is_followed_by_the_rollback():
    rollback = _workflow()["jobs"]["rollback"]
    assert rollback["needs"] == "smoke-gate" and rollback["if"] == "failure()"


def test_the_last_green_snapshot_is_the_next_gates_baseline():
    gate = _workflow()["jobs"]["smoke-gate"]
    names = [step.get("name") for step in gate["steps"]]
    fetch, run, keep = (
        _step(gate, name)
        for name in (
            "Fetch the last green snapshot",
            "Run the smoke gate",
            "Keep this snapshot as the next gate's baseline",
        )
    )
    assert names.index(fetch["name"]) < names.index(run["name"]) < names.index(keep["name"])
    assert "--status success" in fetch["run"] and "--name last-green-snapshot --dir baseline" in fetch["run"]
    assert "--snapshot-out=reports/snapshot.json" in run["run"] and "--baseline=baseline/snapshot.json" in run["run"]
    assert run["env"]["VIWORKS_SNAPSHOT_KEY"] == "${{ secrets.VIWORKS_SNAPSHOT_KEY }}"  # secrets compare across runs
    assert keep["if"] == "success()" and keep["with"] == {
        "name": "last-green-snapshot",
        "path": "reports/snapshot.json",
        "retention-days": 90,
    }
    assert _workflow()["permissions"]["actions"] == "read"


def test_the_sharded_gate_runs_each_shard_on_its_runner_and_merges_them():
    jobs = yaml.safe_load(SHARDED.read_text())["jobs"]
    shard = jobs["smoke-shard"]
    assert shard["strategy"]["fail-fast"] is False and len(shard["strategy"]["matrix"]["shard"]) > 1
    run = _step(shard, "Run the smoke gate, this shard")["run"]
    assert "pytest -m smoke --target production" in run
    assert "--shard=${{ matrix.shard }}/${{ strategy.job-total }}" in run
    assert "--junitxml=reports/shard-${{ matrix.shard }}.xml" in run
    merge = jobs["merge"]
    assert merge["needs"] == "smoke-shard" and merge["if"] == "always()"
    merged = _step(merge, "Merge the shards into one verdict and report")["run"]
    assert "viworks-verify merge shards/shard-*.xml" in merged and "--html reports/report.html" in merged
    attach = _step(merge, "Attach the report to the release")
    assert "startsWith(github.ref, 'refs/tags/')" in attach["if"] and attach["with"]["files"] == "reports/report.html"
    text = SHARDED.read_text()
    assert not re.search(r"\b\d{1,3}(\.\d{1,3}){3}\b", text), "no addresses in the workflow"
    for value in _step(shard, "Write the production target from secrets")["env"].values():
        assert re.fullmatch(r"\$\{\{ secrets\.[A-Z_]+ \}\}", value)
