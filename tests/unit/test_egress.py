"""Where outbound calls may go: the allow-list, the own-namespace Services, and what is never reached."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import pytest

from incidentops.egress import EgressPolicy, Protected, Refused, parse_rule, protected_endpoints


def resolver(table: dict[str, Sequence[str]]) -> Any:
    def resolve(host: str, port: int) -> Sequence[str]:
        if host not in table:
            raise OSError(-2, "Name or service not known")
        return table[host]

    return resolve


SERVICES: dict[tuple[str, str], dict[str, Any]] = {
    ("shop", "cache"): {"spec": {"type": "ClusterIP", "clusterIP": "10.96.0.20", "ports": [{"port": 80}]}},
    ("shop", "outside"): {"spec": {"type": "ExternalName", "externalName": "metadata.google.internal"}},
    ("shop", "headless"): {"spec": {"clusterIP": "None", "ports": [{"port": 80}]}},
    ("payments", "db"): {"spec": {"type": "ClusterIP", "clusterIP": "10.96.0.30", "ports": [{"port": 80}]}},
    ("default", "kubernetes"): {"spec": {"type": "ClusterIP", "clusterIP": "10.96.0.1", "ports": [{"port": 443}]}},
}


def lookup(namespace: str, name: str) -> dict[str, Any] | None:
    return SERVICES.get((namespace, name))


def runbooks(*allow: str, table: dict[str, Sequence[str]] | None = None) -> EgressPolicy:
    protected = (Protected(parse_rule("127.0.0.1").network, 6443, "the Kubernetes apiserver"),)  # type: ignore[arg-type]
    return EgressPolicy(
        "INCIDENTOPS_HTTP_ALLOW",
        tuple(parse_rule(a) for a in allow),
        public=False,
        protected=protected,
        resolver=resolver(table or {}),
    )


def refusal(policy: EgressPolicy, url: str, namespace: str = "shop") -> str:
    with pytest.raises(Refused) as refused:
        policy.resolve(url, namespace, lookup)
    return refused.value.reason


def test_by_default_only_services_of_the_incidents_namespace_are_reached_at_their_cluster_ip() -> None:
    policy = runbooks()
    found = policy.resolve("http://cache.shop.svc/flush", "shop", lookup)
    assert (found.address, found.port, found.host) == ("10.96.0.20", 80, "cache.shop.svc")
    assert policy.resolve("http://cache.shop.svc.cluster.local/x", "shop", lookup).address == "10.96.0.20"
    assert refusal(policy, "http://db.payments.svc/") == "OtherNamespace"
    assert refusal(policy, "http://outside.shop.svc/") == "ExternalNameService"
    assert refusal(policy, "http://headless.shop.svc/") == "HeadlessService"
    assert refusal(policy, "http://missing.shop.svc/") == "ServiceNotFound"
    assert refusal(policy, "http://cache.shop.svc:8080/") == "PortNotServed"
    assert refusal(policy, "https://kubernetes.default.svc/api", "default") == "Apiserver"
    assert refusal(policy, "http://example.com/") == "DestinationNotAllowed"


@pytest.mark.parametrize(
    ("url", "reason"),
    [
        ("http://127.0.0.1:59219/api/v2/status", "ProtectedDestination"),  # Alertmanager's config, once
        ("http://[::1]:9093/", "ProtectedDestination"),
        ("http://169.254.169.254/latest/meta-data/", "ProtectedDestination"),  # cloud metadata
        ("http://[::ffff:169.254.169.254]/", "ProtectedDestination"),
        ("http://0.0.0.0:8080/", "ProtectedDestination"),
        ("http://10.0.0.5/", "DestinationNotAllowed"),
        ("file:///etc/passwd", "InvalidURL"),
        ("http://user:pw@cache.shop.svc/", "InvalidURL"),
    ],
)
def test_loopback_link_local_and_the_unlisted_are_refused(url: str, reason: str) -> None:
    assert refusal(runbooks("*.example.com"), url) == reason


def test_an_allowed_name_is_checked_on_every_address_it_resolves_to() -> None:
    table = {"cache.example.com": ["203.0.113.7"], "evil.example.com": ["203.0.113.8", "169.254.169.254"]}
    policy = runbooks("*.example.com", "10.0.0.0/8:8080", table=table)
    assert policy.resolve("https://cache.example.com/x", "shop", lookup).address == "203.0.113.7"
    # A name the list allows still cannot lead to the metadata service (DNS rebinding, or a mix of answers).
    assert refusal(policy, "http://evil.example.com/") == "ProtectedDestination"
    assert refusal(policy, "http://nowhere.example.com/") == "UnknownHost"
    assert policy.resolve("http://10.1.2.3:8080/", "shop", lookup).address == "10.1.2.3"
    assert refusal(policy, "http://10.1.2.3:9090/") == "DestinationNotAllowed"  # the entry names its port


def test_loopback_and_the_apiserver_need_an_entry_naming_them_exactly() -> None:
    assert runbooks("127.0.0.1").resolve("http://127.0.0.1:59219/", "shop", lookup).address == "127.0.0.1"
    # 127.0.0.1 allows loopback, but the apiserver on it only when its port is named too.
    assert refusal(runbooks("127.0.0.1"), "https://127.0.0.1:6443/api") == "ProtectedDestination"
    assert runbooks("127.0.0.1:6443").resolve("https://127.0.0.1:6443/", "shop", lookup).port == 6443
    # A name resolving to loopback is refused although the name is allowed.
    policy = runbooks("cache.example.com", table={"cache.example.com": ["127.0.0.1"]})
    assert refusal(policy, "http://cache.example.com/") == "ProtectedDestination"


def test_channels_reach_public_addresses_and_what_their_list_adds() -> None:
    table = {"hooks.slack.com": ["34.120.0.4"], "tickets.corp": ["10.2.3.4"], "sneaky.test": ["127.0.0.1"]}
    policy = EgressPolicy(
        "INCIDENTOPS_NOTIFY_ALLOW", (parse_rule("tickets.corp"),), public=True, resolver=resolver(table)
    )
    assert policy.resolve("https://hooks.slack.com/services/T/B/C", "shop", lookup).address == "34.120.0.4"
    assert policy.resolve("https://tickets.corp/hook", "shop", lookup).address == "10.2.3.4"
    with pytest.raises(Refused, match="loopback"):
        policy.resolve("http://sneaky.test/", "shop", lookup)
    with pytest.raises(Refused, match="INCIDENTOPS_NOTIFY_ALLOW"):
        policy.resolve("http://10.9.9.9/", "shop", lookup)


def test_the_connection_goes_to_the_checked_address_with_the_original_name() -> None:
    policy = runbooks("cache.example.com", table={"cache.example.com": ["203.0.113.7"]})
    destination = policy.resolve("https://cache.example.com:8443/flush?all=1", "shop", lookup)
    url, headers, extensions = destination.request("https://cache.example.com:8443/flush?all=1")
    assert url == "https://203.0.113.7:8443/flush?all=1"
    assert headers == {"Host": "cache.example.com:8443"}
    assert extensions == {"sni_hostname": "cache.example.com"}


def test_readiness_knows_what_can_never_be_reached_without_resolving_anything() -> None:
    policy = runbooks("*.example.com")
    assert policy.static_refusal("http://cache.shop.svc/", "shop") is None
    assert policy.static_refusal("https://api.example.com/", "shop") is None
    for url, reason in [
        ("http://127.0.0.1:59219/", "ProtectedDestination"),
        ("http://db.payments.svc/", "OtherNamespace"),
        ("http://example.org/", "DestinationNotAllowed"),
    ]:
        found = policy.static_refusal(url, "shop")
        assert found is not None and found.reason == reason, url


@pytest.mark.parametrize("entry", ["", "host:port", "a b", "[::1]x", "10.0.0.0/8:99999", "http://x"])
def test_bad_entries_are_refused(entry: str) -> None:
    with pytest.raises(ValueError):
        parse_rule(entry)


def test_the_operators_own_port_is_protected() -> None:
    protected = protected_endpoints("https://127.0.0.1:6443", 8080)
    policy = EgressPolicy("X", (parse_rule("127.0.0.0/8"),), protected=protected)
    assert policy.resolve("http://127.0.0.1:9093/", "shop", lookup).port == 9093
    with pytest.raises(Refused, match="the operator itself"):
        policy.resolve("http://127.0.0.1:8080/metrics", "shop", lookup)
    with pytest.raises(Refused, match="apiserver"):
        policy.resolve("https://127.0.0.1:6443/api/v1/secrets", "shop", lookup)


def test_a_bare_name_is_a_service_of_the_objects_namespace_not_of_the_operators() -> None:
    policy = runbooks()
    assert policy.resolve("http://cache/flush", "shop", lookup).address == "10.96.0.20"
    assert refusal(policy, "http://db/", "shop") == "ServiceNotFound"  # db lives in payments
    assert refusal(policy, "http://localhost:9093/") == "DestinationNotAllowed"
    assert policy.static_refusal("http://cache-admin:8080/admin/cache/clear", "shop") is None
