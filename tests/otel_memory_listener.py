"""Test fixture: hookwise's otel listener with an in-memory exporter, for runs through the driver.

``--listener otel_memory_listener:MemoryOtel=PATH`` (with this directory on
PYTHONPATH) runs the real ``OtelListener`` with its real BatchSpanProcessor,
only exporting to memory; at exit, after the listener has flushed, the spans
are written to PATH as a JSON list of ``span_record`` dicts. ``span_record`` is
also the common form the tests compare the in-memory, OTLP and console outputs in.
"""

import json

from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

from hookwise.listeners.otel import OtelListener


def span_record(span):
    """A finished SDK span as plain data: ids as hex strings, status by name."""
    parent = span.parent
    return {
        "name": span.name,
        "trace_id": f"{span.context.trace_id:032x}",
        "span_id": f"{span.context.span_id:016x}",
        "parent_id": None if parent is None else f"{parent.span_id:016x}",
        "start_ns": span.start_time,
        "end_ns": span.end_time,
        "attributes": dict(span.attributes),
        "status": span.status.status_code.name,
        "status_description": span.status.description,
        "events": [{"name": event.name, "attributes": dict(event.attributes)} for event in span.events],
        "resource": dict(span.resource.attributes),
    }


class MemoryOtel(OtelListener):
    def __init__(self, path):
        self.path = path
        self.exporter = InMemorySpanExporter()
        super().__init__([self.exporter])

    def close(self):
        super().close()  # flushes the batch processor into the exporter
        with open(self.path, "w") as handle:
            json.dump([span_record(span) for span in self.exporter.get_finished_spans()], handle)
