"""ASGI middleware for request limits: URL, header and body size (414, 431, 413) and a rate limit per client (429).

Every refusal is a problem detail, answered before routing, so nothing oversized or over the limit reaches a
route or the store. The rate limit keys clients by their address as the server reports it (uvicorn honours
`X-Forwarded-For` only from the proxies in its `FORWARDED_ALLOW_IPS`), hashed with a per-process secret: no
IP address is kept, even in memory. `/metrics`, `/healthz` and `/readyz` are exempt, so probes and Prometheus
are never refused.
"""

from __future__ import annotations

import hashlib
import secrets
from collections.abc import Callable
from http import HTTPStatus
from typing import Any

from fastapi import FastAPI
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from api.problems import PROBLEM_JSON, problem_response
from api.ratelimit import RateLimiter, retry_after_s
from drukte.metrics import ApiMetrics

EXEMPT_PATHS = frozenset({"/metrics", "/healthz", "/readyz"})
_ECHO_MAX = 256  # a longer path is not echoed back as `instance`


_SIZE_STATUSES = (HTTPStatus.REQUEST_ENTITY_TOO_LARGE, HTTPStatus.REQUEST_URI_TOO_LONG,
                  HTTPStatus.REQUEST_HEADER_FIELDS_TOO_LARGE)


def document_limits(app: FastAPI) -> None:
    """Make `app.openapi()` list the limit answers on every operation: 413, 414, 431, and 429 unless exempt."""
    previous = app.openapi

    def openapi() -> dict[str, Any]:
        schema = previous()
        problem = {PROBLEM_JSON: {"schema": {"$ref": "#/components/schemas/Problem"}}}
        for path, operations in schema.get("paths", {}).items():
            statuses = [*_SIZE_STATUSES] + ([] if path in EXEMPT_PATHS else [HTTPStatus.TOO_MANY_REQUESTS])
            for operation in operations.values():
                responses = operation.setdefault("responses", {})
                for status in statuses:
                    answer: dict[str, Any] = {"description": status.phrase, "content": problem}
                    if status == HTTPStatus.TOO_MANY_REQUESTS:
                        answer["headers"] = {"Retry-After": {
                            "description": "seconds until the client may try again", "schema": {"type": "integer"}}}
                    responses.setdefault(str(int(status)), answer)
        return schema

    app.openapi = openapi  # type: ignore[method-assign]  # FastAPI's documented way to customise OpenAPI


class _BodyTooLarge(Exception):
    pass


class Limits:
    """Refuses oversized requests and clients over `per_min` requests a minute (`per_min` 0: no rate limit).

    `clock` gives epoch milliseconds (the API's injected clock).
    """

    def __init__(self, app: ASGIApp, *, metrics: ApiMetrics, clock: Callable[[], int], per_min: int,
                 max_url_bytes: int, max_header_bytes: int, max_body_bytes: int) -> None:
        self.app = app
        self.metrics = metrics
        self.clock = clock
        self.limiter = RateLimiter(per_min) if per_min > 0 else None
        self.max_url_bytes = max_url_bytes
        self.max_header_bytes = max_header_bytes
        self.max_body_bytes = max_body_bytes
        self._salt = secrets.token_bytes(16)

    def _client_key(self, scope: Scope) -> str:
        client = scope.get("client")
        host = str(client[0]) if client else "unknown"
        return hashlib.blake2b(host.encode(), key=self._salt, digest_size=16).hexdigest()

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        path: str = scope["path"]
        instance = path if len(path) <= _ECHO_MAX else None
        refusal = self._refuse(scope, path)
        if refusal is not None:
            status, detail, headers = refusal
            await problem_response(status, detail, instance, headers)(scope, receive, send)
            return
        await self._bounded_body(scope, receive, send, instance)

    def _refuse(self, scope: Scope, path: str) -> tuple[int, str, dict[str, str]] | None:
        if self.limiter is not None and path not in EXEMPT_PATHS:
            wait_s = self.limiter.take(self._client_key(scope), self.clock() / 1000)
            if wait_s > 0:
                self.metrics.rate_limited.inc()
                retry = retry_after_s(wait_s)
                return (HTTPStatus.TOO_MANY_REQUESTS,
                        f"more than {int(self.limiter.capacity)} requests a minute from your address; "
                        f"try again in {retry} s", {"Retry-After": str(retry)})
        query: bytes = scope.get("query_string", b"")
        url_bytes = len(scope.get("raw_path") or path.encode()) + (len(query) + 1 if query else 0)  # with "?"
        if url_bytes > self.max_url_bytes:
            return (HTTPStatus.REQUEST_URI_TOO_LONG,
                    f"the URL is {url_bytes} bytes; at most {self.max_url_bytes} are accepted", {})
        headers: list[tuple[bytes, bytes]] = scope.get("headers", [])
        header_bytes = sum(len(k) + len(v) + 4 for k, v in headers)  # "name: value\r\n"
        if header_bytes > self.max_header_bytes:
            return (HTTPStatus.REQUEST_HEADER_FIELDS_TOO_LARGE,
                    f"the request headers are {header_bytes} bytes; at most {self.max_header_bytes} are accepted",
                    {})
        for name, value in headers:
            if name == b"content-length":
                try:
                    length = int(value)
                except ValueError:
                    return HTTPStatus.BAD_REQUEST, "Content-Length is not a number", {}
                if length > self.max_body_bytes:
                    return self._too_large(length)
        return None

    def _too_large(self, length: int | None) -> tuple[int, str, dict[str, str]]:
        size = f"{length} bytes" if length is not None else f"over {self.max_body_bytes} bytes"
        return (HTTPStatus.REQUEST_ENTITY_TOO_LARGE,
                f"the request body is {size}; at most {self.max_body_bytes} are accepted", {"Connection": "close"})

    async def _bounded_body(self, scope: Scope, receive: Receive, send: Send, instance: str | None) -> None:
        """Run the app with a `receive` that stops a body (e.g. chunked, without Content-Length) at the limit."""
        received = 0
        started = False

        async def bounded_receive() -> Message:
            nonlocal received
            message = await receive()
            if message["type"] == "http.request":
                received += len(message.get("body", b""))
                if received > self.max_body_bytes:
                    raise _BodyTooLarge
            return message

        async def watched_send(message: Message) -> None:
            nonlocal started
            if message["type"] == "http.response.start":
                started = True
            await send(message)

        try:
            await self.app(scope, bounded_receive, watched_send)
        except _BodyTooLarge:
            if started:
                raise
            status, detail, headers = self._too_large(None)
            await problem_response(status, detail, instance, headers)(scope, receive, send)
