"""An Airflow producer's service account: an admin makes it, grants it lineage.write and a token limited to its
namespace; the real openlineage-python client sends events with that token as its api_key; an event for another
namespace is refused naming it; once the admin revokes the token the next event is 401."""

from __future__ import annotations

import datetime as dt
import uuid
from collections.abc import Callable

import httpx
import pytest
from fastapi import FastAPI
from live_http import serve_in_thread
from openlineage.client import OpenLineageClient
from openlineage.client.event_v2 import Job, Run, RunEvent, RunState
from openlineage.client.transport.http import ApiKeyTokenProvider, HttpConfig, HttpTransport

from headwater.auth.actions import Role

pytestmark = [pytest.mark.anyio, pytest.mark.integration]

Mint = Callable[..., str]
PRODUCER = "https://github.com/apache/airflow/tree/providers-openlineage/1.0.0"


def bearer(secret: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {secret}"}


def event(namespace: str, name: str) -> RunEvent:
    return RunEvent(
        eventType=RunState.COMPLETE,
        eventTime=dt.datetime.now(dt.UTC).isoformat(),
        run=Run(runId=str(uuid.uuid4())),
        job=Job(namespace=namespace, name=name),
        producer=PRODUCER,
    )


def client_of(url: str, secret: str) -> OpenLineageClient:
    config = HttpConfig(url=url, auth=ApiKeyTokenProvider({"apiKey": secret}), retry={"total": 0})
    return OpenLineageClient(transport=HttpTransport(config))


async def test_an_airflow_producer_writes_its_namespace_only_until_its_token_is_revoked(
    auth_app: FastAPI, auth_client: httpx.AsyncClient, mint: Mint
) -> None:
    admin = bearer(mint("root", roles=(Role.ADMIN,)))
    assert (
        await auth_client.post("/api/v1/service-accounts", json={"name": "airflow"}, headers=admin)
    ).status_code == 201
    granted = await auth_client.post(
        "/api/v1/role-bindings",
        json={"subject_kind": "service_account", "subject": "airflow", "role": "editor"},
        headers=admin,
    )
    assert granted.status_code == 201
    made = await auth_client.post(
        "/api/v1/tokens",
        json={"label": "airflow-prod", "service_account": "airflow", "namespaces": ["airflow-prod"]},
        headers=admin,
    )
    assert made.status_code == 201, made.text
    secret, token_id = made.json()["secret"], made.json()["id"]

    with serve_in_thread(auth_app) as url:
        producer = client_of(url, secret)
        producer.emit(event("airflow-prod", "daily_orders.load"))
        with pytest.raises(Exception) as refused:
            producer.emit(event("spark-adhoc", "scratch"))
        assert "403" in str(refused.value)
        answer = httpx.post(
            f"{url}/api/v1/lineage",
            content=_json(event("spark-adhoc", "x")),
            headers={**bearer(secret), "Content-Type": "application/json"},
        )
        assert answer.status_code == 403 and "'spark-adhoc'" in answer.json()["error"]["message"]

        assert (await auth_client.delete(f"/api/v1/tokens/{token_id}", headers=admin)).status_code == 200
        # The served app is the same process: the revocation holds at once.
        with pytest.raises(Exception) as unauthenticated:
            producer.emit(event("airflow-prod", "daily_orders.load"))
        assert "401" in str(unauthenticated.value)

    jobs = (await auth_client.get("/api/v1/audit?actor=airflow", headers=admin)).json()["items"]
    assert [e["outcome"] for e in jobs] == ["refused", "refused", "ok"]
    assert jobs[-1]["target"] == "/api/v1/lineage" and jobs[-1]["actor_kind"] == "service"
    assert jobs[0]["summary"]["status"] == 403
    # The revoked token names nobody any more: its refusal is the anonymous one of a refused credential.
    last = (await auth_client.get("/api/v1/audit?limit=1", headers=admin)).json()["items"][0]
    assert (last["actor"], last["outcome"], last["summary"]) == (
        "anonymous",
        "refused",
        {"status": 401, "credential": "refused"},
    )


def _json(ol_event: RunEvent) -> str:
    from openlineage.client.serde import Serde

    return str(Serde.to_json(ol_event))
