"""`pulumi-language-python`: the language host the Pulumi engine starts for `runtime: python`.

The engine runs `pulumi-language-python [flags] <engine address>`, reads the port of our gRPC
server from the first line of stdout, and calls the LanguageRuntime service (the SDK's public
stubs in `pulumi.runtime.proto`). Programs run in a subprocess with the project's interpreter
(`runtime.options.virtualenv`, else this host's own) through `program_runner.py`; policy packs
and Python plugins run through `RunPlugin` with their output streamed back to the engine.
SIGINT/SIGTERM (how the engine stops its plugins) stop the children and the server quietly.
"""

from __future__ import annotations

import argparse
import base64
import json
import os
import signal
import socket
import subprocess
import sys
import threading
import tomllib
from collections.abc import Iterator, Mapping
from concurrent import futures
from dataclasses import dataclass
from importlib import metadata
from pathlib import Path
from typing import Any, NoReturn

import grpc
from google.protobuf import empty_pb2, json_format
from pulumi.runtime.proto import language_pb2, language_pb2_grpc, plugin_pb2

from liftlock.engine import program_runner
from liftlock.engine.children import (
    ChildProcesses,
    EnginePlugins,
    exit_status,
    stream_output,
)
from liftlock.engine.python_runtime import (
    PluginRequirement,
    PythonRuntime,
    RuntimeSetupError,
    required_plugins,
    top_level_packages,
)

SERVER_WORKERS = 16
#: The engine sends whole stack states; Pulumi's own hosts raise gRPC's 4 MB default to 400 MB.
MAX_MESSAGE_BYTES = 400 * 1024 * 1024
ENGINE_CHECK_SECONDS = 1.0
ENGINE_CHECK_FAILURES = 5
_UNSUPPORTED_CODEGEN = (
    "liftlock's Python language host runs programs, policy packs and plugins; it does not "
    "generate code ({rpc}). Use the official pulumi-language-python plugin for "
    "`pulumi convert`, `pulumi package gen-sdk` and `pulumi package add`."
)


def host_version() -> str:
    """The Pulumi SDK version this host speaks for (what `pulumi about` shows for the plugin)."""
    try:
        return metadata.version("pulumi")
    except metadata.PackageNotFoundError:
        return "0.0.0"


def _options(info: language_pb2.ProgramInfo) -> dict[str, Any]:
    return json_format.MessageToDict(info.options) if info.HasField("options") else {}


def _abort(context: grpc.ServicerContext, code: grpc.StatusCode, message: str) -> NoReturn:
    context.abort(code, message)
    raise AssertionError("unreachable: context.abort raises")


@dataclass(frozen=True)
class ProgramLocation:
    """Where a program is, from a ProgramInfo (new engines) or pwd/program (older ones)."""

    root: str
    program_dir: str
    entry_point: str
    options: dict[str, Any]

    @classmethod
    def of(cls, info: language_pb2.ProgramInfo, pwd: str, program: str) -> ProgramLocation:
        program_dir = info.program_directory or pwd
        return cls(
            root=info.root_directory or program_dir,
            program_dir=program_dir,
            entry_point=info.entry_point or program or ".",
            options=_options(info),
        )

    def runtime(self) -> PythonRuntime:
        return PythonRuntime.resolve(self.root, self.program_dir, self.options)

    @property
    def program_path(self) -> Path:
        return (Path(self.program_dir) / self.entry_point).resolve()


