"""Interoperability with OpenADR 3.1 client libraries nobody here wrote,
each driving the VTN in a real `gridcore serve` over HTTP:

- ElaadNL's openadr3-client (tests/interop/openadr3_client_flow.py): the
  token URL is discovered through /auth/server, a VEN enrols itself, BL
  grants it a group and creates a program with an event for that group and
  one for another, the VEN reads exactly its event (with the granted
  target), another VEN reads none, the VEN posts a report and BL reads it.
- python-oa3-client over the openadr3 library (tests/interop/oa3_client_flow.py):
  the same, and the VEN subscribes with the library's webhook receiver and
  receives the notification of its event (and only of its event) with the
  bearer token it gave.

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
import sys
from pathlib import Path
from typing import Any

import pytest
from tests.e2e.test_api_serve import _env, _serving

ROOT = Path(__file__).resolve().parents[2]
REQUIREMENTS = ROOT / "tests" / "interop" / "openadr3-client.txt"
FLOW = ROOT / "tests" / "interop" / "openadr3_client_flow.py"
VENV = ROOT / ".nox" / "openadr3-client"
OA3_REQUIREMENTS = ROOT / "tests" / "interop" / "python-oa3-client.txt"
OA3_FLOW = ROOT / "tests" / "interop" / "oa3_client_flow.py"
OA3_VENV = ROOT / ".nox" / "python-oa3-client"
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


def _client_python(
    venv: Path = VENV, requirements: Path = REQUIREMENTS, base: str | None = None
) -> str:
    """The venv's Python with the pinned library, made once (from ``base``,
    else a Python 3.12, which openadr3-client needs)."""
    python = venv / "bin" / "python"
    stamp = venv / "requirements.txt"
    if python.exists() and stamp.exists() and stamp.read_text() == requirements.read_text():
        return str(python)
    base = base or _python312()
    if base is None:
        if os.environ.get("GRIDCORE_REQUIRE_SERVICES") == "1":
            pytest.fail("no Python 3.12 (python3.12 on PATH or pyenv) for openadr3-client")
        pytest.skip("no Python 3.12 for openadr3-client")
    shutil.rmtree(venv, ignore_errors=True)
    subprocess.run([base, "-m", "venv", str(venv)], check=True, timeout=120)
    subprocess.run(
        [str(python), "-m", "pip", "install", "-q", "--no-deps", "-r", str(requirements)],
        check=True,
        timeout=600,
    )
    shutil.copyfile(requirements, stamp)
    return str(python)


def test_openadr3_client_drives_the_vtn(tmp_path: Path) -> None:
    seen = _run_flow(tmp_path, _client_python(), FLOW)
    assert seen["ven_sees"] == ["for-group1"]
    assert seen["ven_sees_targets"] == ["group1"]
    assert seen["other_sees"] == []
    assert seen["report_client"] == "ven-1"
    assert seen["bl_reads"] == [seen["report_id"]]


def test_python_oa3_client_drives_the_vtn_and_receives_its_notification(tmp_path: Path) -> None:
    # python-oa3-client supports Python >= 3.10: the tests' own makes its venv
    client_python = _client_python(OA3_VENV, OA3_REQUIREMENTS, sys.executable)
    seen = _run_flow(tmp_path, client_python, OA3_FLOW)
    assert seen["notifiers"] == {"WEBHOOK": True}
    # exactly one notification: its event's CREATE, not the other group's
    assert seen["notified"] == 1
    assert seen["notification_type"] == "EVENT"
    assert seen["notification_operation"] == "CREATE"
    assert seen["notification_event"] == "for-group1"
    assert seen["notification_targets"] == ["group1"]
    assert seen["ven_sees"] == ["for-group1"]
    assert seen["ven_sees_targets"] == ["group1"]
    assert seen["other_sees"] == ["for-group2"]
    assert seen["report_client"] == "ven-1"
    assert seen["bl_reads"] == [seen["report_id"]]


def _run_flow(tmp_path: Path, client_python: str, flow: Path) -> dict[str, Any]:
    env = _env(
        tmp_path,
        GRIDCORE_API_TOKENS="control:control-token-interop-0123456789",
        GRIDCORE_OPENADR_CLIENTS=CLIENTS,
    )
    with _serving(tmp_path, env=env) as (base, _):
        client_env = {k: v for k, v in os.environ.items() if k not in {"PYTHONPATH", "VIRTUAL_ENV"}}
        # oauthlib refuses plain HTTP unless told; the test server has no TLS
        client_env["OAUTHLIB_INSECURE_TRANSPORT"] = "1"
        ran = subprocess.run(
            [
                client_python,
                str(flow),
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
    return seen
