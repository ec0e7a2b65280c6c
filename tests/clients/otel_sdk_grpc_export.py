"""The OpenTelemetry Python SDK's OTLP/gRPC metric exporter, signing every
call with X-KMS-* v2 metadata through a gRPC client interceptor (it runs
per call, so each export carries its own timestamp, nonce and body hash),
gzip-compressed, exporting once through telegate's gRPC listener. Used by
tests/it/e2e_grpc.rs.

The signed path is the gRPC method path; the body hash is over the
serialized Export request, i.e. the message bytes before gRPC's framing
and compression (docs/protocol.md, "OTLP/gRPC"). The exporter has no
interceptor option: the subclass wraps its channel where it builds it (at
start and on every reconnect).

Prints the export result (`result=SUCCESS|FAILURE`); the SDK's own log
goes to stderr.

    otel_sdk_grpc_export.py HOST:PORT SECRET_FILE KEY_ID SESSION_ID METRIC_NAME...
"""

import collections
import hashlib
import hmac
import logging
import secrets
import sys
import time

import grpc
from opentelemetry.exporter.otlp.proto.grpc.metric_exporter import OTLPMetricExporter
from sdk_metrics import counters


class _Details(
    collections.namedtuple(
        "_Details", ("method", "timeout", "metadata", "credentials", "wait_for_ready", "compression")
    ),
    grpc.ClientCallDetails,
):
    pass


class KmsV2(grpc.UnaryUnaryClientInterceptor):
    """v2: HMAC-SHA256 over `v2|POST|PATH|TS|SESSION|NONCE|KEY_ID|SHA256(message)`."""

    def __init__(self, secret: bytes, key_id: str, session: str):
        self.secret, self.key_id, self.session = secret, key_id, session

    def intercept_unary_unary(self, continuation, details, request):
        timestamp = str(int(time.time()))
        nonce = secrets.token_hex(16)
        body_sha = hashlib.sha256(request.SerializeToString()).hexdigest()
        method = details.method.decode() if isinstance(details.method, bytes) else details.method
        message = f"v2|POST|{method}|{timestamp}|{self.session}|{nonce}|{self.key_id}|{body_sha}"
        signature = hmac.new(self.secret, message.encode(), hashlib.sha256).hexdigest()
        metadata = list(details.metadata or []) + [
            ("x-kms-signature-version", "2"),
            ("x-kms-key-id", self.key_id),
            ("x-kms-nonce", nonce),
            ("x-kms-content-sha256", body_sha),
            ("x-kms-signature", signature),
            ("x-kms-timestamp", timestamp),
            ("x-kms-session-id", self.session),
            ("x-kms-client-version", "otel-python-grpc-e2e"),
        ]
        signed = _Details(
            details.method,
            details.timeout,
            metadata,
            details.credentials,
            details.wait_for_ready,
            details.compression,
        )
        return continuation(signed, request)


class SignedExporter(OTLPMetricExporter):
    interceptor = None

    def _initialize_channel_and_stub(self):
        super()._initialize_channel_and_stub()
        channel = grpc.intercept_channel(self._channel, self.interceptor)
        self._client = self._stub(channel)


def main():
    endpoint, secret_file, key_id, session, *names = sys.argv[1:]
    logging.basicConfig(level=logging.INFO, stream=sys.stderr)
    with open(secret_file, encoding="utf-8") as f:
        secret = f.read().strip().encode()
    SignedExporter.interceptor = KmsV2(secret, key_id, session)
    exporter = SignedExporter(
        endpoint=endpoint, insecure=True, timeout=5, compression=grpc.Compression.Gzip
    )
    result = exporter.export(counters(names))
    print(f"result={result.name}", flush=True)
    exporter.shutdown()


if __name__ == "__main__":
    main()
