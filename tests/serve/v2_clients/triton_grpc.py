"""tritonclient[grpc] 2.73.0 against the V2 gRPC port: health, metadata, infer (raw tensors),
refusals. Run by tests/serve/test_v2_clients.py in its own venv; stdin/stdout JSON."""

import json
import sys

import numpy as np
import tritonclient.grpc as grpcclient
from tritonclient.utils import InferenceServerException

given = json.load(sys.stdin)
client = grpcclient.InferenceServerClient(given["address"])
model = given["model"]
x = np.array(given["rows"], dtype=np.float32)
metadata = client.get_model_metadata(model, as_json=True)
out = {
    "live": client.is_server_live(),
    "ready": client.is_server_ready(),
    "model_ready": client.is_model_ready(model),
    "server_metadata": client.get_server_metadata(as_json=True),
    "metadata": metadata,
}
tensor = grpcclient.InferInput("input", list(x.shape), "FP32")
tensor.set_data_from_numpy(x)
result = client.infer(
    model, [tensor], request_id="grpc-1", parameters={"tenant": "a"}, model_version=given["version"]
)
response = result.get_response(as_json=True)
out["infer"] = {
    "labels": result.as_numpy("predict").tolist(),
    "probabilities": result.as_numpy("predict_proba").tolist(),
    "id": response["id"],
    "parameters": response.get("parameters", {}),
}
result = client.infer(model, [tensor], outputs=[grpcclient.InferRequestedOutput("predict")])
out["selected"] = [output["name"] for output in result.get_response(as_json=True)["outputs"]]
errors = {}
cases = {
    "two columns": ("input", np.ones((1, 2), dtype=np.float32), "FP32", model),
    "nan": ("input", np.full((1, x.shape[1]), np.nan, dtype=np.float32), "FP32", model),
    "unknown model": ("input", x, "FP32", "no-such-model"),
}
for name, (input_name, values, datatype, target) in cases.items():
    bad = grpcclient.InferInput(input_name, list(values.shape), datatype)
    bad.set_data_from_numpy(values)
    try:
        client.infer(target, [bad])
        errors[name] = None
    except InferenceServerException as error:
        errors[name] = {"status": error.status(), "message": error.message()}
out["errors"] = errors
print(json.dumps(out))
