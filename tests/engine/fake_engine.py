"""A fake Pulumi engine: the Engine (logging) and ResourceMonitor services a program talks to.

Just enough for the Python SDK to run a program's stack: it records log messages and resource
registrations so tests can assert what the program reported, without the real CLI.
"""

from __future__ import annotations

import threading
from collections.abc import Iterator
from concurrent import futures
from contextlib import contextmanager
from dataclasses import dataclass, field

import grpc
from google.protobuf import empty_pb2
from pulumi.runtime.proto import (
    engine_pb2,
    engine_pb2_grpc,
    resource_pb2,
    resource_pb2_grpc,
)


@dataclass
class Recorded:
    logs: list[tuple[int, str]] = field(default_factory=list)
    registrations: list[tuple[str, str]] = field(default_factory=list)
    outputs: list[str] = field(default_factory=list)
    lock: threading.Lock = field(default_factory=threading.Lock)

    def errors(self) -> list[str]:
        with self.lock:
            return [m for severity, m in self.logs if severity == engine_pb2.ERROR]

    def messages(self) -> list[str]:
        with self.lock:
            return [m for _, m in self.logs]


class FakeEngine(engine_pb2_grpc.EngineServicer):
    def __init__(self, recorded: Recorded) -> None:
        self.recorded = recorded

    def Log(self, request, context):
        with self.recorded.lock:
            self.recorded.logs.append((request.severity, request.message))
        return empty_pb2.Empty()

    def GetRootResource(self, request, context):
        return engine_pb2.GetRootResourceResponse()

    def SetRootResource(self, request, context):
        return engine_pb2.SetRootResourceResponse()


class FakeMonitor(resource_pb2_grpc.ResourceMonitorServicer):
    def __init__(self, recorded: Recorded, project: str, stack: str) -> None:
        self.recorded = recorded
        self.project = project
        self.stack = stack

    def SupportsFeature(self, request, context):
        return resource_pb2.SupportsFeatureResponse(hasSupport=False)

    def GetDeploymentInfo(self, request, context):
        context.abort(grpc.StatusCode.UNIMPLEMENTED, "fake monitor")

    def RegisterResource(self, request, context):
        urn = f"urn:pulumi:{self.stack}::{self.project}::{request.type}::{request.name}"
        with self.recorded.lock:
            self.recorded.registrations.append((request.type, request.name))
        return resource_pb2.RegisterResourceResponse(urn=urn, id="", object=request.object)

    def RegisterResourceOutputs(self, request, context):
        with self.recorded.lock:
            self.recorded.outputs.append(request.urn)
        return empty_pb2.Empty()

    def SignalAndWaitForShutdown(self, request, context):
        return empty_pb2.Empty()


@dataclass
class RunningFakeEngine:
    address: str
    recorded: Recorded


@contextmanager
def fake_engine(project: str = "proj", stack: str = "dev") -> Iterator[RunningFakeEngine]:
    """Both services on one 127.0.0.1 port (the SDK accepts the same address for both)."""
    recorded = Recorded()
    server = grpc.server(futures.ThreadPoolExecutor(max_workers=8))
    engine_pb2_grpc.add_EngineServicer_to_server(FakeEngine(recorded), server)
    resource_pb2_grpc.add_ResourceMonitorServicer_to_server(
        FakeMonitor(recorded, project, stack), server
    )
    port = server.add_insecure_port("127.0.0.1:0")
    server.start()
    try:
        yield RunningFakeEngine(f"127.0.0.1:{port}", recorded)
    finally:
        server.stop(0).wait()
