"""`python -m ml.serve`: the container's entry point (no CLI framework, no liftlock import).

Same options as `liftlock serve` (both come from ml.serve.settings.options()); every option also
reads a `LIFTLOCK_*` environment variable.
"""

from __future__ import annotations

import argparse
import sys

from ml.errors import MLError
from ml.serve.settings import load_settings, options


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m ml.serve", description=__doc__)
    for option in options():
        if option.kind is bool:
            parser.add_argument(
                option.flag, dest=option.field, action=argparse.BooleanOptionalAction,
                default=None, help=option.help,
            )  # fmt: skip
        else:
            parser.add_argument(
                option.flag, dest=option.field, type=option.kind, choices=option.choices,
                default=None, help=option.help,
            )  # fmt: skip
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        from ml.serve.runner import serve

        serve(load_settings(**vars(args)))
    except MLError as error:
        print(f"error: {error}", file=sys.stderr)
        return error.exit_code
    return 0


if __name__ == "__main__":
    sys.exit(main())
