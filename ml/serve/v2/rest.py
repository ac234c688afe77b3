"""V2 REST bodies: the infer request (JSON, or JSON + Triton's binary tensor extension) into
tensors, and the infer response (JSON, or JSON header + raw output bytes).

Binary extension: the request carries `Inference-Header-Content-Length: N`; the first N bytes
are the JSON header, the rest the raw data of every input whose parameters give
`binary_data_size`, in input order. An output is sent raw when its `parameters.binary_data` is
true, or, without that, when the request's `parameters.binary_data_output` is true.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
import orjson

from ml.serve.v2.codec import Output, Tensor, V2Model, bad, output_bytes

HEADER_LENGTH = b"inference-header-content-length"
_NUMPY = orjson.OPT_SERIALIZE_NUMPY


@dataclass(frozen=True)
class InferRequest:
    id: str | None
    parameters: dict[str, Any] | None
    tensors: list[Tensor]
    # requested output names (None: all) and, per output, whether it goes back raw
    outputs: list[str] | None
    binary: dict[str, bool]


def header_length(value: bytes, body_length: int) -> int:
    """The JSON header's length from Inference-Header-Content-Length, checked against the body."""
    if not value.isdigit():
        raise bad(f"Inference-Header-Content-Length: {value.decode('latin-1')!r} is not a length")
    length = int(value)
    if length > body_length:
        raise bad(
            f"Inference-Header-Content-Length: {length} is past the end of the "
            f"{body_length}-byte body"
        )
    return length


def parse_infer(model: V2Model, body: bytes, json_length: int | None) -> InferRequest:
    header = body if json_length is None else body[:json_length]
    try:
        document = orjson.loads(header)
    except orjson.JSONDecodeError as error:
        raise bad(f"body is not valid JSON: {error}") from None
    if type(document) is not dict:
        raise bad('body must be a JSON object {"inputs": [...]}')
    request_id = document.get("id")
    if request_id is not None and type(request_id) is not str:
        raise bad("id: must be a string")
    parameters = _parameters(document.get("parameters"), "parameters")
    raw_inputs = document.get("inputs")
    if type(raw_inputs) is not list or not raw_inputs:
        raise bad(
            'inputs: must be a non-empty list of tensors {"name", "shape", "datatype", "data"}'
        )
    tensors = []
    offset = json_length or 0
    for index, item in enumerate(raw_inputs):
        if type(item) is not dict:
            raise bad(f"inputs[{index}]: must be an object")
        name, datatype, shape = item.get("name"), item.get("datatype"), item.get("shape")
        if type(name) is not str or type(datatype) is not str:
            raise bad(f"inputs[{index}]: 'name' and 'datatype' must be strings")
        tensor_parameters = _parameters(item.get("parameters"), f"input '{name}': parameters")
        size = (tensor_parameters or {}).get("binary_data_size")
        if size is not None:
            if json_length is None:
                raise bad(
                    f"input '{name}': binary_data_size without an Inference-Header-Content-Length "
                    "header"
                )
            if type(size) is not int or size < 0 or offset + size > len(body):
                raise bad(
                    f"input '{name}': binary_data_size {size!r} is past the end of the body "
                    f"({len(body) - offset} bytes left)"
                )
            tensors.append(
                model.tensor_from_bytes(name, datatype, shape, body[offset : offset + size])
            )
            offset += size
        else:
            if "data" not in item:
                raise bad(f"input '{name}': no 'data' (and no binary_data_size)")
            tensors.append(model.tensor_from_list(name, datatype, shape, item["data"]))
    if offset != (len(body) if json_length is not None else 0):
        raise bad(
            f"body: {len(body) - offset} bytes after the binary tensors that no input's "
            "binary_data_size accounts for"
        )
    outputs, binary = _requested(model, document.get("outputs"), parameters)
    return InferRequest(request_id, parameters, tensors, outputs, binary)


def _parameters(value: Any, where: str) -> dict[str, Any] | None:
    if value is None:
        return None
    if type(value) is not dict:
        raise bad(f"{where}: must be an object")
    # the two parameters the protocol's OpenAPI types (a response echoes them back)
    if "content_type" in value and type(value["content_type"]) is not str:
        raise bad(f"{where}: content_type must be a string")
    if "headers" in value and type(value["headers"]) is not dict:
        raise bad(f"{where}: headers must be an object")
    return value


def _requested(
    model: V2Model, raw: Any, parameters: dict[str, Any] | None
) -> tuple[list[str] | None, dict[str, bool]]:
    default = bool((parameters or {}).get("binary_data_output", False))
    if raw is None:
        return None, dict.fromkeys(model.output_names, default)
    if type(raw) is not list:
        raise bad('outputs: must be a list of {"name": ...}')
    names: list[str] = []
    binary: dict[str, bool] = {}
    for index, item in enumerate(raw):
        if type(item) is not dict or type(item.get("name")) is not str:
            raise bad(f"outputs[{index}]: must be an object with a string 'name'")
        name = item["name"]
        own = _parameters(item.get("parameters"), f"output '{name}': parameters") or {}
        names.append(name)
        binary[name] = bool(own.get("binary_data", default))
    model.check_outputs(names)
    return names, binary


def encode_infer(
    model: V2Model, request: InferRequest, outputs: list[Output]
) -> tuple[bytes, int | None]:
    """The response body and, when some output is raw, the JSON header's length."""
    tensors = []
    raw_parts = []
    for output in outputs:
        tensor: dict[str, Any] = {
            "name": output.name,
            "datatype": output.datatype,
            "shape": output.shape,
        }
        if request.binary.get(output.name, False):
            raw = output_bytes(output)
            tensor["parameters"] = {"binary_data_size": len(raw)}
            raw_parts.append(raw)
        elif output.values.dtype.kind in "iuf":
            tensor["data"] = np.ravel(output.values)
        else:
            tensor["data"] = np.ravel(output.values).tolist()
        tensors.append(tensor)
    document: dict[str, Any] = {"model_name": model.name, "model_version": model.version}
    if request.id is not None:
        document["id"] = request.id
    if request.parameters is not None:
        document["parameters"] = request.parameters
    document["outputs"] = tensors
    header = orjson.dumps(document, option=_NUMPY)
    if not raw_parts:
        return header, None
    return header + b"".join(raw_parts), len(header)
