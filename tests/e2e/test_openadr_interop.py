"""Interoperability with an OpenADR 3.1 client library nobody here wrote:
ElaadNL's openadr3-client (PyPI), its BL and VEN clients, drive the VTN in a
real `gridcore serve` over HTTP (tests/interop/openadr3_client_flow.py): the
token URL is discovered through /auth/server, a VEN enrols itself, BL grants
it a group and creates a program with an event for that group and one for
another, the VEN reads exactly its event (with the granted target), another
VEN reads none, the VEN posts a report and BL reads it.

The library needs Python 3.12: it runs in a venv of its own, made with a
Python 3.12 found on PATH or through pyenv, from the exact versions in
tests/interop/openadr3-client.txt (PyPI), kept in .nox/openadr3-client. No
Python 3.12: skipped, unless GRIDCORE_REQUIRE_SERVICES=1 (CI), where it fails.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import time
from pathlib import Path

import httpx
import pytest
from tests.e2e.test_api_serve import GRIDCORE, _env, _free_port

ROOT = Path(__file__).resolve().parents[2]
REQUIREMENTS = ROOT / "tests" / "interop" / "openadr3-client.txt"
FLOW = ROOT / "tests" / "interop" / "openadr3_client_flow.py"
VENV = ROOT / ".nox" / "openadr3-client"
SECRETS = {"bl": "bl-secret-interop-0123", "ven": "ven-secret-interop-0123"}
CLIENTS = f"bl:utility:{SECRETS['bl']},ven:ven-1:{SECRETS['ven']},ven:ven-2:{SECRETS['ven']}x"


def _python312() -> str | None:
    # pyenv's own build first: its shim on PATH fails unless 3.12 is selected
    root = Path(os.environ.get("PYENV_ROOT", Path.home() / ".pyenv")) / "versions"
    for version in sorted(root.glob("3.12*"), reverse=True):
        if (version / "bin" / "python").exists():
            return str(version / "bin" / "python")
    found = shutil.which("python3.12")
    if found and "/shims/" not in found:
        return found
    return None


def _client_python() -> str:
    """The venv's Python with the pinned library, made once."""
    python = VENV / "bin" / "python"
    stamp = VENV / "requirements.txt"
    if python.exists() and stamp.exists() and stamp.read_text() == REQUIREMENTS.read_text():
        return str(python)
    base = _python312()
    if base is None:
        if os.environ.get("GRIDCORE_REQUIRE_SERVICES") == "1":
            pytest.fail("no Python 3.12 (python3.12 on PATH or pyenv) for openadr3-client")
        pytest.skip("no Python 3.12 for openadr3-client")
    shutil.rmtree(VENV, ignore_errors=True)
    subprocess.run([base, "-m", "venv", str(VENV)], check=True, timeout=120)
    subprocess.run(
        [str(python), "-m", "pip", "install", "-q", "--no-deps", "-r", str(REQUIREMENTS)],
        check=True,
        timeout=600,
    )
    shutil.copyfile(REQUIREMENTS, stamp)
    return str(python)


def test_openadr3_client_drives_the_vtn(tmp_path: Path) -> None:
    client_python = _client_python()
    env = _env(
        tmp_path,
        GRIDCORE_API_TOKENS="control:control-token-interop-0123456789",
        GRIDCORE_OPENADR_CLIENTS=CLIENTS,
    )
    subprocess.run([GRIDCORE, "migrate", "--retries", "1"], env=env, check=True, timeout=60)
    port = _free_port()
    process = subprocess.Popen([GRIDCORE, "serve", "--port", str(port)], env=env)
    base = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 30
        while True:
            try:
                if httpx.get(f"{base}/health", timeout=1).status_code == 200:
                    break
            except httpx.HTTPError:
                if time.monotonic() > deadline or process.poll() is not None:
                    raise
                time.sleep(0.2)
        client_env = {k: v for k, v in os.environ.items() if k not in {"PYTHONPATH", "VIRTUAL_ENV"}}
        # oauthlib refuses plain HTTP unless told; the test server has no TLS
        client_env["OAUTHLIB_INSECURE_TRANSPORT"] = "1"
        ran = subprocess.run(
            [
                client_python,
                str(FLOW),
                f"{base}/openadr3",
                "utility",
                SECRETS["bl"],
                "ven-1",
                SECRETS["ven"],
                "ven-2",
                SECRETS["ven"] + "x",
            ],
            env=client_env,
            capture_output=True,
            text=True,
            timeout=120,
        )
        assert ran.returncode == 0, ran.stderr
        seen = json.loads(ran.stdout.strip().splitlines()[-1])
    finally:
        process.terminate()
        process.wait(timeout=20)
    assert seen["ven_sees"] == ["for-group1"]
    assert seen["ven_sees_targets"] == ["group1"]
    assert seen["other_sees"] == []
    assert seen["report_client"] == "ven-1"
    assert seen["bl_reads"] == [seen["report_id"]]
