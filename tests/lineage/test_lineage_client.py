"""The official openlineage-python client, unchanged, sends events to a real Headwater server over HTTP.

The server is started by the test as a subprocess (``headwater serve`` on 127.0.0.1, a free port) on the
suite's database, and stopped by its PID. Runs on SQLite and PostgreSQL.
"""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from openlineage.client import OpenLineageClient
from openlineage.client.event_v2 import InputDataset, Job, OutputDataset, Run, RunEvent, RunState
from openlineage.client.facet_v2 import column_lineage_dataset, parent_run, schema_dataset, sql_job
from openlineage.client.transport.http import HttpCompression, HttpConfig, HttpTransport
from sqlalchemy.orm import Session

pytestmark = pytest.mark.integration

HIVE = "hive://metastore:9083"
PRODUCER = "https://github.com/OpenLineage/OpenLineage/tree/1.30.0/client/python"


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@pytest.fixture(scope="module")
def live_server(db_url: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """A real Headwater server on the suite's database, for this module; its base URL."""
    tmp_path: Path = tmp_path_factory.mktemp("server")
    port = _free_port()
    env = {
        **os.environ,
        "HEADWATER_DATABASE_URL": db_url,
        "HEADWATER_DATA_DIR": str(tmp_path),
        "HEADWATER_SYNC_SCHEDULER_ENABLED": "false",
        "HEADWATER_LOG_LEVEL": "warning",
    }
    process = subprocess.Popen(
        [
            sys.executable,
            "-c",
            "from headwater.cli import app; app()",
            "serve",
            "--host",
            "127.0.0.1",
            "--port",
            str(port),
        ],
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
    )
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 30
        while True:
            if process.poll() is not None:
                raise RuntimeError(
                    f"headwater serve exited: {process.stderr.read().decode() if process.stderr else ''}"
                )
            try:
                if httpx.get(f"{url}/healthz", timeout=1).status_code == 200:
                    break
            except httpx.TransportError:
                pass
            if time.monotonic() > deadline:
                raise RuntimeError("headwater serve did not answer /healthz within 30 s")
            time.sleep(0.1)
        yield url
    finally:
        os.kill(process.pid, signal.SIGTERM)
        try:
            process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            os.kill(process.pid, signal.SIGKILL)
            process.wait()


@pytest.fixture
def server(live_server: str, session: Session) -> str:
    """The live server; the tables are emptied after each test (by ``session``)."""
    return live_server


def _client(url: str, *, gzip: bool = False) -> OpenLineageClient:
    config = HttpConfig(url=url, timeout=10, compression=HttpCompression.GZIP if gzip else None)
    return OpenLineageClient(transport=HttpTransport(config))


def _column_lineage(
    mapping: dict[str, str], source: str, subtype: str
) -> column_lineage_dataset.ColumnLineageDatasetFacet:
    return column_lineage_dataset.ColumnLineageDatasetFacet(
        fields={
            out: column_lineage_dataset.Fields(
                inputFields=[
                    column_lineage_dataset.InputField(
                        namespace=HIVE,
                        name=source,
                        field=src,
                        transformations=[column_lineage_dataset.Transformation(type="DIRECT", subtype=subtype)],
                    )
                ]
            )
            for out, src in mapping.items()
        },
        dataset=[
            column_lineage_dataset.InputField(
                namespace=HIVE,
                name=source,
                field="event_type",
                transformations=[column_lineage_dataset.Transformation(type="INDIRECT", subtype="FILTER")],
            )
        ],
    )


def _schema(*names: str) -> schema_dataset.SchemaDatasetFacet:
    return schema_dataset.SchemaDatasetFacet(
        fields=[schema_dataset.SchemaDatasetFacetFields(name=n, type="string") for n in names]
    )


def test_the_real_client_sends_a_spark_run_with_parent_and_column_lineage(server: str) -> None:
    app_run = str(uuid.uuid4())
    child_run = str(uuid.uuid4())
    parent = parent_run.ParentRunFacet(
        run=parent_run.Run(runId=app_run), job=parent_run.Job(namespace="spark", name="sessions_app")
    )
    inputs = [
        InputDataset(namespace=HIVE, name="raw.playback", facets={"schema": _schema("member_id", "ts", "event_type")})
    ]
    outputs = [
        OutputDataset(
            namespace=HIVE,
            name="curated.sessions",
            facets={
                "schema": _schema("member_id", "session_start"),
                "columnLineage": _column_lineage(
                    {"member_id": "member_id", "session_start": "ts"}, "raw.playback", "IDENTITY"
                ),
            },
        )
    ]
    job = Job(
        namespace="spark",
        name="sessions_app.insert_sessions",
        facets={
            "sql": sql_job.SQLJobFacet(query="INSERT INTO curated.sessions SELECT member_id, ts FROM raw.playback")
        },
    )
    plain, gzipped = _client(server), _client(server, gzip=True)
    for client, state, minute in ((plain, RunState.START, 0), (gzipped, RunState.COMPLETE, 3)):
        client.emit(
            RunEvent(
                eventType=state,
                eventTime=f"2026-03-01T12:0{minute}:00.000Z",
                run=Run(runId=child_run, facets={"parent": parent}),
                job=job,
                producer=PRODUCER,
                inputs=inputs,
                outputs=outputs,
            )
        )
    plain.emit(
        RunEvent(
            eventType=RunState.COMPLETE,
            eventTime="2026-03-01T12:05:00.000Z",
            run=Run(runId=app_run),
            job=Job(namespace="spark", name="sessions_app"),
            producer=PRODUCER,
        )
    )

    with httpx.Client(base_url=server, timeout=10) as http:
        child = http.get(f"/api/v1/lineage/runs/{child_run}").json()
        assert child["state"] == "COMPLETE" and child["parent_run_id"] == app_run
        assert http.get(f"/api/v1/lineage/runs/{app_run}").json()["children"] == [child_run]
        impact = http.get(
            "/api/v1/lineage/impact", params={"namespace": HIVE, "name": "raw.playback", "field": "ts"}
        ).json()
        assert [(c["name"], c["field"]) for c in impact["columns"]] == [("curated.sessions", "session_start")]
        assert impact["jobs"][0]["name"] == "sessions_app.insert_sessions"
        # The client's own serialisation was stored raw in the event log.
        events = http.get("/api/v1/lineage/events").json()["items"]
        assert len(events) == 3
        assert events[0]["event"]["schemaURL"].startswith("https://openlineage.io/spec/")
        assert events[0]["event"]["run"]["facets"]["parent"]["run"]["runId"] == app_run


def test_the_real_client_sees_an_invalid_event_refused(server: str) -> None:
    client = _client(server)
    # Dataset without a name is impossible to build with the client's types; send a broken facet instead.
    broken = column_lineage_dataset.ColumnLineageDatasetFacet(
        fields={"x": column_lineage_dataset.Fields(inputFields=[])}
    )
    event = RunEvent(
        eventType=RunState.COMPLETE,
        eventTime="2026-03-01T12:00:00.000Z",
        run=Run(runId=str(uuid.uuid4())),
        job=Job(namespace="spark", name="ok"),
        producer=PRODUCER,
        outputs=[OutputDataset(namespace=HIVE, name="t", facets={"columnLineage": broken})],
    )
    client.emit(event)  # a valid, empty column lineage is accepted
    with httpx.Client(base_url=server, timeout=10) as http:
        response = http.post(
            "/api/v1/lineage",
            json={
                "eventTime": "2026-03-01T12:00:00Z",
                "producer": PRODUCER,
                "run": {"runId": "x"},
                "job": {"namespace": "spark", "name": "bad"},
            },
        )
        assert response.status_code == 422
        assert response.json()["error"]["detail"]["field"] == "event.run.runId"
        assert http.get("/api/v1/datasets/by-name", params={"namespace": HIVE, "name": "t"}).status_code == 200
