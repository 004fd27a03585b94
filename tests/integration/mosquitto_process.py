"""A Mosquitto process of the test's own (a free port, its own config, optional
mutual TLS with certificates made by the ``openssl`` command), which a test may
stop and restart. Skips when ``mosquitto``/``openssl`` are not installed, fails
instead under GRIDCORE_REQUIRE_SERVICES=1."""

from __future__ import annotations

import getpass
import shutil
import signal
import socket
import subprocess
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

import pytest

from conftest import services_required

MOSQUITTO = shutil.which("mosquitto") or "/usr/sbin/mosquitto"
OPENSSL = shutil.which("openssl")


def _require(tool: str | None, name: str) -> str:
    if tool and Path(tool).exists():
        return tool
    if services_required():
        pytest.fail(f"{name} is not installed and GRIDCORE_REQUIRE_SERVICES=1")
    pytest.skip(f"{name} is not installed")


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@dataclass(frozen=True)
class Certificates:
    ca: Path
    server_cert: Path
    server_key: Path
    client_cert: Path
    client_key: Path


_EC_KEY = ["-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes"]


def _openssl(directory: Path, *args: str) -> None:
    openssl = _require(OPENSSL, "openssl")
    subprocess.run([openssl, *args], check=True, capture_output=True, cwd=directory, timeout=30)


def _signed(directory: Path, name: str, common_name: str, *extra: str) -> tuple[Path, Path]:
    """``name.crt`` and ``name.key`` for ``/CN=common_name``, signed by the CA
    in ``directory`` (EC P-256, valid one day)."""
    _openssl(directory, "req", *_EC_KEY, "-keyout", f"{name}.key", "-out", f"{name}.csr",
             "-subj", f"/CN={common_name}")  # fmt: skip
    _openssl(directory, "x509", "-req", "-in", f"{name}.csr", "-CA", "ca.crt", "-CAkey", "ca.key",
             "-CAcreateserial", "-out", f"{name}.crt", "-days", "1", *extra)  # fmt: skip
    return directory / f"{name}.crt", directory / f"{name}.key"


def make_certificates(directory: Path) -> Certificates:
    """A CA, a server certificate for 127.0.0.1/localhost and a client
    certificate, all signed by the CA (EC P-256, valid one day)."""
    _openssl(directory, "req", "-x509", *_EC_KEY, "-keyout", "ca.key", "-out", "ca.crt",
             "-days", "1", "-subj", "/CN=gridcore test CA")  # fmt: skip
    (directory / "server.ext").write_text("subjectAltName=IP:127.0.0.1,DNS:localhost\n")
    server_cert, server_key = _signed(
        directory, "server", "gridcore-server", "-extfile", "server.ext"
    )
    client_cert, client_key = _signed(directory, "client", "gridcore-client")
    return Certificates(directory / "ca.crt", server_cert, server_key, client_cert, client_key)


@dataclass(frozen=True)
class ClientCertificate:
    cert: Path
    key: Path


def client_certificate(certs: Certificates, common_name: str) -> ClientCertificate:
    """Another client certificate from ``certs``' CA, for ``common_name``: the
    identity a broker with ``use_identity_as_username`` gives the client."""
    return ClientCertificate(*_signed(certs.ca.parent, f"client-{common_name}", common_name))


def deployment_config(path: Path, paths: Mapping[str, Path]) -> list[str]:
    """The directives of a shipped Mosquitto configuration, for a test broker:
    comments and ``listener`` lines dropped (the broker's own listener comes
    first), and each deployment path in ``paths`` replaced by the test's file.
    A path the file does not name is an error, so that the test keeps up with
    the shipped file."""
    text = path.read_text()
    for deployed, local in paths.items():
        if deployed not in text:
            raise ValueError(f"{path} does not name {deployed}")
        text = text.replace(deployed, str(local))
    lines = [line.strip() for line in text.splitlines()]
    return [line for line in lines if line and not line.startswith(("#", "listener "))]


class MosquittoProcess:
    """``start``/``stop``/``kill`` a broker on ``port``; persistence on, so a
    restart after ``stop`` keeps persistent sessions and their queued messages."""

    def __init__(
        self,
        directory: Path,
        certs: Certificates | None = None,
        *,
        stock_limits: bool = False,
        access: Sequence[str] | None = None,
    ) -> None:
        """``access``: the listener's TLS and access directives (say, from
        :func:`deployment_config`), instead of the default: mutual TLS with
        ``certs`` when given, and anonymous clients allowed."""
        self.executable = _require(MOSQUITTO, "mosquitto")
        self.directory = directory
        self.port = free_port()
        self.certs = certs
        self.process: subprocess.Popen[bytes] | None = None
        lines = [
            # Run as whoever runs the tests (as root Mosquitto would switch to the
            # 'mosquitto' user, who cannot read pytest's private temp directories).
            f"user {getpass.getuser()}",
            f"listener {self.port} 127.0.0.1",
            "persistence true",
            f"persistence_location {directory}/",
            f"log_dest file {directory}/mosquitto.log",
        ]
        if not stock_limits:  # else Mosquitto's defaults: 20 in flight, 1000 queued per client
            lines += ["max_queued_messages 0", "max_inflight_messages 0"]  # a test counts all
        if access is not None:
            lines += access
        else:
            if certs is not None:
                lines += [
                    f"cafile {certs.ca}",
                    f"certfile {certs.server_cert}",
                    f"keyfile {certs.server_key}",
                    "require_certificate true",
                    "use_identity_as_username true",
                ]
            lines.append("allow_anonymous true")
        self.config = directory / "mosquitto.conf"
        self.config.write_text("\n".join(lines) + "\n")

    def start(self, timeout: float = 10.0) -> None:
        self.process = subprocess.Popen(
            [self.executable, "-c", str(self.config)],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
        )
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                err = self.process.stderr.read().decode() if self.process.stderr else ""
                raise RuntimeError(f"mosquitto exited: {err}")
            try:
                with socket.create_connection(("127.0.0.1", self.port), timeout=0.2):
                    return
            except OSError:
                time.sleep(0.05)
        raise RuntimeError("mosquitto did not start listening")

    def __enter__(self) -> MosquittoProcess:
        """Started for a ``with`` block (a fixture's), stopped at its end."""
        self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def stop(self, timeout: float = 10.0) -> None:
        """SIGTERM: Mosquitto saves its persistence file and exits."""
        if self.process is not None and self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            self.process.wait(timeout)
        self.process = None

    def kill(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.kill()
            self.process.wait(10)
        self.process = None
