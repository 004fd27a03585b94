"""TLS configuration mistakes are reported with the setting to fix."""

from __future__ import annotations

from pathlib import Path

import pytest

from adapters.mqtt.transport import MqttConnection, tls_context


def test_missing_ca_file_names_the_setting(tmp_path: Path) -> None:
    conn = MqttConnection(host="iot.example", ca_cert=str(tmp_path / "missing.pem"))
    with pytest.raises(ValueError, match=r"MQTT_CA_CERT=.*missing\.pem: no such file"):
        tls_context(conn)


def test_garbage_ca_file_is_refused_clearly(tmp_path: Path) -> None:
    ca = tmp_path / "ca.pem"
    ca.write_text("not a certificate")
    with pytest.raises(ValueError, match="MQTT_CA_CERT"):
        tls_context(MqttConnection(host="iot.example", ca_cert=str(ca)))


def test_client_certificate_without_key_names_both_settings() -> None:
    with pytest.raises(ValueError, match="MQTT_CLIENT_CERT and MQTT_CLIENT_KEY"):
        MqttConnection(host="iot.example", ca_cert="ca.pem", client_cert="c.pem")
