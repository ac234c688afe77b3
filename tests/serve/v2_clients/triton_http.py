"""tritonclient[http] 2.73.0 against the server: JSON and binary tensors, health, metadata, an
error. Run by tests/serve/test_v2_clients.py in its own venv; stdin/stdout JSON."""

import json
import sys

import numpy as np
import tritonclient.http as http
from tritonclient.utils import InferenceServerException

given = json.load(sys.stdin)
client = http.InferenceServerClient(given["address"])
model = given["model"]
x = np.array(given["rows"], dtype=np.float32)
out = {
    "live": client.is_server_live(),
    "ready": client.is_server_ready(),
    "model_ready": client.is_model_ready(model),
    "model_ready_version": client.is_model_ready(model, given["version"]),
    "server_metadata": client.get_server_metadata(),
    "metadata": client.get_model_metadata(model),
}
for label, binary in (("json", False), ("binary", True)):
    tensor = http.InferInput("input", list(x.shape), "FP32")
    tensor.set_data_from_numpy(x, binary_data=binary)
    requested = [
        http.InferRequestedOutput("predict", binary_data=binary),
        http.InferRequestedOutput("predict_proba", binary_data=binary),
    ]
    result = client.infer(model, [tensor], outputs=requested, request_id=f"id-{label}")
    out[label] = {
        "labels": result.as_numpy("predict").tolist(),
        "probabilities": result.as_numpy("predict_proba").tolist(),
        "id": result.get_response()["id"],
    }
# the client's defaults: binary input, no outputs named (parameters.binary_data_output=true)
tensor = http.InferInput("input", list(x.shape), "FP64")
tensor.set_data_from_numpy(x.astype(np.float64))
result = client.infer(model, [tensor], model_version=given["version"])
out["defaults"] = {
    "labels": result.as_numpy("predict").tolist(),
    "probabilities": result.as_numpy("predict_proba").tolist(),
}
# only one output selected
result = client.infer(model, [tensor], outputs=[http.InferRequestedOutput("predict_proba")])
out["selected"] = [output["name"] for output in result.get_response()["outputs"]]
bad = http.InferInput("input", [1, 2], "FP32")
bad.set_data_from_numpy(np.ones((1, 2), dtype=np.float32))
try:
    client.infer(model, [bad])
except InferenceServerException as error:
    out["error"] = {"status": error.status(), "message": error.message()}
print(json.dumps(out))
