"""What both SDK export scripts export: one counter per name, from a
KOTORModSync resource, read once from an in-memory reader (the exporter
under test then exports it exactly once)."""

from opentelemetry.sdk.metrics import MeterProvider
from opentelemetry.sdk.metrics.export import InMemoryMetricReader
from opentelemetry.sdk.resources import Resource


def counters(names):
    reader = InMemoryMetricReader()
    provider = MeterProvider(
        resource=Resource.create({"service.name": "KOTORModSync"}), metric_readers=[reader]
    )
    meter = provider.get_meter("e2e")
    for name in names:
        meter.create_counter(name).add(1, {"run": "e2e"})
    return reader.get_metrics_data()
