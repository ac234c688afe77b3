"""The language host against a fake engine: its RPC answers, program runs, plugins, shutdown."""

from __future__ import annotations

import os
import platform
import signal
import socket
import subprocess
import sys
import textwrap
import time
from concurrent.futures import Future
from pathlib import Path

import grpc
import pytest
from google.protobuf import empty_pb2, struct_pb2
from pulumi.runtime.proto import language_pb2, language_pb2_grpc

from liftlock.engine.language_host import host_version
from tests.engine.fake_engine import RunningFakeEngine

Stub = language_pb2_grpc.LanguageRuntimeStub


def program_info(
    project_dir: Path, program_dir: Path, **options: object
) -> language_pb2.ProgramInfo:
    struct = struct_pb2.Struct()
    struct.update(options)
    return language_pb2.ProgramInfo(
        root_directory=str(project_dir),
        program_directory=str(program_dir),
        entry_point=".",
        options=struct,
    )


def write_program(tmp_path: Path, source: str, **extra_files: str) -> Path:
    program_dir = tmp_path / "infra"
    program_dir.mkdir(parents=True, exist_ok=True)
    (program_dir / "__main__.py").write_text(textwrap.dedent(source))
    for name, text in extra_files.items():
        (program_dir / name).write_text(textwrap.dedent(text))
    return program_dir


def run_request(
    engine: RunningFakeEngine, tmp_path: Path, program_dir: Path, **options: object
) -> language_pb2.RunRequest:
    return language_pb2.RunRequest(
        project="proj",
        stack="dev",
        pwd=str(program_dir),
        program=".",
        config={"proj:greeting": "hi", "proj:token": "s3cr3t"},
        configSecretKeys=["proj:token"],
        dryRun=True,
        parallel=8,
        monitor_address=engine.address,
        organization="acme",
        info=program_info(tmp_path, program_dir, **options),
    )


NAMING_MODULE = """
def check_name(name):
    raise ValueError(f"name {name!r} is invalid")
"""


def wait_for_file(path: Path, timeout: float = 30.0) -> str:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if path.exists() and path.read_text().strip():
            return path.read_text().strip()
        time.sleep(0.05)
    raise AssertionError(f"{path} was not written within {timeout}s")


def pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    # A zombie has exited; only its parent's wait is missing.
    stat = Path(f"/proc/{pid}/stat")
    return not (stat.exists() and stat.read_text().split(")")[-1].split()[0] == "Z")


# -- identity and dependencies ---------------------------------------------------------------


def test_plugin_info_reports_the_sdk_version_it_speaks_for(stub: Stub) -> None:
    info = stub.GetPluginInfo(empty_pb2.Empty())
    assert info.version == host_version()
    assert info.version.count(".") == 2, f"not a semver: {info.version}"


def test_handshake_is_accepted(stub: Stub, tmp_path: Path) -> None:
    stub.Handshake(
        language_pb2.LanguageHandshakeRequest(
            engine_address="127.0.0.1:1",
            root_directory=str(tmp_path),
            program_directory=str(tmp_path),
        )
    )


def test_required_packages_come_from_pulumi_plugin_json(
    stub: Stub, tmp_path: Path, fake_venv: Path
) -> None:
    info = program_info(tmp_path, tmp_path, virtualenv=str(fake_venv))
    response = stub.GetRequiredPackages(language_pb2.GetRequiredPackagesRequest(info=info))
    found = {(p.name, p.version, p.kind, p.server) for p in response.packages}
    assert found == {
        ("fakecloud", "v1.2.3", "resource", "https://plugins.invalid"),
        ("legacy", "v2.0.0", "resource", ""),  # derived from the package name and version
        ("prerelease", "v3.1.0-alpha.7", "resource", ""),
    }, "resource:false packages and pulumi-policy must not be required; others must be"


def test_required_plugins_for_older_engines(stub: Stub, tmp_path: Path, fake_venv: Path) -> None:
    info = program_info(tmp_path, tmp_path, virtualenv=str(fake_venv))
    response = stub.GetRequiredPlugins(language_pb2.GetRequiredPluginsRequest(info=info))
    assert {(p.name, p.version) for p in response.plugins} == {
        ("fakecloud", "v1.2.3"),
        ("legacy", "v2.0.0"),
        ("prerelease", "v3.1.0-alpha.7"),
    }


