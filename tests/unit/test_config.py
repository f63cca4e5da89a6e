import pytest

from incidentops.api.v1alpha1.common import Severity, parse_duration, severity_aliases
from incidentops.config import ConfigError, load, severity_map, unknown_settings

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
        ({"INCIDENTOPS_PROMETHEUS_URL": "prometheus:9090"}, "INCIDENTOPS_PROMETHEUS_URL"),
        ({"INCIDENTOPS_PROMETHEUS_URL": "localhost:9090"}, "INCIDENTOPS_PROMETHEUS_URL"),
        ({"INCIDENTOPS_SEVERITY_MAP": '{"urgent": "SEV9"}'}, "INCIDENTOPS_SEVERITY_MAP"),
        ({"INCIDENTOPS_HTTP_ALLOW": "cache.example.com:http"}, "INCIDENTOPS_HTTP_ALLOW"),
        ({"INCIDENTOPS_NOTIFY_ALLOW": "10.0.0.0/8:0"}, "INCIDENTOPS_NOTIFY_ALLOW"),
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


def test_a_url_without_a_scheme_is_refused_with_an_example() -> None:
    with pytest.raises(ConfigError, match="expected a URL such as http://prometheus:9090"):
        load({**BASE, "INCIDENTOPS_PROMETHEUS_URL": "prometheus:9090"})
    assert load({**BASE, "INCIDENTOPS_PROMETHEUS_URL": "https://prom.example.com"}).prometheus_url


def test_unknown_settings_are_named_with_the_closest_real_one() -> None:
    env = {
        **BASE,
        "INCIDENTOPS_PROMETHEUS_ULR": "http://p:9090",
        "INCIDENTOPS_NOTHING_LIKE_IT": "x",
        "INCIDENTOPS_CACHE": "/tmp/c",  # test tooling: not the operator's, no warning
        "INCIDENTOPS_RECENT_ALERTS": "3",
        "OTHER": "y",
    }
    warnings = unknown_settings(env)
    assert warnings == [
        "INCIDENTOPS_NOTHING_LIKE_IT is not a setting of incidentops and is ignored",
        "INCIDENTOPS_PROMETHEUS_ULR is not a setting of incidentops and is ignored; "
        "did you mean INCIDENTOPS_PROMETHEUS_URL?",
    ]
    assert load(env).recent_alerts == 3


def test_the_severity_table_is_one_and_says_what_p1_is() -> None:
    table = load(BASE).severity_map
    assert [table[p] for p in ("p0", "p1", "p2", "p3", "p4", "p5")] == [
        Severity.SEV1, Severity.SEV1, Severity.SEV2, Severity.SEV3, Severity.SEV4, Severity.SEV5,
    ]  # fmt: skip
    assert severity_aliases().startswith("SEV1: sev1, p0, p1, critical")
    assert severity_map({"INCIDENTOPS_SEVERITY_MAP": '{"P1": "sev2"}'})["p1"] == Severity.SEV2