class PythonLanguageHost(language_pb2_grpc.LanguageRuntimeServicer):
    """The LanguageRuntime service for Python programs."""

    def __init__(self, engine_address: str = "", children: ChildProcesses | None = None) -> None:
        self.engine_address = engine_address
        self.children = children or ChildProcesses()

    # -- identity ---------------------------------------------------------------------------

    def Handshake(self, request, context):
        if request.engine_address:
            self.engine_address = request.engine_address
        return language_pb2.LanguageHandshakeResponse()

    def GetPluginInfo(self, request, context):
        return plugin_pb2.PluginInfo(version=host_version())

    def About(self, request, context):
        location = ProgramLocation.of(request.info, os.getcwd(), "")
        runtime = self._runtime(location, context)
        probe = (
            "import json, platform, sys; "
            "print(json.dumps([sys.executable, platform.python_version()]))"
        )
        completed = subprocess.run(
            [str(runtime.interpreter), "-c", probe],
            capture_output=True,
            text=True,
            env=runtime.environment(),
            check=False,
        )
        if completed.returncode != 0:
            _abort(
                context,
                grpc.StatusCode.FAILED_PRECONDITION,
                f"{runtime.interpreter} does not run: {completed.stderr.strip()}",
            )
        executable, version = json.loads(completed.stdout)
        metadata_fields = {"toolchain": "pip", "host": "liftlock"}
        if runtime.virtualenv is not None:
            metadata_fields["virtualenv"] = str(runtime.virtualenv)
        return language_pb2.AboutResponse(
            executable=executable, version=version, metadata=metadata_fields
        )

    def RuntimeOptionsPrompts(self, request, context):
        return language_pb2.RuntimeOptionsResponse()  # options come from Pulumi.yaml

    def Template(self, request, context):
        return language_pb2.TemplateResponse()

    # -- dependencies -----------------------------------------------------------------------

    def GetRequiredPackages(self, request, context):
        location = ProgramLocation.of(request.info, "", "")
        packages = [
            plugin_pb2.PackageDependency(
                name=req.name,
                kind="resource",
                version=req.version,
                server=req.server,
                parameterization=_parameterization(req),
            )
            for req in self._required_plugins(location, context)
        ]
        return language_pb2.GetRequiredPackagesResponse(packages=packages)

    def GetRequiredPlugins(self, request, context):
        location = ProgramLocation.of(request.info, request.pwd, request.program)
        plugins = [
            plugin_pb2.PluginDependency(
                name=req.name, kind="resource", version=req.version, server=req.server
            )
            for req in self._required_plugins(location, context)
            if req.parameterization is None
        ]
        return language_pb2.GetRequiredPluginsResponse(plugins=plugins)

    def GetProgramDependencies(self, request, context):
        location = ProgramLocation.of(request.info, request.pwd, request.program)
        packages = self._installed_packages(location, context)
        if not request.transitiveDependencies:
            packages = top_level_packages(packages)
        return language_pb2.GetProgramDependenciesResponse(
            dependencies=[
                language_pb2.DependencyInfo(name=p["name"], version=p["version"])
                for p in sorted(packages, key=lambda p: p["name"].lower())
            ]
        )

    def InstallDependencies(self, request, context):
        location = ProgramLocation.of(request.info, request.directory, "")
        runtime = self._runtime(location, context)
        yield _out("Installing dependencies...\n\n")
        if runtime.virtualenv is not None and not runtime.interpreter.exists():
            yield _out(f"Creating virtual environment in {runtime.virtualenv}\n")
            yield from self._run_streamed(
                [sys.executable, "-m", "venv", str(runtime.virtualenv)], runtime, context
            )
        requirements = _requirements_file(runtime)
        if requirements is None:
            yield _out(
                f"No requirements.txt in {runtime.program_dir} or {runtime.root}: "
                "nothing to install\n"
            )
        else:
            yield from self._run_streamed(
                [str(runtime.interpreter), "-m", "pip", "install", "-r", str(requirements)],
                runtime,
                context,
            )
        yield _out("Finished installing dependencies\n\n")

    # -- running ----------------------------------------------------------------------------

    def Run(self, request, context):
        if request.attach_debugger:
            return language_pb2.RunResponse(
                error="liftlock's Python language host cannot attach a debugger (--attach-debugger)"
            )
        location = ProgramLocation.of(request.info, request.pwd, request.program)
        try:
            runtime = location.runtime()
            runtime.require_interpreter()
        except RuntimeSetupError as error:
            return language_pb2.RunResponse(error=str(error))
        argv = [str(runtime.interpreter), "-u", program_runner.__file__]
        argv += _flag("monitor", request.monitor_address)
        argv += _flag("engine", self.engine_address)
        argv += _flag("project", request.project)
        argv += _flag("stack", request.stack)
        argv += _flag("organization", request.organization)
        argv += _flag("root_directory", location.root)
        argv += _flag("pwd", request.pwd or location.program_dir)
        argv += _flag("dry_run", "true" if request.dryRun else "false")
        argv += _flag("parallel", str(request.parallel))
        argv += [str(location.program_path), *request.args]
        env = runtime.environment()
        env["PULUMI_CONFIG"] = json.dumps(dict(request.config))
        env["PULUMI_CONFIG_SECRET_KEYS"] = json.dumps(list(request.configSecretKeys))
        # The program writes to the host's own stdout/stderr, which the engine shows as the
        # program's output; its errors go through the engine's Log RPC.
        cwd = Path(request.pwd or location.program_dir)
        process = self.children.start(argv, env=env, cwd=cwd, capture=False)
        context.add_callback(lambda: self.children.stop(process))
        returncode = self.children.wait(process)
        sys.stdout.flush()
        sys.stderr.flush()
        if returncode == 0:
            return language_pb2.RunResponse()
        if returncode == program_runner.EXIT_REPORTED:
            return language_pb2.RunResponse(bail=True)
        if returncode in (program_runner.EXIT_CANCELLED, -signal.SIGTERM, -signal.SIGINT):
            return language_pb2.RunResponse(error="the program was stopped before it finished")
        return language_pb2.RunResponse(
            error=f"the program exited with non-zero exit code: {exit_status(returncode)}"
        )

    def RunPlugin(self, request, context):
        location = ProgramLocation.of(request.info, request.pwd, request.program)
        runtime = self._runtime(location, context)
        argv = [str(runtime.interpreter), "-u", *_plugin_command(request, location, context)]
        env = dict(os.environ)
        env.update(_environment_list(request.env))
        process = self.children.start(
            argv,
            env=runtime.environment(env),
            cwd=Path(request.pwd) if request.pwd else None,
            capture=True,
        )
        context.add_callback(lambda: self.children.stop(process))
        try:
            for stream, chunk in stream_output(process):
                if stream == "stdout":
                    yield language_pb2.RunPluginResponse(stdout=chunk)
                else:
                    yield language_pb2.RunPluginResponse(stderr=chunk)
        finally:
            for pipe in (process.stdout, process.stderr):
                if pipe is not None:
                    pipe.close()
        yield language_pb2.RunPluginResponse(exitcode=exit_status(self.children.wait(process)))

    def Cancel(self, request, context):
        self.children.stop_all()
        return empty_pb2.Empty()

    # -- code generation is the official host's job -------------------------------------------

    def GenerateProgram(self, request, context):
        _unsupported(context, "GenerateProgram")

    def GenerateProject(self, request, context):
        _unsupported(context, "GenerateProject")

    def GeneratePackage(self, request, context):
        _unsupported(context, "GeneratePackage")

    def Pack(self, request, context):
        _unsupported(context, "Pack")

    def Link(self, request, context):
        _unsupported(context, "Link")

    # -- helpers ----------------------------------------------------------------------------

    def _runtime(self, location: ProgramLocation, context: grpc.ServicerContext) -> PythonRuntime:
        try:
            return location.runtime()
        except RuntimeSetupError as error:
            _abort(context, grpc.StatusCode.FAILED_PRECONDITION, str(error))

    def _installed_packages(
        self, location: ProgramLocation, context: grpc.ServicerContext
    ) -> list[dict[str, Any]]:
        runtime = self._runtime(location, context)
        try:
            return runtime.installed_packages()
        except (RuntimeSetupError, OSError, ValueError) as error:
            _abort(context, grpc.StatusCode.FAILED_PRECONDITION, str(error))

    def _required_plugins(
        self, location: ProgramLocation, context: grpc.ServicerContext
    ) -> list[PluginRequirement]:
        return required_plugins(self._installed_packages(location, context))

    def _run_streamed(
        self, argv: list[str], runtime: PythonRuntime, context: grpc.ServicerContext
    ) -> Iterator[language_pb2.InstallDependenciesResponse]:
        process = self.children.start(
            argv, env=runtime.environment(), cwd=runtime.program_dir, capture=True
        )
        context.add_callback(lambda: self.children.stop(process))
        for stream, chunk in stream_output(process):
            if stream == "stdout":
                yield language_pb2.InstallDependenciesResponse(stdout=chunk)
            else:
                yield language_pb2.InstallDependenciesResponse(stderr=chunk)
        for pipe in (process.stdout, process.stderr):
            if pipe is not None:
                pipe.close()
        returncode = self.children.wait(process)
        if returncode != 0:
            _abort(
                context,
                grpc.StatusCode.INTERNAL,
                f"`{' '.join(argv)}` failed with exit code {exit_status(returncode)}",
            )


