"""A Schema Registry stand-in: the Confluent REST endpoints the real SchemaRegistryClient uses, in memory.

No Confluent Schema Registry, Karapace or Apicurio can be installed here, so the tests run this small
server instead and talk to it only through ``confluent_kafka.schema_registry.SchemaRegistryClient``.
It implements what the Kafka connector and the tests need — subjects, their versions, schemas by id,
registration (ids shared across subjects, as the real registry does), subject deletion — with the
registry's error bodies (``error_code`` 40401 / 40402 / 40403) and optional HTTP basic auth. It does
not check compatibility.
"""

from __future__ import annotations

import base64
import json
import threading
from http.server import BaseHTTPRequestHandler
from typing import Any
from urllib.parse import parse_qs, unquote, urlsplit

from standin_server import StandInServer

CONTENT_TYPE = "application/vnd.schemaregistry.v1+json"


class SchemaRegistryStandIn(StandInServer):
    """The stand-in server, on 127.0.0.1 in a thread of the test process."""

    thread_name = "schema-registry-standin"

    def __init__(self, *, user: str | None = None, password: str | None = None) -> None:
        self.credentials = f"{user}:{password}" if user is not None else None
        self.lock = threading.Lock()
        self.schemas: dict[int, dict[str, Any]] = {}  # id -> {"schema", "schemaType", "references"}
        self.subjects: dict[str, list[int]] = {}  # subject -> schema id of each version (version = index + 1)
        self.requests: list[str] = []
        super().__init__()

    # ------------------------------------------------------------------------------ handling

    def handle(self, request: BaseHTTPRequestHandler, method: str) -> None:
        """Route one request."""
        url = urlsplit(request.path)
        parts = [unquote(p) for p in url.path.strip("/").split("/") if p]
        query = parse_qs(url.query)
        self.requests.append(f"{method} {url.path}")
        if self.credentials is not None:
            header = request.headers.get("Authorization", "")
            expected = "Basic " + base64.b64encode(self.credentials.encode()).decode()
            if header != expected:
                return self.reply(request, 401, {"error_code": 40101, "message": "Unauthorized"})
        body: Any = None
        if method == "POST":
            length = int(request.headers.get("Content-Length") or 0)
            body = json.loads(request.rfile.read(length) or b"{}")
        with self.lock:
            status, payload = self.route(method, parts, query, body)
        self.reply(request, status, payload)

    @staticmethod
    def reply(request: BaseHTTPRequestHandler, status: int, payload: Any) -> None:
        data = json.dumps(payload).encode()
        request.send_response(status)
        request.send_header("Content-Type", CONTENT_TYPE)
        request.send_header("Content-Length", str(len(data)))
        request.end_headers()
        request.wfile.write(data)

    def route(self, method: str, parts: list[str], query: dict[str, list[str]], body: Any) -> tuple[int, Any]:
        """(status, JSON body) for one request."""
        if parts == ["subjects"] and method == "GET":
            prefix = (query.get("subjectPrefix") or [""])[0]
            return 200, sorted(s for s in self.subjects if s.startswith(prefix))
        if len(parts) >= 2 and parts[0] == "subjects":
            subject = parts[1]
            if len(parts) == 3 and parts[2] == "versions" and method == "POST":
                return self.register(subject, body)
            if subject not in self.subjects:
                return 404, {"error_code": 40401, "message": f"Subject '{subject}' not found."}
            versions = self.subjects[subject]
            if len(parts) == 2 and method == "DELETE":
                del self.subjects[subject]
                return 200, list(range(1, len(versions) + 1))
            if len(parts) == 3 and parts[2] == "versions" and method == "GET":
                return 200, list(range(1, len(versions) + 1))
            if len(parts) == 4 and parts[2] == "versions" and method == "GET":
                return self.version(subject, parts[3])
        if len(parts) == 3 and parts[:2] == ["schemas", "ids"] and method == "GET":
            found = self.schemas.get(int(parts[2])) if parts[2].isdigit() else None
            if found is None:
                return 404, {"error_code": 40403, "message": f"Schema {parts[2]} not found"}
            return 200, self.public(found)
        return 404, {"error_code": 404, "message": f"the stand-in does not implement {method} /{'/'.join(parts)}"}

    @staticmethod
    def public(stored: dict[str, Any]) -> dict[str, Any]:
        out: dict[str, Any] = {"schema": stored["schema"]}
        if stored["schemaType"] != "AVRO":  # the real registry leaves schemaType out for Avro
            out["schemaType"] = stored["schemaType"]
        if stored["references"]:
            out["references"] = stored["references"]
        return out

    def register(self, subject: str, body: dict[str, Any]) -> tuple[int, Any]:
        if not isinstance(body, dict) or not isinstance(body.get("schema"), str):
            return 422, {"error_code": 42201, "message": "Either the input schema or one its references is invalid"}
        stored = {
            "schema": body["schema"],
            "schemaType": body.get("schemaType") or "AVRO",
            "references": body.get("references") or [],
        }
        schema_id = next((i for i, s in self.schemas.items() if s == stored), None)
        if schema_id is None:
            schema_id = len(self.schemas) + 1
            self.schemas[schema_id] = stored
        versions = self.subjects.setdefault(subject, [])
        if schema_id not in versions:  # registering the same schema again adds no version
            versions.append(schema_id)
        return 200, {"id": schema_id}

    def version(self, subject: str, which: str) -> tuple[int, Any]:
        versions = self.subjects[subject]
        number = len(versions) if which == "latest" else int(which) if which.isdigit() else 0
        if not 1 <= number <= len(versions):
            return 404, {"error_code": 40402, "message": f"Version {which} not found."}
        schema_id = versions[number - 1]
        return 200, {"subject": subject, "version": number, "id": schema_id, **self.public(self.schemas[schema_id])}
