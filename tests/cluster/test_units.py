"""The embedded cluster's pieces without starting it: the network rule in the CNI config, the
CRI config, the node's host-quirk settings, PID tracking, the pause image."""

from __future__ import annotations

import subprocess
import sys
import time
from pathlib import Path

import pytest

from liftlock.cluster import kubernetes, pause, runtime
from liftlock.cluster.layout import BRIDGE, Layout
from liftlock.cluster.process import ClusterError, Component


@pytest.fixture
def layout(tmp_path: Path) -> Layout:
    return Layout(state_dir=tmp_path / "cluster", registry_port=5999)


def test_the_pod_bridge_has_no_gateway_and_no_masquerading(layout: Layout) -> None:
    bridge = runtime.cni_conflist(layout)["plugins"][0]  # type: ignore[index]
    assert bridge["type"] == "bridge" and bridge["bridge"] == BRIDGE
    assert bridge["isGateway"] is False
    assert bridge["ipMasq"] is False
    assert "routes" not in bridge["ipam"], "no route may lead pods off the machine"


def test_containerd_trusts_the_embedded_registry_and_uses_the_local_pause_image(
    layout: Layout,
) -> None:
    config = runtime.write_config(layout, "127.0.0.1:5999/liftlock/pause:abc").read_text()
    assert 'sandbox_image = "127.0.0.1:5999/liftlock/pause:abc"' in config
    assert "restrict_oom_score_adj = true" in config
    assert f'address = "{runtime.socket_path(layout)}"' in config
    hosts = layout.run_dir / "certs.d" / "127.0.0.1:5999" / "hosts.toml"
    assert 'server = "http://127.0.0.1:5999"' in hosts.read_text()


def test_the_kubelet_settings_fit_this_kind_of_machine(layout: Layout) -> None:
    config = kubernetes.kubelet_config(layout)
    assert config["failCgroupV1"] is False
    assert config["oomScoreAdj"] == 0
    assert config["address"] == "127.0.0.1" and config["healthzBindAddress"] == "127.0.0.1"
    assert config["authentication"]["anonymous"] == {"enabled": False}  # type: ignore[index]
    assert ".." not in str(config["podLogsDir"])


def test_kube_proxy_is_told_not_to_write_host_sysctls(layout: Layout) -> None:
    config = kubernetes.kube_proxy_config(layout)
    assert config["conntrack"] == {
        "maxPerCore": 0,
        "min": 0,
        "tcpEstablishedTimeout": "0s",
        "tcpCloseWaitTimeout": "0s",
    }
    assert config["iptables"]["localhostNodePorts"] is False  # type: ignore[index]
    assert config["bindAddress"] == "127.0.0.1"


def test_node_processes_see_a_read_only_proc_sys_with_private_copies() -> None:
    script = kubernetes._namespace_script(
        [(Path("/tmp/copy"), "vm/overcommit_memory")], ["kubelet", "--v=1"]
    )
    assert script[:4] == ["unshare", "-m", "--propagation", "unchanged"]
    body = script[-1]
    assert "mount -o remount,bind,ro /proc/sys" in body
    assert body.index("remount,bind,ro") < body.index("/proc/sys/vm/overcommit_memory")
    assert body.endswith("exec kubelet --v=1")


def test_a_component_is_stopped_by_the_pid_it_was_started_with(tmp_path: Path) -> None:
    sleeper = Component("sleeper", tmp_path)
    pid = sleeper.start([sys.executable, "-c", "import time; time.sleep(60)"])
    assert sleeper.pid() == pid
    assert sleeper.stop(grace=5) == pid
    assert not sleeper.running() and not sleeper.pid_file.exists()


def test_a_stale_pid_file_never_signals_another_process(tmp_path: Path) -> None:
    other = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])
    try:
        stale = Component("stale", tmp_path)
        stale.pid_file.parent.mkdir(parents=True)
        stale.pid_file.write_text(f"{other.pid}\n1")  # same PID, started at another time
        assert stale.pid() is None
        assert stale.stop() is None
        time.sleep(0.1)
        assert other.poll() is None, "the unrelated process must still run"
    finally:
        other.kill()
        other.wait()


def test_a_component_that_dies_names_itself_and_its_log(tmp_path: Path) -> None:
    dying = Component("dying", tmp_path)
    dying.start([sys.executable, "-c", "import sys; print('bad flag --x'); sys.exit(3)"])
    with pytest.raises(ClusterError, match=r"dying exited before ready; its log .*dying\.log"):
        dying.wait_until(lambda: False, what="ready", timeout=10)
    assert "bad flag --x" in dying.log_file.read_text()


def test_the_pause_image_is_static_and_reproducible(tmp_path: Path) -> None:
    binary = pause.compile_pause(tmp_path)
    assert b"ELF" in binary.read_bytes()[:4]
    assert (
        "statically linked"
        in subprocess.run(["file", str(binary)], capture_output=True, text=True).stdout
        or not Path("/usr/bin/file").exists()
    )
    assert pause.layer_of(binary) == pause.layer_of(pause.compile_pause(tmp_path / "again"))