def _unsupported(context: grpc.ServicerContext, rpc: str) -> NoReturn:
    _abort(context, grpc.StatusCode.UNIMPLEMENTED, _UNSUPPORTED_CODEGEN.format(rpc=rpc))


def _out(text: str) -> language_pb2.InstallDependenciesResponse:
    return language_pb2.InstallDependenciesResponse(stdout=text.encode())


def _flag(name: str, value: str) -> list[str]:
    return [f"--{name}", value] if value else []


def _parameterization(req: PluginRequirement) -> plugin_pb2.PackageParameterization | None:
    if not req.parameterization:
        return None
    value = req.parameterization.get("value", "")
    return plugin_pb2.PackageParameterization(
        name=req.parameterization.get("name", ""),
        version=req.parameterization.get("version", ""),
        value=base64.b64decode(value) if value else b"",
    )


def _requirements_file(runtime: PythonRuntime) -> Path | None:
    for folder in (runtime.program_dir, runtime.root):
        candidate = folder / "requirements.txt"
        if candidate.is_file():
            return candidate
    return None


def _environment_list(entries: Iterator[str] | list[str]) -> Mapping[str, str]:
    env = {}
    for entry in entries:
        key, sep, value = entry.partition("=")
        if sep and key:
            env[key] = value
    return env


