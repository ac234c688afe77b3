"""kserve 0.21.0 InferenceRESTClient (protocol v2) against the server: readiness, JSON and binary
tensors, an error. Run by tests/serve/test_v2_clients.py in its own venv; stdin/stdout JSON."""

import asyncio
import json
import sys

import httpx
import numpy as np
from kserve import InferenceRESTClient, InferInput, InferRequest, RESTConfig

given = json.load(sys.stdin)


async def main() -> dict:
    client = InferenceRESTClient(config=RESTConfig(protocol="v2", retries=0))
    url, model = given["url"], given["model"]
    x = np.array(given["rows"], dtype=np.float32)
    out = {
        "live": await client.is_server_live(url),
        "ready": await client.is_server_ready(url),
        "model_ready": await client.is_model_ready(url, model),
        "other_model_ready": await client.is_model_ready(url, "no-such-model"),
    }
    for label, binary in (("json", False), ("binary", True)):
        tensor = InferInput("input", list(x.shape), "FP32")
        tensor.set_data_from_numpy(x, binary_data=binary)
        request = InferRequest(model, infer_inputs=[tensor], request_id=f"kserve-{label}")
        response = await client.infer(url, request, model_name=model)
        by_name = {output.name: output for output in response.outputs}
        out[label] = {
            "labels": by_name["predict"].as_numpy().tolist(),
            "probabilities": by_name["predict_proba"].as_numpy().tolist(),
            "id": response.id,
        }
    bad = InferInput("input", [1, 2], "FP32")
    bad.set_data_from_numpy(np.ones((1, 2), dtype=np.float32))
    try:
        await client.infer(url, InferRequest(model, infer_inputs=[bad]), model_name=model)
    except httpx.HTTPStatusError as error:
        out["error"] = {"status": error.response.status_code, "body": error.response.json()}
    await client.close()
    return out


print(json.dumps(asyncio.run(main())))
