"""Runs one Pulumi Python program for the language host, in the project's interpreter.

The host starts `python -u <this file> --monitor ... --engine ... PROGRAM [ARGS...]` with the
program's config in PULUMI_CONFIG / PULUMI_CONFIG_SECRET_KEYS. It imports only the standard
library and the Pulumi SDK, since the project's virtualenv need not contain liftlock.

Exit codes: 0 success; EXIT_REPORTED (32, the code the engine's hosts agree on) when the error was
already shown to the user through the engine (an exception in the program, with the program's own
traceback); EXIT_CANCELLED when stopped by a signal; anything else is unexpected.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import runpy
import signal
import sys
import sysconfig
import traceback
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from types import FrameType

EXIT_REPORTED = 32
EXIT_CANCELLED = 130
#: Frames of these files are the machinery that runs the program, not the program.
_MACHINERY_STDLIB = frozenset({"runpy.py", "asyncio", "concurrent", "threading.py"})


def parse_args(argv: list[str]) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="program_runner", description=__doc__)
    parser.add_argument("--monitor", required=True, help="resource monitor address")
    parser.add_argument("--engine", default="", help="engine address (logging)")
    parser.add_argument("--project", required=True)
    parser.add_argument("--stack", required=True)
    parser.add_argument("--organization", default="organization")
    parser.add_argument("--root_directory", default="")
    parser.add_argument("--pwd", default="")
    parser.add_argument("--dry_run", default="false", choices=["true", "false"])
    parser.add_argument("--parallel", type=int, default=0)
    parser.add_argument("program", help="the program: a directory holding __main__.py, or a file")
    parser.add_argument("args", nargs=argparse.REMAINDER, help="arguments for the program")
    return parser.parse_args(argv)


def _stop_quietly(signum: int, _frame: FrameType | None) -> None:
    """The engine or host is shutting us down: no traceback, just go."""
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(EXIT_CANCELLED)


def _is_machinery(filename: str) -> bool:
    if filename.startswith("<frozen "):  # runpy and importlib are frozen since Python 3.11
        return True
    path = Path(filename).resolve()
    if path == Path(__file__).resolve():
        return True
    stdlib = Path(sysconfig.get_paths()["stdlib"]).resolve()
    if path.is_relative_to(stdlib):
        return path.relative_to(stdlib).parts[0] in _MACHINERY_STDLIB
    # The SDK's stack runner wraps every program; its frames say nothing to the user.
    return path.name == "stack.py" and path.parent.parts[-2:] == ("pulumi", "runtime")


def user_traceback(error: BaseException) -> str:
    """The traceback of `error` without the runner's, runpy's and asyncio's frames."""
    formatted = traceback.TracebackException.from_exception(error)
    for summary in _chain(formatted):
        kept = [frame for frame in summary.stack if not _is_machinery(frame.filename)]
        summary.stack = traceback.StackSummary.from_list(kept or list(summary.stack))
    return "".join(formatted.format())


def _chain(summary: traceback.TracebackException) -> list[traceback.TracebackException]:
    seen: list[traceback.TracebackException] = []
    current: traceback.TracebackException | None = summary
    while current is not None and current not in seen:
        seen.append(current)
        current = current.__cause__ or current.__context__
    return seen


def configure_runtime(args: argparse.Namespace) -> None:
    """Point the SDK at the engine before the program imports anything from it."""
    import pulumi.runtime

    settings = pulumi.runtime.Settings(
        project=args.project,
        stack=args.stack,
        monitor=args.monitor,
        engine=args.engine or None,
        parallel=args.parallel or None,
        dry_run=args.dry_run == "true",
        organization=args.organization or "organization",
        root_directory=args.root_directory or None,
    )
    pulumi.runtime.configure(settings)
    # Values and secret keys as the host passed them; `is_config_secret` reads only this set.
    pulumi.runtime.set_all_config(
        pulumi.runtime.get_config_env(), pulumi.runtime.get_config_secret_keys_env()
    )


def run_program(program: Path, parallel: int) -> None:
    import pulumi.runtime

    loop = asyncio.new_event_loop()
    asyncio.set_event_loop(loop)
    # Every resource registration is a blocking gRPC call made from the default executor.
    loop.set_default_executor(ThreadPoolExecutor(max_workers=max(parallel, 4)))

    def run() -> None:
        runpy.run_path(str(program), run_name="__main__")

    try:
        loop.run_until_complete(pulumi.runtime.run_in_stack(run))
    finally:
        pending = asyncio.all_tasks(loop)
        for task in pending:
            task.cancel()
        if pending:
            loop.run_until_complete(asyncio.gather(*pending, return_exceptions=True))
        loop.close()


def report(message: str) -> None:
    """Show `message` as an error of the update (through the engine; stderr if it is gone)."""
    import pulumi

    try:
        pulumi.log.error(message)
    except Exception:  # the engine is unreachable: the user still sees stderr
        print(message, file=sys.stderr)


def main(argv: list[str] | None = None) -> int:
    signal.signal(signal.SIGINT, _stop_quietly)
    signal.signal(signal.SIGTERM, _stop_quietly)
    args = parse_args(sys.argv[1:] if argv is None else argv)
    program = Path(args.program)
    if args.pwd:
        os.chdir(args.pwd)
    program = program if program.is_absolute() else Path.cwd() / program
    # The runner's own folder must not shadow the program's modules (this file is run as a script).
    here = str(Path(__file__).resolve().parent)
    sys.path[:] = [p for p in sys.path if p and Path(p).resolve() != Path(here)]
    program_dir = program if program.is_dir() else program.parent
    sys.path.insert(0, str(program_dir))
    sys.argv = [str(program), *args.args]

    configure_runtime(args)
    import grpc
    import pulumi

    try:
        run_program(program, args.parallel)
    except pulumi.RunError as error:
        if "Resource monitor has terminated" not in str(error):
            report(str(error))
        return EXIT_REPORTED
    except grpc.RpcError as error:
        if error.code() != grpc.StatusCode.UNAVAILABLE:  # UNAVAILABLE: the engine is shutting down
            report(f"RPC error: {error.details()}")
        return EXIT_REPORTED
    except SystemExit as exit_request:
        code = exit_request.code
        if code in (None, 0):
            return 0
        report(f"Program exited with sys.exit({code!r})")
        return EXIT_REPORTED
    except KeyboardInterrupt:
        return EXIT_CANCELLED
    except Exception as error:
        report("Program failed with an unhandled exception:\n" + user_traceback(error))
        return EXIT_REPORTED
    finally:
        sys.stdout.flush()
        sys.stderr.flush()
    return 0


if __name__ == "__main__":
    sys.exit(main())