def _plugin_command(
    request: language_pb2.RunPluginRequest,
    location: ProgramLocation,
    context: grpc.ServicerContext,
) -> list[str]:
    """What follows `python -u` for a plugin: a policy pack runs through pulumi.policy."""
    plugin_dir = Path(location.program_dir)
    if request.kind == "analyzer":
        return ["-m", "pulumi.policy", *request.args, str(plugin_dir)]
    if (plugin_dir / "__main__.py").is_file():
        return [str(plugin_dir), *request.args]
    pyproject = plugin_dir / "pyproject.toml"
    if pyproject.is_file():
        with pyproject.open("rb") as handle:
            name = tomllib.load(handle).get("project", {}).get("name")
        if name:
            return ["-m", "pulumi.run.plugin", name, *request.args]
    _abort(
        context,
        grpc.StatusCode.FAILED_PRECONDITION,
        f"plugin {request.name or plugin_dir} in {plugin_dir} is not runnable: it has neither "
        "__main__.py nor a pyproject.toml with [project] name",
    )


# -- the server -------------------------------------------------------------------------------


@dataclass
class RunningHost:
    """A started host: its gRPC server, port and servicer."""

    server: grpc.Server
    port: int
    host: PythonLanguageHost

    def stop(self, grace: float = 1.0) -> None:
        self.host.children.stop_all(close=True)
        self.server.stop(grace).wait()


def start_host(engine_address: str = "") -> RunningHost:
    """Serve the LanguageRuntime service on 127.0.0.1 on a free port."""
    server = grpc.server(
        futures.ThreadPoolExecutor(max_workers=SERVER_WORKERS),
        options=[
            ("grpc.max_receive_message_length", MAX_MESSAGE_BYTES),
            ("grpc.max_send_message_length", MAX_MESSAGE_BYTES),
        ],
    )
    host = PythonLanguageHost(engine_address)
    language_pb2_grpc.add_LanguageRuntimeServicer_to_server(host, server)
    port = server.add_insecure_port("127.0.0.1:0")
    server.start()
    return RunningHost(server, port, host)


def parse_args(argv: list[str]) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="pulumi-language-python",
        description="Pulumi language host for Python programs (started by the Pulumi engine).",
    )
    parser.add_argument("--tracing", help="tracing endpoint (accepted, unused)")
    parser.add_argument("--root", help="[obsolete] project root")
    parser.add_argument("--virtualenv", help="[obsolete] use runtime.options in Pulumi.yaml")
    parser.add_argument("--toolchain", help="[obsolete] use runtime.options in Pulumi.yaml")
    parser.add_argument("--typechecker", help="[obsolete] use runtime.options in Pulumi.yaml")
    parser.add_argument("--use-executor", help="[obsolete] the runner is liftlock's own")
    parser.add_argument("--logtostderr", action="store_true", help="accepted, unused")
    parser.add_argument("--logflow", action="store_true", help="accepted, unused")
    parser.add_argument("-v", "--verbose", help="accepted, unused")
    parser.add_argument("engine_address", nargs="*", help="the engine's gRPC address")
    args, _unknown = parser.parse_known_args(argv)
    return args


def _watch_engine(address: str, stop: threading.Event, plugins: EnginePlugins) -> None:
    """Stop when the engine that started us is gone (it may die without signalling us), and
    stop the plugins it left behind (see EnginePlugins)."""
    host, _, port = address.rpartition(":")
    failures = 0
    while not stop.wait(ENGINE_CHECK_SECONDS):
        if os.getppid() != plugins.engine_pid:  # reparented: the engine died
            break
        plugins.remember()
        try:
            with socket.create_connection((host or "127.0.0.1", int(port)), timeout=1.0):
                failures = 0
        except (OSError, ValueError):
            failures += 1
            if failures >= ENGINE_CHECK_FAILURES:
                break
    else:
        return  # stopped by the engine (SIGINT/SIGTERM): it stops its own plugins
    plugins.stop_orphans()
    stop.set()


def main(argv: list[str] | None = None) -> int:
    args = parse_args(sys.argv[1:] if argv is None else argv)
    engine_address = args.engine_address[-1] if args.engine_address else ""
    stop = threading.Event()

    def request_stop(signum: int, _frame: object) -> None:
        stop.set()

    signal.signal(signal.SIGINT, request_stop)
    signal.signal(signal.SIGTERM, request_stop)
    running = start_host(engine_address)
    print(running.port, flush=True)
    if engine_address:
        plugins = EnginePlugins(os.getppid())
        threading.Thread(
            target=_watch_engine, args=(engine_address, stop, plugins), daemon=True
        ).start()
    while not stop.wait(0.5):
        pass
    running.stop()
    return 0


if __name__ == "__main__":
    sys.exit(main())
