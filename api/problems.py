"""RFC 9457 problem details: every error of the API, from a bad id to a store outage, as problem+json.

Problems use type `about:blank`, so `title` is the HTTP status phrase and `detail` says what happened and
what to do. Extra members (`checks`, `errors`) are RFC 9457 extensions.
"""

from __future__ import annotations

import logging
from http import HTTPStatus
from typing import Any

import orjson
from fastapi import FastAPI, Request
from fastapi.encoders import jsonable_encoder
from fastapi.exceptions import RequestValidationError
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import TimeoutError as RedisTimeoutError
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.responses import Response

from api.models import Problem
from drukte.metrics import ApiMetrics

PROBLEM_JSON = "application/problem+json"
STORE_RETRY_AFTER_S = 5
STORE_ERRORS = (RedisConnectionError, RedisTimeoutError)  # answered 503: the store is down or does not answer
log = logging.getLogger(__name__)


class ProblemError(Exception):
    """Raised by a route to answer with a problem; `extra` becomes extension members."""

    def __init__(self, status: int, detail: str, headers: dict[str, str] | None = None, **extra: Any) -> None:
        super().__init__(detail)
        self.status = int(status)
        self.detail = detail
        self.headers = headers or {}
        self.extra = extra


def problem_response(status: int, detail: str | None, instance: str | None, headers: dict[str, str] | None = None,
                     **extra: Any) -> Response:
    """A problem answer; `instance` None leaves the member out (e.g. a path too long to echo)."""
    body: dict[str, Any] = {"type": "about:blank", "title": HTTPStatus(status).phrase, "status": status,
                            "detail": detail, **({"instance": instance} if instance is not None else {}), **extra}
    all_headers = {"Cache-Control": "no-cache", **(headers or {})}
    return Response(orjson.dumps(body), status_code=status, media_type=PROBLEM_JSON, headers=all_headers)


def problem_doc(*statuses: int) -> dict[int | str, dict[str, Any]]:
    """OpenAPI `responses=` entries documenting problem answers for these statuses."""
    schema = {"schema": {"$ref": "#/components/schemas/Problem"}}
    out: dict[int | str, dict[str, Any]] = {}
    for status in statuses:
        out[status] = {"model": Problem, "description": HTTPStatus(status).phrase,
                       "content": {PROBLEM_JSON: schema}}
    return out


def _problems_only(schema: dict[str, Any]) -> dict[str, Any]:
    """Document error answers as the problem+json they are (FastAPI adds application/json and its own 422)."""
    problem = {"schema": {"$ref": "#/components/schemas/Problem"}}
    for operations in schema.get("paths", {}).values():
        for operation in operations.values():
            for status, answer in operation.get("responses", {}).items():
                content = answer.get("content", {})
                if status == "422":
                    answer["description"] = "Validation Error"
                    answer["content"] = {PROBLEM_JSON: problem}
                elif PROBLEM_JSON in content:
                    content.pop("application/json", None)
    components = schema.get("components", {}).get("schemas", {})
    for unused in ("HTTPValidationError", "ValidationError"):
        components.pop(unused, None)
    return schema


def document(app: FastAPI) -> None:
    """Make `app.openapi()` describe errors as problem details."""
    plain = app.openapi

    def openapi() -> dict[str, Any]:
        if app.openapi_schema is None:
            app.openapi_schema = _problems_only(plain())
        return app.openapi_schema

    app.openapi = openapi  # type: ignore[method-assign]  # FastAPI's documented way to customise OpenAPI


def store_unreachable(request: Request, exc: Exception, metrics: ApiMetrics) -> Response:
    """The answer to a store connection or timeout error (the app's handler, and api/fastpath.py's)."""
    metrics.redis_errors.inc()
    log.warning("store unreachable on %s: %s", request.url.path, exc)
    return problem_response(HTTPStatus.SERVICE_UNAVAILABLE,
                            "the live data store is unreachable; try again in a few seconds",
                            request.url.path, {"Retry-After": str(STORE_RETRY_AFTER_S)})


def install(app: FastAPI, metrics: ApiMetrics) -> None:
    """Register the handlers that turn every error into a problem."""

    async def on_problem(request: Request, exc: Exception) -> Response:
        assert isinstance(exc, ProblemError)
        return problem_response(exc.status, exc.detail, request.url.path, exc.headers, **exc.extra)

    async def on_http(request: Request, exc: Exception) -> Response:
        assert isinstance(exc, StarletteHTTPException)
        detail: str | None = exc.detail if exc.detail != HTTPStatus(exc.status_code).phrase else None
        if exc.status_code == HTTPStatus.NOT_FOUND and detail is None:
            detail = "nothing at this path; GET /v1/cities lists cities and zones, /docs describes the API"
        elif exc.status_code == HTTPStatus.METHOD_NOT_ALLOWED and detail is None:
            detail = f"{request.method} is not allowed here; this API only reads (GET)"
        return problem_response(exc.status_code, detail, request.url.path, dict(exc.headers or {}))

    async def on_validation(request: Request, exc: Exception) -> Response:
        assert isinstance(exc, RequestValidationError)
        errors = jsonable_encoder(exc.errors(), exclude={"input", "url"})
        return problem_response(HTTPStatus.UNPROCESSABLE_ENTITY, "the request is not valid; see errors",
                                request.url.path, errors=errors)

    async def on_store(request: Request, exc: Exception) -> Response:
        return store_unreachable(request, exc, metrics)

    async def on_unexpected(request: Request, exc: Exception) -> Response:
        # Starlette's ServerErrorMiddleware calls this, then re-raises so the server logs the traceback.
        return problem_response(HTTPStatus.INTERNAL_SERVER_ERROR,
                                "an unexpected error occurred; it has been logged", request.url.path)

    app.add_exception_handler(ProblemError, on_problem)
    app.add_exception_handler(StarletteHTTPException, on_http)
    app.add_exception_handler(RequestValidationError, on_validation)
    for error in STORE_ERRORS:
        app.add_exception_handler(error, on_store)
    app.add_exception_handler(Exception, on_unexpected)
    document(app)
