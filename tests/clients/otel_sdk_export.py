"""The OpenTelemetry Python SDK's OTLP/HTTP metric exporter, signing every
request with X-KMS-* v1 headers (a requests auth hook: it runs per request,
so each export carries its own timestamp and signature), exporting once
through telegate. Used by tests/it/e2e_content.rs.

Prints one line per HTTP answer the exporter received
(`answer status=... rejected=... message=...`) and the export result
(`result=SUCCESS|FAILURE`); the SDK's own log goes to stderr.

    otel_sdk_export.py URL SECRET_FILE SESSION_ID METRIC_NAME...
"""

import hashlib
import hmac
import logging
import sys
import time
from urllib.parse import urlparse

import requests
from opentelemetry.exporter.otlp.proto.http.metric_exporter import OTLPMetricExporter
from opentelemetry.proto.collector.metrics.v1.metrics_service_pb2 import (
    ExportMetricsServiceResponse,
)
from sdk_metrics import counters


class KmsV1(requests.auth.AuthBase):
    """HMAC-SHA256 over `METHOD|PATH|TIMESTAMP|SESSION` (docs/protocol.md)."""

    def __init__(self, secret: bytes, session: str):
        self.secret = secret
        self.session = session

    def __call__(self, request):
        timestamp = str(int(time.time()))
        path = urlparse(request.url).path
        message = f"{request.method}|{path}|{timestamp}|{self.session}".encode()
        signature = hmac.new(self.secret, message, hashlib.sha256).hexdigest()
        request.headers["X-KMS-Signature"] = signature
        request.headers["X-KMS-Timestamp"] = timestamp
        request.headers["X-KMS-Session-ID"] = self.session
        request.headers["X-KMS-Client-Version"] = "otel-python-e2e"
        return request


def report(response, *args, **kwargs):
    rejected, message = "", ""
    if response.status_code == 200 and response.content:
        partial = ExportMetricsServiceResponse.FromString(response.content).partial_success
        rejected, message = partial.rejected_data_points, partial.error_message
    print(f"answer status={response.status_code} rejected={rejected} message={message}", flush=True)


def main():
    url, secret_file, session, *names = sys.argv[1:]
    logging.basicConfig(level=logging.INFO, stream=sys.stderr)
    with open(secret_file, encoding="utf-8") as f:
        secret = f.read().strip().encode()
    http = requests.Session()
    http.auth = KmsV1(secret, session)
    http.hooks["response"].append(report)
    exporter = OTLPMetricExporter(endpoint=url, session=http, timeout=5)
    result = exporter.export(counters(names))
    print(f"result={result.name}", flush=True)
    exporter.shutdown()


if __name__ == "__main__":
    main()
