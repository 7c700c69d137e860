"""The request-size guard: an ASGI middleware refusing bodies over the configured size with 413."""

from __future__ import annotations

from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from headwater.api.responses import refusal

__all__ = ["BodySizeLimit"]


class BodySizeLimit:
    """Refuse request bodies over ``max_bytes`` with 413, whether or not Content-Length is sent."""

    def __init__(self, app: ASGIApp, max_bytes: int) -> None:
        self.app = app
        self.max_bytes = max_bytes

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        for key, value in scope.get("headers", ()):
            if key == b"content-length":
                try:
                    declared = int(value)
                except ValueError:
                    declared = -1
                if declared < 0 or declared > self.max_bytes:
                    await refusal(413, "payload_too_large", self._message)(scope, receive, send)
                    return
        received = 0

        async def limited_receive() -> Message:
            # FastAPI re-raises HTTPException from body reading untouched, so this becomes a 413 answer.
            nonlocal received
            message = await receive()
            if message["type"] == "http.request":
                received += len(message.get("body", b""))
                if received > self.max_bytes:
                    raise StarletteHTTPException(413, detail=self._message)
            return message

        await self.app(scope, limited_receive, send)

    @property
    def _message(self) -> str:
        return f"the request body is larger than {self.max_bytes} bytes (HEADWATER_MAX_BODY_BYTES)"
