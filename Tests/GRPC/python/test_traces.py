"""Trace parents from the non-Swift clients: the Python framed client's ``trace_parent``, the C
client's ``tl_set_trace_parent`` and a grpcio call's ``traceparent`` header each parent the span
ledgerd exports to an OTLP/gRPC collector run here with grpcio (it decodes the protobuf itself)."""

import os
import subprocess
import sys
import tempfile
import threading
import time
from concurrent import futures

import grpc

from conftest import Ledger

FRAMED_TRACE_ID = "4bf92f3577b34da6a3ce929d0e0e4736"
GRPC_TRACE_ID = "0af7651916cd43dd8448eb211c80319c"
C_TRACE_ID = "5b8efff798038103d269b633813fc60c"
PARENT_SPAN_ID = "00f067aa0ba902b7"


def fields(message):
    """(number, value) of each field of a protobuf message: ints for varints, bytes otherwise."""
    index, found = 0, []
    def varint():
        nonlocal index
        value, shift = 0, 0
        while True:
            byte = message[index]
            index += 1
            value |= (byte & 0x7F) << shift
            if byte < 0x80:
                return value
            shift += 7
    while index < len(message):
        key = varint()
        number, wire = key >> 3, key & 7
        if wire == 0:
            found.append((number, varint()))
        elif wire == 1:
            found.append((number, message[index:index + 8]))
            index += 8
        elif wire == 2:
            length = varint()
            found.append((number, message[index:index + length]))
            index += length
        elif wire == 5:
            found.append((number, message[index:index + 4]))
            index += 4
        else:
            raise ValueError(f"wire type {wire}")
    return found


def spans(request):
    """ExportTraceServiceRequest{1: ResourceSpans{2: ScopeSpans{2: Span}}} -> dicts."""
    out = []
    for number, resource in fields(request):
        if number != 1:
            continue
        for number, scope in fields(resource):
            if number != 2:
                continue
            for number, span in fields(scope):
                if number != 2:
                    continue
                decoded = {"attributes": {}}
                for key, value in fields(span):
                    if key == 1:
                        decoded["trace_id"] = value.hex()
                    elif key == 4:
                        decoded["parent_span_id"] = value.hex()
                    elif key == 5:
                        decoded["name"] = value.decode()
                    elif key == 9:
                        attribute = dict(fields(value))
                        decoded["attributes"][attribute[1].decode()] = attribute.get(2)
                out.append(decoded)
    return out


class Collector:
    def __init__(self):
        self.spans, self.lock = [], threading.Lock()
        self.server = grpc.server(futures.ThreadPoolExecutor(max_workers=2))
        handler = grpc.method_handlers_generic_handler("opentelemetry.proto.collector.trace.v1.TraceService", {
            "Export": grpc.unary_unary_rpc_method_handler(self.export),
        })
        self.server.add_generic_rpc_handlers((handler,))
        self.port = self.server.add_insecure_port("127.0.0.1:0")
        self.server.start()

    def export(self, request, context):
        with self.lock:
            self.spans += spans(request)
        return b""

    def wait_for(self, predicate, seconds=20):
        deadline = time.monotonic() + seconds
        while time.monotonic() < deadline:
            with self.lock:
                found = [span for span in self.spans if predicate(span)]
            if found:
                return found[0]
            time.sleep(0.05)
        return None


FRAMED_CALL = """
import sys
sys.path.insert(0, sys.argv[1])
import tokenledger
with tokenledger.Client("127.0.0.1", int(sys.argv[2]), data_dir=sys.argv[3]) as client:
    with tokenledger.trace_parent(sys.argv[4]):
        client.health()
"""


def build_c_program(directory, repository):
    """Tests/GRPC/c/trace_health.c against the C client's library (its Makefile's `program`)."""
    program = os.path.join(directory, "trace_health")
    built = subprocess.run(["make", "-s", "-C", os.path.join(repository, "clients", "c"), "program",
                            f"SOURCE={os.path.join(repository, 'Tests', 'GRPC', 'c', 'trace_health.c')}",
                            f"PROGRAM={program}"], capture_output=True, text=True)
    assert built.returncode == 0, built.stderr
    return program


def test_trace_parents_from_other_clients_reach_the_exported_spans(stubs, monkeypatch):
    pb, service = stubs
    collector = Collector()
    monkeypatch.setenv("OTEL_BSP_SCHEDULE_DELAY", "100")
    with tempfile.TemporaryDirectory(prefix="tokenledger-traces-") as directory:
        ledger = Ledger(directory, extra=["--otel-endpoint", f"http://127.0.0.1:{collector.port}"])
        try:
            repository = os.path.dirname(os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__)))))
            framed = subprocess.run(
                [sys.executable, "-c", FRAMED_CALL, os.path.join(repository, "clients", "python"), str(ledger.framed_port),
                 ledger.data_dir, f"00-{FRAMED_TRACE_ID}-{PARENT_SPAN_ID}-01"],
                capture_output=True, text=True, timeout=60)
            assert framed.returncode == 0, framed.stderr
            program = build_c_program(directory, repository)
            c_call = subprocess.run([program, str(ledger.framed_port), ledger.data_dir, f"00-{C_TRACE_ID}-{PARENT_SPAN_ID}-01"],
                                    capture_output=True, text=True, timeout=60)
            assert c_call.returncode == 0, c_call.stderr
            stub = service.LedgerStub(ledger.channel())
            stub.Health(pb.HealthRequest(), metadata=(("traceparent", f"00-{GRPC_TRACE_ID}-{PARENT_SPAN_ID}-01"),))

            for trace_id in (FRAMED_TRACE_ID, C_TRACE_ID, GRPC_TRACE_ID):
                span = collector.wait_for(lambda s: s.get("trace_id") == trace_id and s.get("name") == "tokenledger/health")
                assert span is not None, f"no health span with trace id {trace_id}: {collector.spans}"
                assert span["parent_span_id"] == PARENT_SPAN_ID
        finally:
            assert ledger.stop() == 0
            collector.server.stop(None)
