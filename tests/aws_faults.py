"""AWS under faults, on 127.0.0.1 only: a server standing in for one AWS endpoint, and a boto3 session that sends
chosen (service, region) pairs to it while everything else goes to moto.

`FaultServer.mode` picks what every request gets (and can change between two syncs):
- "html": an nginx-style HTML error page with `status` (what a proxy or a captive portal sends); botocore raises
  `ClientError` for a JSON/query service's 4xx/5xx and `ResponseParserError` (not a `BotoCoreError`) where it
  tries to parse the HTML as EC2 XML;
- "hang": accepts the connection, reads the request and never answers (a black-holed endpoint);
- "pricing": a Price List API answering `GetProducts` (JSON 1.1 protocol) with one item per instance type, built
  from the real m5.large item of tests/data/pricelist (`prices[(region, type)]`, else `default_usd`); a storage
  query gets no item;
- "throttle": the Price List API's `ThrottlingException` (HTTP 400, JSON), as botocore shapes it from
  `__type` (botocore/parsers.py, BaseJSONParser._do_error_parse).
"""

from __future__ import annotations

import copy
import http.server
import json
import threading
from pathlib import Path
from typing import Any

M5_ITEM = json.loads((Path(__file__).parent / "data" / "pricelist"
                      / "ec2-instance-selector_GetProducts_m5_large.json").read_text())
HTML_PAGE = (b"<html>\r\n<head><title>500 Internal Server Error</title></head>\r\n<body>\r\n"
             b"<center><h1>500 Internal Server Error</h1></center>\r\n<hr><center>nginx</center>\r\n"
             b"</body>\r\n</html>\r\n")


def price_item(region: str, instance_type: str, usd: str) -> str:
    """The real m5.large item with another type, region and price (vcpu/memory left to the bundled specs)."""
    item = copy.deepcopy(M5_ITEM)
    attrs = item["product"]["attributes"]
    attrs.update(instanceType=instance_type, regionCode=region)
    attrs.pop("vcpu"), attrs.pop("memory")
    for offer in item["terms"]["OnDemand"].values():
        for dim in offer["priceDimensions"].values():
            dim["pricePerUnit"]["USD"] = usd
    return json.dumps(item)


class _Handler(http.server.BaseHTTPRequestHandler):
    server: FaultServer
    protocol_version = "HTTP/1.1"

    def log_message(self, *_: Any) -> None:
        pass

    def _send(self, status: int, body: bytes, content_type: str) -> None:
        self.send_response(status)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def do_POST(self) -> None:  # noqa: N802 - http.server's name
        server = self.server
        body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
        with server.lock:
            server.requests += 1
        if server.mode == "hang":
            server.release.wait(120)
            self.close_connection = True
            return
        if server.mode == "html":
            self._send(server.status, HTML_PAGE, "text/html")
        elif server.mode == "throttle":
            self._send(400, json.dumps({"__type": "ThrottlingException", "message": "Rate exceeded"}).encode(),
                       "application/x-amz-json-1.1")
        elif server.mode == "pricing":
            filters = {f["Field"]: f["Value"] for f in json.loads(body or b"{}").get("Filters", [])}
            items = []
            if "instanceType" in filters:
                key = (filters["regionCode"], filters["instanceType"])
                items.append(price_item(*key, server.prices.get(key, server.default_usd)))
            self._send(200, json.dumps({"FormatVersion": "aws_v1", "PriceList": items}).encode(),
                       "application/x-amz-json-1.1")
        else:
            raise AssertionError(f"unknown mode {server.mode!r}")


class FaultServer(http.server.ThreadingHTTPServer):
    daemon_threads = True

    def __init__(self, mode: str, status: int = 500) -> None:
        super().__init__(("127.0.0.1", 0), _Handler)
        self.mode, self.status = mode, status
        self.prices: dict[tuple[str, str], str] = {}
        self.default_usd = "0.5"
        self.requests = 0
        self.lock = threading.Lock()
        self.release = threading.Event()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.server_address[1]}"

    def __enter__(self) -> FaultServer:
        threading.Thread(target=self.serve_forever, daemon=True).start()
        return self

    def __exit__(self, *_: Any) -> None:
        self.release.set()
        self.shutdown()
        self.server_close()


class RoutedSession:
    """A boto3 session whose clients for `routes[(service, region)]` go to that URL (the rest: moto)."""

    def __init__(self, session: Any, routes: dict[tuple[str, str], str]) -> None:
        self.session, self.routes = session, routes

    def client(self, service: str, region_name: str | None = None, **kwargs: Any) -> Any:
        url = self.routes.get((service, region_name or self.session.region_name))
        if url:
            kwargs["endpoint_url"] = url
        return self.session.client(service, region_name=region_name, **kwargs)
