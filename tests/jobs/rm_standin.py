"""A stand-in YARN ResourceManager web service (no YARN can run here), for the YARN manager's REST path.

It answers ``GET /ws/v1/cluster/apps/{appid}`` with the app object ResourceManagerRest.md documents
(yarn_recorded.rm_app) and ``PUT /ws/v1/cluster/apps/{appid}/state`` ``{"state": "KILLED"}`` as the Cluster
Application State API does: 202 while the kill is under way, 200 for an application already ended. An id it does
not know is a 404 with the RM's ``RemoteException`` body. States advance one reading at a time.
"""

from __future__ import annotations

import json
from http.server import BaseHTTPRequestHandler

import yarn_recorded as recorded
from standin_http import JsonStandIn, Request

PREFIX = "/ws/v1/cluster/apps/"
FINAL = ("FINISHED", "FAILED", "KILLED")


class ResourceManagerStandIn(JsonStandIn):
    """The stand-in RM: one application (yarn_recorded.APP_ID) whose readings are ``states``, each
    ``[state, finalStatus, diagnostics, logAggregationStatus]``."""

    thread_name = "rm-standin"

    def __init__(self, states: list[list[str]]) -> None:
        super().__init__()
        self.states = states

    def answer(self, handler: BaseHTTPRequestHandler, request: Request) -> None:
        """Answer one request."""
        app_id = request.path.removeprefix(PREFIX).removesuffix("/state")
        if app_id != recorded.APP_ID:
            body = json.loads(json.dumps(recorded.RM_NOT_FOUND).replace("{app_id}", app_id))
            return self.send(handler, 404, body)
        with self.lock:
            state, final, diagnostics, aggregation = self.states[0]
            if request.method == "PUT":
                if state in FINAL:
                    return self.send(handler, 200, {"state": state})
                self.states = [["KILLED", "KILLED", "Application killed by user.", aggregation]]
                return self.send(handler, 202, {"state": state})
            if len(self.states) > 1:
                self.states.pop(0)
        app = recorded.rm_app(state=state, final=final, diagnostics=diagnostics, aggregation=aggregation)
        self.send(handler, 200, app)


class StandbyResourceManagerStandIn(JsonStandIn):
    """A standby RM of an HA pair: every web service call is redirected to the active one (307, as Hadoop's
    RMWebAppFilter answers on a standby)."""

    thread_name = "rm-standby-standin"

    def __init__(self, active: str) -> None:
        super().__init__()
        self.active = active

    def answer(self, handler: BaseHTTPRequestHandler, request: Request) -> None:
        """Redirect to the active RM."""
        target = f"{self.active}{request.path}"
        data = f"This is standby RM. The redirect url is: {target}".encode()
        handler.send_response(307)
        handler.send_header("Location", target)
        handler.send_header("Content-Type", "text/plain")
        handler.send_header("Content-Length", str(len(data)))
        handler.end_headers()
        handler.wfile.write(data)