def test_missing_virtualenv_is_named_with_its_fix(stub: Stub, tmp_path: Path) -> None:
    info = program_info(tmp_path, tmp_path, virtualenv="no-such-venv")
    with pytest.raises(grpc.RpcError) as raised:
        stub.GetRequiredPackages(language_pb2.GetRequiredPackagesRequest(info=info))
    assert raised.value.code() == grpc.StatusCode.FAILED_PRECONDITION
    details = raised.value.details()
    assert "runtime.options.virtualenv" in details
    assert str(tmp_path / "no-such-venv") in details
    assert "python3 -m venv" in details


def test_unsupported_toolchain_is_refused(stub: Stub, tmp_path: Path) -> None:
    info = program_info(tmp_path, tmp_path, toolchain="poetry")
    with pytest.raises(grpc.RpcError) as raised:
        stub.GetRequiredPackages(language_pb2.GetRequiredPackagesRequest(info=info))
    assert "toolchain" in raised.value.details() and "poetry" in raised.value.details()


def test_program_dependencies_top_level_and_transitive(
    stub: Stub, tmp_path: Path, fake_venv: Path
) -> None:
    info = program_info(tmp_path, tmp_path, virtualenv=str(fake_venv))
    top = stub.GetProgramDependencies(
        language_pb2.GetProgramDependenciesRequest(info=info, transitiveDependencies=False)
    )
    every = stub.GetProgramDependencies(
        language_pb2.GetProgramDependenciesRequest(info=info, transitiveDependencies=True)
    )
    top_names = {d.name for d in top.dependencies}
    every_names = {d.name for d in every.dependencies}
    assert "helper-lib" in every_names and "helper-lib" not in top_names, "required by fakecloud"
    assert ("pulumi_fakecloud", "1.2.3") in {(d.name, d.version) for d in top.dependencies}


def test_about_names_the_interpreter(stub: Stub, tmp_path: Path) -> None:
    about = stub.About(language_pb2.AboutRequest(info=program_info(tmp_path, tmp_path)))
    assert about.version == platform.python_version()
    assert Path(about.executable).exists()


def test_code_generation_is_refused_with_a_pointer(stub: Stub) -> None:
    with pytest.raises(grpc.RpcError) as raised:
        stub.GenerateProgram(language_pb2.GenerateProgramRequest())
    assert raised.value.code() == grpc.StatusCode.UNIMPLEMENTED
    assert "official pulumi-language-python" in raised.value.details()


def test_install_dependencies_without_requirements_does_nothing(stub: Stub, tmp_path: Path) -> None:
    request = language_pb2.InstallDependenciesRequest(
        directory=str(tmp_path), info=program_info(tmp_path, tmp_path)
    )
    output = b"".join(r.stdout for r in stub.InstallDependencies(request)).decode()
    assert "nothing to install" in output
    assert output.rstrip().endswith("Finished installing dependencies")


def test_install_dependencies_failure_names_the_command(stub: Stub, tmp_path: Path) -> None:
    (tmp_path / "requirements.txt").write_text("./no-such-local-package\n")
    request = language_pb2.InstallDependenciesRequest(
        directory=str(tmp_path), info=program_info(tmp_path, tmp_path)
    )
    with pytest.raises(grpc.RpcError) as raised:
        list(stub.InstallDependencies(request))
    assert "pip install -r" in raised.value.details()
    assert str(tmp_path / "requirements.txt") in raised.value.details()


# -- running programs -------------------------------------------------------------------------


def test_run_passes_config_secrets_and_settings(
    stub: Stub, engine: RunningFakeEngine, tmp_path: Path
) -> None:
    program_dir = write_program(
        tmp_path,
        """
        import pulumi
        config = pulumi.Config()
        secret = pulumi.runtime.is_config_secret("proj:token")
        pulumi.log.info(
            f"greeting={config.get('greeting')} token-secret={secret} "
            f"dry-run={pulumi.runtime.is_dry_run()} stack={pulumi.get_stack()} "
            f"org={pulumi.get_organization()}"
        )
        pulumi.export("answer", 42)
        """,
    )
    response = stub.Run(run_request(engine, tmp_path, program_dir))
    assert response.error == "" and not response.bail, engine.recorded.messages()
    assert "greeting=hi token-secret=True dry-run=True stack=dev org=acme" in "\n".join(
        engine.recorded.messages()
    )
    assert ("pulumi:pulumi:Stack", "proj-dev") in engine.recorded.registrations


