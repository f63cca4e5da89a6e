import pytest

from incidentops.api.v1alpha1.common import Severity, parse_duration
from incidentops.config import ConfigError, load

BASE = {"INCIDENTOPS_WEBHOOK_TOKEN": "t"}


def test_defaults() -> None:
    config = load(BASE)
    assert config.http_port == 8080
    assert config.namespaces == []
    assert config.max_body_bytes == 10 * 1024 * 1024
    assert config.correlation_window_seconds == 300
    assert config.home_namespace == "default"


def test_lists_and_mapping_override() -> None:
    config = load({**BASE, "INCIDENTOPS_NAMESPACES": "a, b", "INCIDENTOPS_SEVERITY_MAP": '{"Sev-Hot": "SEV1"}'})
    assert config.namespaces == ["a", "b"]
    assert config.home_namespace == "a"
    assert config.severity_map["sev-hot"] == Severity.SEV1
    assert config.severity_map["critical"] == Severity.SEV1


@pytest.mark.parametrize(
    ("env", "named"),
    [
        ({"INCIDENTOPS_HTTP_PORT": "eighty"}, "INCIDENTOPS_HTTP_PORT"),
        ({"INCIDENTOPS_LOG_FORMAT": "xml"}, "INCIDENTOPS_LOG_FORMAT"),
        ({"INCIDENTOPS_CORRELATION_WINDOW": "5 minutes"}, "INCIDENTOPS_CORRELATION_WINDOW"),
        ({"INCIDENTOPS_SEVERITY_MAP": "{nope"}, "INCIDENTOPS_SEVERITY_MAP"),
        ({"INCIDENTOPS_AUTO_RESOLVE": "maybe"}, "INCIDENTOPS_AUTO_RESOLVE"),
    ],
)
def test_bad_values_name_the_variable(env: dict[str, str], named: str) -> None:
    with pytest.raises(ConfigError, match=named):
        load({**BASE, **env})


def test_running_without_a_token_must_be_explicit() -> None:
    with pytest.raises(ConfigError, match="INCIDENTOPS_WEBHOOK_AUTH=none"):
        load({})
    assert load({"INCIDENTOPS_WEBHOOK_AUTH": "none"}).webhook_auth == "none"


def test_durations() -> None:
    assert parse_duration("1h30m").total_seconds() == 5400
    assert parse_duration("250ms").total_seconds() == 0.25
    with pytest.raises(ValueError, match="invalid duration"):
        parse_duration("3x")
