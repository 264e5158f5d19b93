"""uvicorn's httptools protocol with a bound on the request head, answered as a problem detail.

llhttp (under httptools) takes a request head of any size: a 50 MB header line is buffered whole and handed to
the app. h11 refuses a head over `h11_max_incomplete_event_size` with a plain 400. Here a head still incomplete
after more than `max_head_bytes` gets a 414 (its URL alone is longer than `max_url_bytes`) or a 431 problem
detail and the connection is closed. The cap sits above the API's own limits (api/limits.py): a head that
arrives whole is answered by the `Limits` middleware, with metrics, as before; the cap only stops one that
keeps growing.
"""

from __future__ import annotations

import asyncio
from http import HTTPStatus
from typing import Any

import orjson
from uvicorn.config import Config
from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol
from uvicorn.server import ServerState

from api.problems import PROBLEM_JSON


class BoundedHttpToolsProtocol(HttpToolsProtocol):
    """Counts the bytes of the current request head (from the end of the previous request to the end of this
    one's headers); past `max_head_bytes` it answers 414/431 and closes. Set the limits with `bounded`."""

    max_head_bytes = 16 * 1024
    max_url_bytes = 2048
    max_header_bytes = 8192

    def __init__(self, config: Config, server_state: ServerState, app_state: dict[str, Any],
                 _loop: asyncio.AbstractEventLoop | None = None) -> None:
        super().__init__(config, server_state, app_state, _loop)
        self._head_bytes = 0
        self._in_head = True

    def data_received(self, data: bytes) -> None:
        # Counted before parsing: a chunk that completes this head (or the previous request) resets the count
        # in the callbacks below, so only the bytes of a head still incomplete after this chunk remain counted.
        self._head_bytes += len(data)
        super().data_received(data)
        if self._in_head and self._head_bytes > self.max_head_bytes and not self.transport.is_closing():
            self._refuse()

    def on_message_begin(self) -> None:
        super().on_message_begin()
        self._in_head = True

    def on_headers_complete(self) -> None:
        self._in_head = False
        self._head_bytes = 0
        super().on_headers_complete()

    def on_message_complete(self) -> None:
        self._in_head = True  # what follows is the next request's head
        self._head_bytes = 0
        super().on_message_complete()

    def _refuse(self) -> None:
        url: bytes = getattr(self, "url", b"")
        if len(url) > self.max_url_bytes:
            status = HTTPStatus.REQUEST_URI_TOO_LONG
            detail = f"the URL is over {len(url)} bytes; at most {self.max_url_bytes} are accepted"
        else:
            status = HTTPStatus.REQUEST_HEADER_FIELDS_TOO_LARGE
            detail = (f"the request head is over {self.max_head_bytes} bytes; at most {self.max_url_bytes} bytes "
                      f"of URL and {self.max_header_bytes} of headers are accepted")
        body = orjson.dumps({"type": "about:blank", "title": status.phrase, "status": int(status), "detail": detail})
        head = [f"HTTP/1.1 {int(status)} {status.phrase}\r\n".encode()]
        head += [name + b": " + value + b"\r\n" for name, value in self.server_state.default_headers]
        head += [b"content-type: " + PROBLEM_JSON.encode() + b"\r\n",
                 b"content-length: " + str(len(body)).encode() + b"\r\n",
                 b"cache-control: no-cache\r\nx-content-type-options: nosniff\r\nconnection: close\r\n\r\n"]
        self.transport.write(b"".join(head) + body)
        self.transport.close()


def bounded(max_head_bytes: int, max_url_bytes: int, max_header_bytes: int) -> type[BoundedHttpToolsProtocol]:
    """The protocol class for uvicorn's `http=`: heads over `max_head_bytes` refused; the other two for the
    message (the API's own limits)."""
    return type("BoundedHttpToolsProtocol", (BoundedHttpToolsProtocol,), {
        "max_head_bytes": max_head_bytes, "max_url_bytes": max_url_bytes, "max_header_bytes": max_header_bytes})
