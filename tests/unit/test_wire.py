"""gunicorn's response path as zotpy tunes it: one send for small answers, a cached Date header."""

from __future__ import annotations

import email.utils
from types import SimpleNamespace
from typing import Any

import pytest
from gunicorn import util
from gunicorn.config import Config
from gunicorn.http.wsgi import Response

from zotpy import wire

wire.install()


class RecordingSocket:
    def __init__(self) -> None:
        self.sends: list[bytes] = []

    def sendall(self, data: Any) -> None:
        self.sends.append(bytes(data))


def response(method: str = "GET", status: str = "200 OK",
             headers: list[tuple[str, str]] | None = None) -> tuple[Response, RecordingSocket]:
    req = SimpleNamespace(version=(1, 1), method=method, headers=[], should_close=lambda: False, path="/")
    sock = RecordingSocket()
    resp = Response(req, sock, Config())
    resp.start_response(status, headers or [])
    return resp, sock


def test_small_whole_body_leaves_with_the_headers() -> None:
    body = b'{"schemaVersion": 2}'
    resp, sock = response(headers=[("Content-Length", str(len(body))), ("Content-Type", "application/json")])
    resp.write(body)
    [sent] = sock.sends
    head, _, rest = sent.partition(b"\r\n\r\n")
    assert head.startswith(b"HTTP/1.1 200 OK\r\n") and b"Content-Length: 20" in head
    assert rest == body
    assert resp.headers_sent and resp.sent == len(body)


def test_body_in_pieces_keeps_separate_sends() -> None:
    resp, sock = response(headers=[("Content-Length", "10")])
    resp.write(b"01234")
    resp.write(b"56789")
    assert [s.endswith(b"\r\n\r\n") for s in sock.sends] == [True, False, False]
    assert b"".join(sock.sends).endswith(b"0123456789")


def test_large_body_is_not_copied_into_the_header_send() -> None:
    body = b"x" * (wire.COALESCE_MAX + 1)
    resp, sock = response(headers=[("Content-Length", str(len(body)))])
    resp.write(body)
    assert len(sock.sends) == 2 and sock.sends[1] == body


def test_head_answers_send_headers_only() -> None:
    resp, sock = response(method="HEAD", headers=[("Content-Length", "5")])
    resp.write(b"hello")
    [sent] = sock.sends
    assert sent.endswith(b"\r\n\r\n") and b"hello" not in sent


def test_chunked_body_keeps_its_framing() -> None:
    resp, sock = response(headers=[("Transfer-Encoding", "chunked")])
    resp.write(b"hello")
    assert b"".join(sock.sends).endswith(b"\r\n\r\n5\r\nhello\r\n")


@pytest.mark.parametrize("timestamp", [None, 0.0, 1767607200.5])
def test_date_header_is_rfc_7231(timestamp: float | None) -> None:
    text = util.http_date(timestamp)
    parsed = email.utils.parsedate_to_datetime(text)
    assert text.endswith(" GMT")
    if timestamp is not None:
        assert parsed.timestamp() == int(timestamp)
    assert getattr(util.http_date, "zotpy_cached", False)
