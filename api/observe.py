"""ASGI middleware: request latency per route template into ApiMetrics, and default response headers.

Every answer gets `Cache-Control: no-cache` unless its route set one (live data must be revalidated), and
`X-Content-Type-Options: nosniff` (problem details echo the request path; a browser must never sniff it as HTML).
"""

from __future__ import annotations

import time

from prometheus_client import Histogram
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from drukte.metrics import ApiMetrics

_METHODS = frozenset({"GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"})
UNMATCHED = "unmatched"  # label for requests no route matched, so raw paths never become label values
_DEFAULT_HEADERS = ((b"cache-control", b"no-cache"), (b"x-content-type-options", b"nosniff"))


class Observe:
    """Times every HTTP request; labels are the route template, method and status (all bounded)."""

    def __init__(self, app: ASGIApp, metrics: ApiMetrics) -> None:
        self.app = app
        self.metrics = metrics
        self._children: dict[tuple[str, str, int], Histogram] = {}  # labels() takes a lock and checks every call

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started = time.perf_counter()
        status = 500  # if the app raises before answering, ServerErrorMiddleware answers 500

        async def send_with_headers(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
                # as starlette's MutableHeaders(scope=message).setdefault would, without building it (hot path)
                headers = message["headers"] = list(message["headers"])
                names = {name for name, _ in headers}
                headers.extend(h for h in _DEFAULT_HEADERS if h[0] not in names)
            await send(message)

        try:
            await self.app(scope, receive, send_with_headers)
        finally:
            route = getattr(scope.get("route"), "path", None) or UNMATCHED
            method = scope["method"] if scope["method"] in _METHODS else "other"
            key = (route, method, status)
            child = self._children.get(key)
            if child is None:  # labels are bounded (templates, methods, statuses), so is this dict
                child = self._children[key] = self.metrics.http_seconds.labels(route, method, str(status))
            child.observe(time.perf_counter() - started)
