"""``headwater jobs submit|list|show|kill|logs`` against the suite's databases, with a real worker."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from fastapi import FastAPI
from jobs_helpers import shell_setup, worker_thread
from typer.testing import CliRunner

from headwater.cli import app as cli
from headwater.jobs.worker import JobWorker
from headwater.settings import get_settings

pytestmark = pytest.mark.anyio
runner = CliRunner()


@pytest.fixture
def cli_env(app: FastAPI, monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Iterator[None]:
    """The CLI pointed at the suite's database."""
    monkeypatch.setenv("HEADWATER_DATABASE_URL", app.state.settings.database_url)
    monkeypatch.setenv("HEADWATER_DATA_DIR", str(tmp_path / "cli-data"))
    get_settings.cache_clear()
    yield
    get_settings.cache_clear()


def _submit(*extra: str) -> dict[str, object]:
    base = ["jobs", "submit", "--name", "cli-job", "--user", "carol", "--command-tags", "type:sh"]
    result = runner.invoke(cli, [*base, "--cluster-tags", "nope", "--cluster-tags", "sched:test", *extra])
    assert result.exit_code == 0, result.output
    submitted: dict[str, object] = json.loads(result.stdout)
    return submitted


async def test_jobs_cli_round_trip(
    client: httpx.AsyncClient, app: FastAPI, worker: JobWorker, cli_env: None, tmp_path: Path
) -> None:
    await shell_setup(client)
    data = tmp_path / "input.txt"
    data.write_text("attached\n")
    job = _submit(
        "--tag", "cli", "--env", "WHO=cli", "--attach", str(data), "--memory-mb", "256", "--json", "--",
        'cat input.txt; echo "$WHO"',
    )  # fmt: skip
    assert job["status"] == "RESOLVED" and job["user"] == "carol" and job["tags"] == ["cli"]
    assert job["memory_mb"] == 256
    worker.drain(timeout=20)

    logs = runner.invoke(cli, ["jobs", "logs", str(job["id"])])
    assert logs.exit_code == 0 and logs.stdout == "attached\ncli\n"
    tail = runner.invoke(cli, ["jobs", "logs", str(job["id"]), "--offset", "9", "--follow"])
    assert tail.stdout == "cli\n"
    shown = json.loads(runner.invoke(cli, ["jobs", "show", str(job["id"]), "--json"]).stdout)
    assert shown["status"] == "SUCCEEDED" and [t["to"] for t in shown["transitions"]][-1] == "SUCCEEDED"
    listed = json.loads(runner.invoke(cli, ["jobs", "list", "--user", "carol", "--json"]).stdout)
    assert [item["id"] for item in listed["items"]] == [job["id"]]
    table = runner.invoke(cli, ["jobs", "list", "--status", "SUCCEEDED"])
    assert table.exit_code == 0 and "cli-job" in table.stdout

    queued = _submit("--json", "--", "sleep 30")
    killed = runner.invoke(cli, ["jobs", "kill", str(queued["id"])])
    assert killed.exit_code == 0 and "KILLED" in killed.stdout
    with worker_thread(app, tmp_path / "looping"):
        waited = runner.invoke(cli, ["jobs", "submit", "--name", "w", "--command-tags", "type:sh", "--cluster-tags",
                                     "sched:test", "--wait", "--json", "--", "exit 4"])  # fmt: skip
    assert waited.exit_code == 1, waited.output  # it waited for the end, and the end was a failure
    assert json.loads(waited.stdout)["status"] == "FAILED" and json.loads(waited.stdout)["exit_code"] == 4
    assert f"job {json.loads(waited.stdout)['id']} ended FAILED: " in waited.stderr  # the reason, beside the JSON


async def test_submitting_a_job_no_cluster_matches_exits_1_with_the_reason(
    client: httpx.AsyncClient, cli_env: None
) -> None:
    await shell_setup(client)
    invalid = runner.invoke(
        cli, ["jobs", "submit", "--name", "x", "--command-tags", "type:sh", "--cluster-tags", "sched:adhoc", "--json"]
    )
    assert invalid.exit_code == 1, invalid.output
    job = json.loads(invalid.stdout)
    assert job["status"] == "INVALID"
    assert f"job {job['id']} is INVALID: " in invalid.stderr and "sched:adhoc" in invalid.stderr
    waited = runner.invoke(
        cli, ["jobs", "submit", "--name", "x", "--command-tags", "type:nope", "--cluster-tags", "sched:test", "--wait"]
    )
    assert waited.exit_code == 1 and "is INVALID: " in waited.stderr and "type:nope" in waited.stderr


async def test_jobs_cli_errors_are_one_line(client: httpx.AsyncClient, cli_env: None, tmp_path: Path) -> None:
    await shell_setup(client)
    missing = runner.invoke(cli, ["jobs", "show", "nope"])
    assert missing.exit_code == 1 and "no job with id 'nope'" in missing.output
    bad_env = runner.invoke(
        cli, ["jobs", "submit", "--name", "x", "--command-tags", "t", "--cluster-tags", "c", "--env", "NOEQUALS"]
    )
    assert bad_env.exit_code == 1 and "NAME=value" in bad_env.output
    too_long = runner.invoke(
        cli, ["jobs", "submit", "--name", "x", "--command-tags", "t", "--cluster-tags", "c", "--", "a" * 10_001]
    )
    assert too_long.exit_code == 1 and "10001 characters" in too_long.output
    sneaky = tmp_path / "stdout"
    sneaky.write_text("x")
    reserved = runner.invoke(
        cli,
        ["jobs", "submit", "--name", "x", "--command-tags", "type:sh", "--cluster-tags", "sched:test",
         "--attach", str(sneaky)],
    )  # fmt: skip
    assert reserved.exit_code == 1 and "reserved" in reserved.output
    assert runner.invoke(cli, ["jobs", "logs", "nope"]).exit_code == 1


async def test_jobs_logs_reads_a_job_running_on_another_host_through_its_worker(
    client: httpx.AsyncClient, app: FastAPI, cli_env: None, tmp_path: Path
) -> None:
    import time

    await shell_setup(client)
    script = "echo far-away; i=0; while [ ! -f go ] && [ $i -lt 600 ]; do sleep 0.05; i=$((i+1)); done"
    job = _submit("--json", "--", script)
    with worker_thread(app, tmp_path / "elsewhere", host="elsewhere") as remote:
        deadline = time.monotonic() + 20
        while (
            not (remote.jobs_dir / str(job["id"]) / "stdout").exists()
            or b"far" not in (remote.jobs_dir / str(job["id"]) / "stdout").read_bytes()
        ):
            assert time.monotonic() < deadline, "the job never wrote its line"
            time.sleep(0.05)
        # This process's host is not "elsewhere": the CLI asks that worker through the database.
        logs = runner.invoke(cli, ["jobs", "logs", str(job["id"])])
        assert logs.exit_code == 0, logs.output
        assert logs.stdout == "far-away\n"
        (remote.jobs_dir / str(job["id"]) / "go").touch()
