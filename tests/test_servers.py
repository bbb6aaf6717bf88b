"""The test server helpers: loopback only, stopped by PID, credentials enforced."""

from __future__ import annotations

import os
import sys
from collections.abc import Callable
from pathlib import Path

import pytest

from persistkit.testing import servers

pytestmark = pytest.mark.servers


@pytest.fixture(autouse=True)
def client_environment(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    for name, value in servers.client_environment(str(tmp_path / "hf")).items():
        monkeypatch.setenv(name, value)


def listening_addresses(pid: int) -> set[str]:
    """Return the local IPv4/IPv6 addresses of the TCP sockets ``pid`` listens on (Linux)."""
    inodes = set()
    for fd in Path(f"/proc/{pid}/fd").iterdir():
        try:
            target = os.readlink(fd)
        except FileNotFoundError:
            continue  # The server closed this descriptor while it was being listed.
        if target.startswith("socket:["):
            inodes.add(target[len("socket:[") : -1])
    addresses = set()
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        for line in Path(table).read_text().splitlines()[1:]:
            fields = line.split()
            local, state, inode = fields[1], fields[3], fields[9]
            if state == "0A" and inode in inodes:  # 0A is TCP_LISTEN
                addresses.add(local.split(":")[0])
    return addresses


LOOPBACK_IPV4 = "0100007F"  # 127.0.0.1 as /proc/net/tcp prints it (little-endian hex)


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="reads /proc to find listening sockets")
@pytest.mark.parametrize(
    "start", [servers.start_moto, servers.start_seaweedfs, servers.start_fake_gcs], ids=["moto", "seaweedfs", "gcs"]
)
def test_server_listens_on_loopback_and_stops(start: Callable[[], servers.RunningServer]) -> None:
    server = start()
    try:
        assert server.pid is not None
        assert server.endpoint.startswith("http://127.0.0.1:")
        addresses = listening_addresses(server.pid)
        assert addresses
        assert addresses == {LOOPBACK_IPV4}
    finally:
        server.stop()

    with pytest.raises(ProcessLookupError):
        os.kill(server.pid, 0)


def test_seaweedfs_rejects_wrong_credentials() -> None:
    import fsspec

    server = servers.start_seaweedfs()
    try:
        good = fsspec.filesystem("s3", skip_instance_cache=True, **server.storage_options)
        good.mkdir("credentials-check")
        bad = fsspec.filesystem(
            "s3", skip_instance_cache=True, endpoint_url=server.endpoint, key="nobody", secret="wrong"
        )
        with pytest.raises(PermissionError):
            bad.pipe_file("credentials-check/object", b"1")
    finally:
        server.stop()


def test_hub_server_handle_and_options() -> None:
    server = servers.start_hub_server(commit_quota=5)
    try:
        assert server.pid is None
        assert server.handle.commit_quota == 5
        assert server.storage_options == {"endpoint": server.endpoint}
    finally:
        server.stop()
