"""`python -m ml.serve`: the container's entry point (no CLI framework, no liftlock import).

Same options as `liftlock serve`; every option also reads a `LIFTLOCK_*` environment variable.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from ml.errors import MLError
from ml.serve.settings import BACKENDS, load_settings


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m ml.serve", description=__doc__)
    parser.add_argument("--bundle", type=Path, help="bundle directory (env LIFTLOCK_BUNDLE)")
    parser.add_argument("--host", help="address to bind (env LIFTLOCK_HOST, default 127.0.0.1)")
    parser.add_argument("--port", type=int, help="TCP port (env LIFTLOCK_PORT, default 8080)")
    parser.add_argument("--backend", choices=BACKENDS, help="onnx (default) or sklearn")
    parser.add_argument("--max-rows", type=int, help="rows per request (default 1000)")
    parser.add_argument("--max-body-bytes", type=int, help="request body limit (default 1 MiB)")
    parser.add_argument("--input-log", type=Path, help="rotating JSONL log of inputs, for drift")
    parser.add_argument("--input-window", type=int, help="rows kept for GET /v1/inputs (0: off)")
    args = parser.parse_args(argv)
    try:
        from ml.serve.runner import serve

        serve(load_settings(**vars(args)))
    except MLError as error:
        print(f"error: {error}", file=sys.stderr)
        return error.exit_code
    return 0


if __name__ == "__main__":
    sys.exit(main())