def test_failing_program_shows_the_users_traceback(
    stub: Stub, engine: RunningFakeEngine, tmp_path: Path
) -> None:
    program_dir = write_program(
        tmp_path,
        """
        import pulumi
        from naming import check_name
        check_name("Bad_Name")
        """,
        **{"naming.py": NAMING_MODULE},
    )
    response = stub.Run(run_request(engine, tmp_path, program_dir))
    assert response.bail, "the error was reported to the user; the engine must not repeat it"
    (error,) = engine.recorded.errors()
    assert "ValueError: name 'Bad_Name' is invalid" in error
    assert str(program_dir / "naming.py") in error and str(program_dir / "__main__.py") in error
    for machinery in ("program_runner", "language_host", "runpy", "asyncio", "pulumi/runtime"):
        assert machinery not in error, f"host frames leak into the user's traceback:\n{error}"


def test_program_exit_code_is_reported(
    stub: Stub, engine: RunningFakeEngine, tmp_path: Path
) -> None:
    program_dir = write_program(tmp_path, "import os\nos._exit(7)\n")
    response = stub.Run(run_request(engine, tmp_path, program_dir))
    assert not response.bail
    assert "exit code: 7" in response.error


def test_run_with_missing_virtualenv_fails_the_update(
    stub: Stub, engine: RunningFakeEngine, tmp_path: Path
) -> None:
    program_dir = write_program(tmp_path, "raise SystemExit('must not run')\n")
    response = stub.Run(run_request(engine, tmp_path, program_dir, virtualenv="missing-venv"))
    assert "runtime.options.virtualenv" in response.error
    assert str(tmp_path / "missing-venv") in response.error


def test_cancel_stops_a_running_program(
    stub: Stub, engine: RunningFakeEngine, tmp_path: Path
) -> None:
    pid_file = tmp_path / "pid"
    program_dir = write_program(
        tmp_path,
        f"""
        import os, pathlib, time
        pathlib.Path({str(pid_file)!r}).write_text(str(os.getpid()))
        time.sleep(600)
        """,
    )
    call: Future[language_pb2.RunResponse] = stub.Run.future(
        run_request(engine, tmp_path, program_dir)
    )
    pid = int(wait_for_file(pid_file))
    started = time.monotonic()
    stub.Cancel(empty_pb2.Empty())
    response = call.result(timeout=15)
    assert time.monotonic() - started < 10
    assert "stopped" in response.error
    assert not pid_alive(pid)


# -- plugins ----------------------------------------------------------------------------------


def test_run_plugin_streams_output_and_exit_code(stub: Stub, tmp_path: Path) -> None:
    plugin_dir = tmp_path / "plugin"
    plugin_dir.mkdir()
    (plugin_dir / "__main__.py").write_text(
        "import sys\nprint('hello', sys.argv[1:])\nprint('oops', file=sys.stderr)\nsys.exit(3)\n"
    )
    request = language_pb2.RunPluginRequest(
        pwd=str(tmp_path),
        args=["a", "b"],
        env=["LIFTLOCK_PLUGIN_TEST=1"],
        info=program_info(plugin_dir, plugin_dir),
        kind="resource",
        name="demo",
    )
    responses = list(stub.RunPlugin(request))
    stdout = b"".join(r.stdout for r in responses).decode()
    stderr = b"".join(r.stderr for r in responses).decode()
    assert stdout == "hello ['a', 'b']\n"
    assert stderr == "oops\n"
    assert responses[-1].WhichOneof("output") == "exitcode" and responses[-1].exitcode == 3


