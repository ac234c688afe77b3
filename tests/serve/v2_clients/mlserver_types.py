"""mlserver 1.7.1's InferenceRequest / InferenceResponse and codecs (NumpyCodec: one tensor;
PandasCodec: one tensor per column) against the server. Run by tests/serve/test_v2_clients.py in
its own venv; stdin/stdout JSON."""

import json
import sys
import urllib.error
import urllib.request

import numpy as np
import pandas as pd
from mlserver.codecs import NumpyCodec, PandasCodec
from mlserver.types import InferenceRequest, InferenceResponse, MetadataModelResponse

given = json.load(sys.stdin)
base = f"{given['url']}/v2/models/{given['model']}"


def call(path: str, body: bytes | None = None) -> tuple[int, bytes]:
    request = urllib.request.Request(
        base + path, data=body, headers={"Content-Type": "application/json"}
    )
    try:
        with urllib.request.urlopen(request, timeout=30) as response:
            return response.status, response.read()
    except urllib.error.HTTPError as error:
        return error.code, error.read()


def answer(request: InferenceRequest) -> dict:
    status, body = call("/infer", request.model_dump_json(exclude_none=True).encode())
    assert status == 200, (status, body)
    response = InferenceResponse.model_validate_json(body)
    by_name = {output.name: output for output in response.outputs}
    return {
        "labels": NumpyCodec.decode_output(by_name["predict"]).tolist(),
        "probabilities": NumpyCodec.decode_output(by_name["predict_proba"]).tolist(),
        "id": response.id,
        "parameters": response.parameters.model_dump() if response.parameters else None,
    }


x = np.array(given["rows"], dtype=np.float64)
status, body = call("")
out = {"metadata": MetadataModelResponse.model_validate_json(body).model_dump(exclude_none=True)}
numpy_request = InferenceRequest(id="mlserver-np", inputs=[NumpyCodec.encode_input("input", x)])
out["numpy"] = answer(numpy_request)
frame = pd.DataFrame(x, columns=given["features"])
pandas_request = PandasCodec.encode_request(frame)
pandas_request.id = "mlserver-pd"
out["pandas"] = answer(pandas_request)
missing = PandasCodec.encode_request(frame.drop(columns=[given["features"][3]]))
status, body = call("/infer", missing.model_dump_json(exclude_none=True).encode())
out["missing_column"] = {"status": status, "body": json.loads(body)}
print(json.dumps(out))
