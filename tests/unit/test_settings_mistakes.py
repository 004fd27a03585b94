"""Configuration mistakes are found at start, each told in one line naming
the variable and what it may be: a partial or misspelled DB_* set never
becomes SQLite, a lookalike name points to the real one, a topic filter a
broker would refuse is refused before any broker is asked."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from adapters.sql.migrate import lasting
from entrypoints import cli
from entrypoints.container import describe_broker, describe_storage
from entrypoints.settings import (
    ConfigurationError,
    Settings,
    load_settings,
    log_level,
    lookalikes,
    start_problems,
    topic_filter_problem,
)


@pytest.fixture
def env(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> pytest.MonkeyPatch:
    """No .env and none of our variables from the machine running the tests."""
    monkeypatch.chdir(tmp_path)
    for name in list(os.environ):
        if name.startswith(("DB_", "MQTT_", "GRIDCORE_", "IOT_")) or name == "DATABASE_URL":
            monkeypatch.delenv(name)
    return monkeypatch


def mistake(env: pytest.MonkeyPatch, **variables: str) -> str:
    for name, value in variables.items():
        env.setenv(name, value)
    with pytest.raises(ConfigurationError) as raised:
        load_settings()
    assert len(raised.value.lines) == 1, raised.value.lines
    return raised.value.lines[0]


# --- storage: never a silent SQLite ---------------------------------------------


def test_db_settings_without_host_name_what_is_missing(env: pytest.MonkeyPatch) -> None:
    line = mistake(env, DB_USER="gridcore", DB_NAME="gridcore")
    assert line.startswith("DB_USER and DB_NAME are set but DB_HOST is not: ")
    assert "PostgreSQL needs DB_HOST, DB_USER and DB_NAME, or DATABASE_URL" in line


def test_db_host_alone_names_user_and_database(env: pytest.MonkeyPatch) -> None:
    line = mistake(env, DB_HOST="db.example")
    assert line.startswith("DB_HOST is set but DB_USER and DB_NAME are not")


def test_a_password_alone_is_named_but_never_shown(env: pytest.MonkeyPatch) -> None:
    line = mistake(env, DB_PASSWORD="hunter2-secret")
    assert line.startswith("DB_PASSWORD is set but DB_HOST, DB_USER and DB_NAME are not")
    assert "hunter2" not in line


def test_misspelled_db_host_with_the_rest_says_which_name_was_meant(
    env: pytest.MonkeyPatch,
) -> None:
    line = mistake(env, DB_HOTS="127.0.0.1", DB_USER="postgres", DB_NAME="x")
    assert "DB_HOST is not" in line
    assert line.endswith("DB_HOTS is not a setting: did you mean DB_HOST?")


def test_misspelled_db_variable_alone_is_an_error_not_sqlite(env: pytest.MonkeyPatch) -> None:
    line = mistake(env, DB_HOTS="127.0.0.1")
    assert line.startswith("DB_HOTS is not a setting: did you mean DB_HOST?")
    assert "SQLite is used only when no DB_* variable is set" in line


def test_misspelled_db_variable_in_the_env_file_counts_too(
    env: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    (tmp_path / ".env").write_text("DB_HOST=h\nDB_USER=u\nDB_NAME=n\nDB_PASWORD=p\n")
    assert mistake(env) == "DB_PASWORD is not a setting: did you mean DB_PASSWORD?"


def test_complete_db_settings_are_postgresql(env: pytest.MonkeyPatch) -> None:
    for name, value in {"DB_HOST": "db", "DB_USER": "u", "DB_NAME": "n"}.items():
        env.setenv(name, value)
    settings, warnings = load_settings()
    assert settings.resolved_database_url == "postgresql+psycopg://u@db:5432/n"
    assert warnings == []


def test_db_timeout_alone_keeps_sqlite(env: pytest.MonkeyPatch) -> None:
    env.setenv("DB_TIMEOUT", "5")  # SQLite waits for its write lock this long
    settings, _ = load_settings()
    assert settings.resolved_database_url.startswith("sqlite")


def test_with_database_url_a_db_lookalike_is_only_a_warning(env: pytest.MonkeyPatch) -> None:
    env.setenv("DATABASE_URL", "sqlite:///x.db")
    env.setenv("DB_HOTS", "h")
    _, warnings = load_settings()
    assert warnings == ["DB_HOTS is not a setting: did you mean DB_HOST?"]


# --- lookalike names ---------------------------------------------------------------


def test_lookalikes_point_to_the_closest_setting() -> None:
    found = lookalikes(["DB_HOTS", "mqtt_brokr", "GRIDCORE_API_TOKEN", "MQTT_HOST", "DB_DATABASE"])
    assert found == {
        "DB_HOTS": "DB_HOST",
        "MQTT_BROKR": "MQTT_BROKER",
        "GRIDCORE_API_TOKEN": "GRIDCORE_API_TOKENS",
        "MQTT_HOST": "MQTT_BROKER",
        "DB_DATABASE": "DB_NAME",
    }


def test_real_names_and_names_like_nothing_of_ours_are_left_alone() -> None:
    names = ["DB_HOST", "MQTT_TOPICS", "GRIDCORE_LOG_LEVEL", "PATH", "HOSTNAME"]
    # The test suite's own variables share the prefix without being settings.
    names += ["GRIDCORE_TEST_PG_HOST", "GRIDCORE_REQUIRE_SERVICES", "GRIDCORE_TEST_MQTT_PORT"]
    assert lookalikes(names) == {}


def test_a_broker_lookalike_is_a_warning(env: pytest.MonkeyPatch) -> None:
    env.setenv("MQTT_BROKR", "mqtt.example")
    settings, warnings = load_settings()
    assert settings.mqtt_host is None
    assert warnings == ["MQTT_BROKR is not a setting: did you mean MQTT_BROKER?"]


# --- values: the variable and what it may be ------------------------------------------


@pytest.mark.parametrize(
    ("name", "value", "line"),
    [
        ("DB_PORT", "99999", "DB_PORT=99999: must be a whole number from 1 to 65535"),
        ("MQTT_PORT", "x", "MQTT_PORT=x: must be a whole number from 1 to 65535"),
        ("DB_TIMEOUT", "-1", "DB_TIMEOUT=-1: must be a number above 0"),
        ("ACK_MAX_RETRIES", "99", "ACK_MAX_RETRIES=99: must be a whole number from 0 to 20"),
        (
            "EVENT_COMMAND_ENABLED",
            "maybe",
            "EVENT_COMMAND_ENABLED=maybe: must be true or false (or 1/0, yes/no, on/off)",
        ),
        (
            "GRIDCORE_TELEMETRY_TOPICS",
            "perven",
            "GRIDCORE_TELEMETRY_TOPICS=perven: must be one of shared, per-ven, both",
        ),
        ("SHADOW_STORE", "s3", "SHADOW_STORE=s3: must be one of local, aws"),
    ],
)
def test_a_bad_value_names_the_setting_and_what_it_may_be(
    env: pytest.MonkeyPatch, name: str, value: str, line: str
) -> None:
    assert mistake(env, **{name: value}) == line


def test_choices_are_taken_in_any_case(env: pytest.MonkeyPatch) -> None:
    env.setenv("GRIDCORE_AUTH", "Disabled")
    env.setenv("GRIDCORE_TELEMETRY_TOPICS", "PER-VEN")
    settings, _ = load_settings()
    assert (settings.gridcore_auth, settings.gridcore_telemetry_topics) == ("disabled", "per-ven")


def test_every_mistake_gets_its_own_line(env: pytest.MonkeyPatch) -> None:
    env.setenv("DB_PORT", "0")
    env.setenv("MQTT_PORT", "0")
    with pytest.raises(ConfigurationError) as raised:
        load_settings()
    assert [line.split("=")[0] for line in raised.value.lines] == ["DB_PORT", "MQTT_PORT"]


def test_log_levels_in_any_case() -> None:
    assert log_level("info") == "INFO"
    assert log_level(" Debug ") == "DEBUG"
    with pytest.raises(ConfigurationError, match="GRIDCORE_LOG_LEVEL=verbose: must be one of"):
        log_level("verbose")


# --- what the worker would find only later ----------------------------------------------


@pytest.mark.parametrize(
    "good", ["a/b", "a/+/b", "a/#", "#", "+", "$aws/things/+/shadow/update", "$share/g/ven/ack/+"]
)
def test_topic_filters_a_broker_takes(good: str) -> None:
    assert topic_filter_problem(good) is None


@pytest.mark.parametrize(
    ("bad", "why"),
    [
        ("a/#/b", "# must be a whole level and the last one"),
        ("a#", "# must be a whole level"),
        ("a+/b", "+ must be a whole level"),
        ("", "cannot be empty"),
        ("$share/g", "$share/<group>/<filter>"),
        ("$share/+/a", "$share/<group>/<filter>"),
        ("a/\x00", "NUL"),
    ],
)
def test_topic_filters_a_broker_refuses(bad: str, why: str) -> None:
    problem = topic_filter_problem(bad)
    assert problem is not None and why in problem


def test_bad_filters_are_found_at_start(env: pytest.MonkeyPatch) -> None:
    assert mistake(env, MQTT_TOPIC_STATUS="ven/+x") == (
        "MQTT_TOPIC_STATUS=ven/+x: + must be a whole level (a/+/b, not a+/b)"
    )


def test_a_bad_extra_topic_is_named_among_the_others() -> None:
    settings = Settings(_env_file=None, mqtt_topics="ok/+, a/#/b")  # type: ignore[call-arg]
    [line] = start_problems(settings)
    assert line.startswith("MQTT_TOPICS=ok/+, a/#/b: a/#/b: # must be a whole level")


def test_share_group_is_one_level() -> None:
    settings = Settings(_env_file=None, mqtt_shared_group="a/b")  # type: ignore[call-arg]
    assert start_problems(settings) == [
        "MQTT_SHARED_GROUP='a/b': must be one topic level, without /, + or #"
    ]


def test_files_that_cannot_be_read_are_named(tmp_path: Path) -> None:
    missing = tmp_path / "ca.pem"
    settings = Settings(  # type: ignore[call-arg]
        _env_file=None, mqtt_ca_cert=str(missing), gridcore_api_tokens_file=str(tmp_path)
    )
    assert start_problems(settings) == [
        f"MQTT_CA_CERT={missing}: cannot read it (No such file or directory)",
        f"GRIDCORE_API_TOKENS_FILE={tmp_path}: cannot read it (Is a directory)",
    ]


# --- what each process says it uses --------------------------------------------------------


def test_storage_is_described_without_the_password() -> None:
    settings = Settings(  # type: ignore[call-arg]
        _env_file=None, db_host="db", db_user="u", db_password="secret", db_name="grid"
    )
    assert describe_storage(settings) == "PostgreSQL at db:5432/grid"
    sqlite = Settings(_env_file=None, database_url="sqlite:///./x.db")  # type: ignore[call-arg]
    assert describe_storage(sqlite) == "SQLite at ./x.db"


def test_broker_is_described_with_tls_and_client_id() -> None:
    settings = Settings(_env_file=None, mqtt_broker="mq", mqtt_port=8883)  # type: ignore[call-arg]
    assert describe_broker(settings, "w-1") == "MQTT mq:8883, TLS off, client id w-1"
    memory = Settings(_env_file=None)  # type: ignore[call-arg]
    assert describe_broker(memory, None) == "the in-memory broker (inside this process)"


# --- migrate: what waiting will not fix ------------------------------------------------------


@pytest.mark.parametrize(
    "reason",
    [
        "Connection refused",
        "connection timeout expired",
        "timed out",
        "FATAL:  the database system is starting up",
    ],
)
def test_a_database_still_starting_is_waited_for(reason: str) -> None:
    assert lasting(reason) is None


@pytest.mark.parametrize(
    ("reason", "advice"),
    [
        ('FATAL:  role "nobody" does not exist', "DB_USER"),
        ('FATAL:  database "nope" does not exist', "createdb"),
        ("failed to resolve host 'nonexistent.invalid'", "DB_HOST"),
        ('FATAL:  password authentication failed for user "u"', "DB_PASSWORD"),
        ("unable to open database file", "directory exists"),
        ("something nobody foresaw", "DATABASE_URL or DB_*"),
    ],
)
def test_what_waiting_will_not_fix_says_what_to_check(reason: str, advice: str) -> None:
    found = lasting(reason)
    assert found is not None and advice in found


# --- options -------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("argv", "line"),
    [
        (["serve", "--port", "99999"], "argument --port: 99999: must be a whole number from 1"),
        (["demo", "--port", "http"], "argument --port: http: must be a whole number from 1"),
        (["ven", "--interval", "0"], "argument --interval: 0: must be a number of seconds above"),
        (["ven", "--reject-fraction", "2"], "argument --reject-fraction: 2: must be a number"),
        (["migrate", "--retries", "0"], "argument --retries: 0: must be a whole number of at"),
        (["--log-level", "loud", "migrate"], "argument --log-level: must be one of debug, info"),
    ],
)
def test_a_bad_option_is_one_line_and_exit_2(
    argv: list[str], line: str, capsys: pytest.CaptureFixture[str]
) -> None:
    with pytest.raises(SystemExit) as exited:
        cli.build_parser().parse_args(argv)
    assert exited.value.code == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and line in err


def test_log_level_option_in_any_case() -> None:
    assert cli.build_parser().parse_args(["--log-level", "info", "worker"]).log_level == "INFO"