def test_policy_pack_runs_through_pulumi_policy_and_stops_when_cancelled(
    stub: Stub, engine: RunningFakeEngine, tmp_path: Path
) -> None:
    pack = tmp_path / "pack"
    pack.mkdir()
    (pack / "PulumiPolicy.yaml").write_text("runtime: python\n")
    pid_file = tmp_path / "pack.pid"
    (pack / "__main__.py").write_text(
        textwrap.dedent(
            f"""
            import os, pathlib
            from pulumi_policy import EnforcementLevel, PolicyPack, ResourceValidationPolicy
            pathlib.Path({str(pid_file)!r}).write_text(str(os.getpid()))
            PolicyPack(
                name="demo",
                enforcement_level=EnforcementLevel.MANDATORY,
                policies=[
                    ResourceValidationPolicy(name="noop", description="d", validate=print)
                ],
            )
            """
        )
    )
    request = language_pb2.RunPluginRequest(
        pwd=str(tmp_path),
        args=[engine.address],
        env=[f"PATH={os.environ['PATH']}"],
        info=program_info(pack, pack),
        kind="analyzer",
        name="demo",
    )
    stream = stub.RunPlugin(request)
    first = next(r for r in stream if r.WhichOneof("output") != "stderr")
    assert first.stdout.strip().isdigit(), f"an analyzer's first stdout line is its port: {first}"
    pid = int(wait_for_file(pid_file))
    stream.cancel()
    deadline = time.monotonic() + 10
    while pid_alive(pid) and time.monotonic() < deadline:
        time.sleep(0.05)
    assert not pid_alive(pid), "cancelling RunPlugin must stop the policy pack"


# -- the host process -------------------------------------------------------------------------


def start_host_process(engine_address: str) -> tuple[subprocess.Popen[str], int]:
    process = subprocess.Popen(
        [sys.executable, "-m", "liftlock.engine.language_host", "--tracing", "", engine_address],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        start_new_session=True,
    )
    assert process.stdout is not None
    port_line = process.stdout.readline()
    assert port_line.strip().isdigit(), f"first stdout line must be the port, got {port_line!r}"
    return process, int(port_line)


def test_host_process_prints_its_port_and_stops_quietly_on_sigint(
    engine: RunningFakeEngine,
) -> None:
    process, port = start_host_process(engine.address)
    with grpc.insecure_channel(f"127.0.0.1:{port}") as channel:
        assert Stub(channel).GetPluginInfo(empty_pb2.Empty()).version == host_version()
    process.send_signal(signal.SIGINT)
    _, stderr = process.communicate(timeout=10)
    assert process.returncode == 0
    assert "Traceback" not in stderr and "KeyboardInterrupt" not in stderr, stderr


def test_sigint_to_the_host_stops_its_running_program(
    engine: RunningFakeEngine, tmp_path: Path
) -> None:
    pid_file = tmp_path / "pid"
    program_dir = write_program(
        tmp_path,
        f"""
        import os, pathlib, time
        pathlib.Path({str(pid_file)!r}).write_text(str(os.getpid()))
        time.sleep(600)
        """,
    )
    process, port = start_host_process(engine.address)
    with grpc.insecure_channel(f"127.0.0.1:{port}") as channel:
        call = Stub(channel).Run.future(run_request(engine, tmp_path, program_dir))
        pid = int(wait_for_file(pid_file))
        # What the engine does to stop a plugin: SIGINT to the plugin's process group.
        os.killpg(process.pid, signal.SIGINT)
        _, stderr = process.communicate(timeout=15)
        call.cancel()
    assert process.returncode == 0
    assert "Traceback" not in stderr, stderr
    deadline = time.monotonic() + 5
    while pid_alive(pid) and time.monotonic() < deadline:
        time.sleep(0.05)
    assert not pid_alive(pid), "the program outlived its host"


def test_host_stops_when_its_engine_is_gone() -> None:
    """An engine killed with SIGKILL cannot signal its plugins: the host must notice and exit."""
    with socket.socket() as listener:
        listener.bind(("127.0.0.1", 0))
        listener.listen()
        address = f"127.0.0.1:{listener.getsockname()[1]}"
        process, _ = start_host_process(address)
        time.sleep(1.5)
        assert process.poll() is None, "the host must keep running while its engine listens"
    _, stderr = process.communicate(timeout=20)
    assert process.returncode == 0
    assert "Traceback" not in stderr, stderr
