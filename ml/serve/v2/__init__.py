"""The Open Inference Protocol (KServe V2): REST bodies, gRPC service, shared tensor codec."""
