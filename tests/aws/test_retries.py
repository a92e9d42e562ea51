"""A server error that comes as an HTML page is retried like any other (``retry_html_errors``).

Against a real HTTP endpoint in this process that answers the first call with a werkzeug-style
error page (``<!doctype html>``, as the moto server sent once when it failed mid-request) and the
next with a real EC2 answer: the client call succeeds, after exactly one retry.
"""

from __future__ import annotations

import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

PAGE = b"<!doctype html>\n<html lang=en>\n<title>500 Internal Server Error</title>\n<h1>Internal Server Error</h1>\n"
REGIONS = (
    b'<DescribeRegionsResponse xmlns="http://ec2.amazonaws.com/doc/2016-11-15/">'
    b"<requestId>r-1</requestId><regionInfo><item><regionName>us-east-1</regionName>"
    b"<regionEndpoint>ec2.us-east-1.amazonaws.com</regionEndpoint></item></regionInfo>"
    b"</DescribeRegionsResponse>"
)


class Flaky(BaseHTTPRequestHandler):
    """Answers the first ``pages`` requests with the error page, then with ``REGIONS``."""

    pages = 1
    seen: list[int] = []

    def do_POST(self) -> None:
        self.rfile.read(int(self.headers.get("Content-Length", 0)))
        Flaky.seen.append(1)
        failing = len(Flaky.seen) <= Flaky.pages
        body = PAGE if failing else REGIONS
        self.send_response(500 if failing else 200)
        self.send_header("Content-Type", "text/html; charset=utf-8" if failing else "text/xml")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, format: str, *args: object) -> None:
        """Quiet."""


@pytest.fixture
def endpoint(monkeypatch: pytest.MonkeyPatch) -> Iterator[str]:
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "testing")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "testing")
    Flaky.seen = []
    server = ThreadingHTTPServer(("127.0.0.1", 0), Flaky)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}"
    server.shutdown()
    server.server_close()


def ec2(endpoint: str, max_attempts: int = 3) -> object:
    from worker.providers.aws.calls import CallLog
    from worker.providers.aws.session import base_client
    from worker.providers.aws.settings import AwsSettings

    settings = AwsSettings(endpoint_url=endpoint, regions=["us-east-1"], max_attempts=max_attempts)
    return base_client(settings, "ec2", CallLog(None))


def test_an_html_error_page_is_retried_and_the_call_succeeds(endpoint: str) -> None:
    regions = ec2(endpoint).describe_regions()["Regions"]  # type: ignore[attr-defined]
    assert [r["RegionName"] for r in regions] == ["us-east-1"]
    assert len(Flaky.seen) == 2


def test_html_error_pages_past_the_attempt_limit_end_as_a_server_error(endpoint: str) -> None:
    from botocore.exceptions import ClientError

    Flaky.pages = 10
    try:
        with pytest.raises(ClientError) as raised:
            ec2(endpoint, max_attempts=2).describe_regions()  # type: ignore[attr-defined]
    finally:
        Flaky.pages = 1
    assert raised.value.response["Error"]["Code"] == "500"
    assert len(Flaky.seen) == 2
