"""Where the operator's outbound HTTP may go: settings decide, checked after DNS, connections pinned.

The operator holds rights a runbook or policy author does not, and it stores what it is answered
in status that many can read; an outbound call is therefore a request-forgery primitive unless
its destination is checked. A destination is reachable when one of these says so:

- the allow-list of the setting (hosts, `*.domain` suffixes, IPs and CIDRs, each optionally with a
  port);
- `<service>` or `<service>.<namespace>.svc[.cluster.local]` of the object's own namespace (a bare
  name means a Service of the object's namespace, not of the operator's): the Service is read
  from the apiserver (an ExternalName or headless one is refused) and the call goes to its
  ClusterIP, so no DNS answer can redirect it;
- for notification channels, any globally routable address (Slack, PagerDuty, Twilio...).

Loopback, link-local (cloud metadata, 169.254.169.254), unspecified, multicast and reserved
addresses, the apiserver and the operator's own port are refused unless an allow-list entry
names that exact address (and, for the apiserver and the operator, that port). Every address a
name resolves to is checked, and the connection goes to the checked address (Host header and
TLS server name keep the original name), so a second DNS answer cannot swap it.
"""

from __future__ import annotations

import contextlib
import ipaddress
import re
import socket
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlsplit, urlunsplit

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address
IPNetwork = ipaddress.IPv4Network | ipaddress.IPv6Network
# (namespace, name) -> the Service object as JSON, or None when it does not exist
ServiceLookup = Callable[[str, str], dict[str, Any] | None]
Resolver = Callable[[str, int], Sequence[str]]
_NAME = re.compile(r"^(\*\.)?[a-z0-9]([-a-z0-9.]*[a-z0-9])?$")


class Refused(ValueError):
    """The destination is not allowed; `reason` is a CamelCase word for conditions and metrics."""

    def __init__(self, reason: str, message: str) -> None:
        super().__init__(message)
        self.reason = reason


@dataclass(frozen=True)
class Rule:
    """One allow-list entry: a name (exact or *.suffix) or a network, and maybe a port."""

    name: str | None = None
    network: IPNetwork | None = None
    port: int | None = None

    def allows_name(self, host: str, port: int) -> bool:
        if self.name is None or (self.port is not None and self.port != port):
            return False
        if self.name.startswith("*."):
            return host.endswith(self.name[1:]) and host != self.name[2:]
        return host == self.name

    def allows_address(self, address: IPAddress, port: int) -> bool:
        if self.network is None or (self.port is not None and self.port != port):
            return False
        return address.version == self.network.version and address in self.network

    def names_exactly(self, address: IPAddress, port: int) -> bool:
        """An entry for this very address and port: what unlocks the apiserver or the operator itself."""
        return (
            self.network is not None
            and self.port == port
            and self.network.num_addresses == 1
            and address in self.network
        )

    def __str__(self) -> str:
        where = self.name or str(self.network)
        if self.port is None:
            return where
        return f"[{where}]:{self.port}" if ":" in where else f"{where}:{self.port}"


def parse_rule(text: str) -> Rule:
    """`host`, `*.domain`, `host:443`, `10.0.0.0/8`, `10.1.2.3:8080`, `fd00::/8`, `[::1]:8080`."""
    entry = text.strip().lower()
    if not entry:
        raise ValueError("empty entry")
    port: int | None = None
    if entry.startswith("["):
        inner, _, rest = entry[1:].partition("]")
        if rest and not (rest.startswith(":") and rest[1:].isdigit()):
            raise ValueError(f"{text!r}: expected [address]:port")
        entry, port = inner, int(rest[1:]) if rest else None
    elif entry.count(":") == 1:
        entry, _, given = entry.partition(":")
        if not given.isdigit():
            raise ValueError(f"{text!r}: the port must be a number")
        port = int(given)
    if port is not None and not 0 < port < 65536:
        raise ValueError(f"{text!r}: port out of range")
    try:
        return Rule(network=ipaddress.ip_network(entry, strict=False), port=port)
    except ValueError:
        pass
    if not _NAME.match(entry) or "/" in entry:
        raise ValueError(f"{text!r}: expected a host name, *.domain, an IP address or a CIDR")
    return Rule(name=entry, port=port)


def parse_rules(entries: Sequence[str]) -> tuple[Rule, ...]:
    return tuple(parse_rule(e) for e in entries if e.strip())


@dataclass(frozen=True)
class Protected:
    """An address:port the operator itself owns or trusts (the apiserver, its own server)."""

    network: IPNetwork
    port: int
    what: str


@dataclass(frozen=True)
class Destination:
    """Where a call goes: the original URL's parts and the address it was checked against."""

    scheme: str
    host: str
    port: int
    address: str
    why: str

    def request(self, url: str) -> tuple[str, dict[str, str], dict[str, Any]]:
        """The URL to connect to (the checked address), the Host header and the TLS server name."""
        parts = urlsplit(url)
        literal = f"[{self.address}]" if ":" in self.address else self.address
        pinned = urlunsplit((parts.scheme, f"{literal}:{self.port}", parts.path or "/", parts.query, ""))
        default = 443 if self.scheme == "https" else 80
        host_header = self.host if self.port == default else f"{self.host}:{self.port}"
        if ":" in self.host:
            host_header = f"[{self.host}]" if self.port == default else f"[{self.host}]:{self.port}"
        extensions: dict[str, Any] = {}
        if self.scheme == "https" and not _is_ip(self.host):
            extensions["sni_hostname"] = self.host
        return pinned, {"Host": host_header}, extensions


def _is_ip(host: str) -> bool:
    try:
        ipaddress.ip_address(host)
    except ValueError:
        return False
    return True


def _special(address: IPAddress) -> str | None:
    """Why an address is never reached by default, or None."""
    if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is not None:
        return _special(address.ipv4_mapped)
    if address.is_loopback:
        return "a loopback address"
    if address.is_link_local:
        return "a link-local address (cloud metadata lives there)"
    if address.is_unspecified:
        return "the unspecified address"
    if address.is_multicast:
        return "a multicast address"
    if address.is_reserved:
        return "a reserved address"
    return None


def system_resolver(host: str, port: int) -> list[str]:
    """Every address the name resolves to (IPv4 and IPv6)."""
    found = socket.getaddrinfo(host, port, proto=socket.IPPROTO_TCP)
    return list(dict.fromkeys(str(info[4][0]) for info in found))


@dataclass(frozen=True)
class EgressPolicy:
    """The destinations one kind of outbound call may reach (runbook http steps, or channels)."""

    setting: str
    rules: tuple[Rule, ...] = ()
    public: bool = False
    namespace_services: bool = True
    protected: tuple[Protected, ...] = ()
    cluster_domain: str = "cluster.local"
    resolver: Resolver = field(default=system_resolver, compare=False)

    # -- the parts of a URL -----------------------------------------------------------------------

    def _parts(self, url: str) -> tuple[str, str, int]:
        try:
            parts = urlsplit(url)
            port = parts.port
        except ValueError as error:
            raise Refused("InvalidURL", f"not a URL: {error}") from None
        scheme, host = parts.scheme.lower(), (parts.hostname or "").lower().rstrip(".")
        if scheme not in ("http", "https"):
            raise Refused("InvalidURL", "only http:// and https:// URLs are called")
        if not host:
            raise Refused("InvalidURL", "the URL has no host")
        if parts.username or parts.password:
            raise Refused("InvalidURL", "credentials in a URL are not sent; use a Secret")
        return scheme, host, port or (443 if scheme == "https" else 80)

    def _service_of(self, host: str, namespace: str) -> tuple[str, str] | None:
        """(namespace, service) when the host names a Service: `name` (the object's namespace) or its DNS name."""
        if "." not in host and not _is_ip(host) and host != "localhost":
            return namespace, host
        for suffix in (".svc", f".svc.{self.cluster_domain}"):
            if host.endswith(suffix):
                labels = host[: -len(suffix)].split(".")
                if len(labels) == 2 and all(labels):
                    return labels[1], labels[0]
        return None

    def _named(self, host: str, port: int) -> bool:
        return any(rule.allows_name(host, port) for rule in self.rules)

    # -- checks -----------------------------------------------------------------------------------

    def static_refusal(self, url: str, namespace: str) -> Refused | None:
        """Why `url` can never be reached for an object of `namespace` (readiness); None: it may be."""
        try:
            _, host, port = self._parts(url)
        except Refused as refused:
            return refused
        service = self._service_of(host, namespace)
        if service is not None and self.namespace_services and not self._named(host, port):
            return self._elsewhere(host, service, namespace)
        if _is_ip(host):
            address = ipaddress.ip_address(host)
            try:
                self._check_address(address, port, named=False, host=host)
            except Refused as refused:
                return refused
            return None
        if self._named(host, port) or self.public:
            return None
        return self._not_allowed(host, port)

    def _elsewhere(self, host: str, service: tuple[str, str], namespace: str) -> Refused | None:
        """A Service of another namespace, or the apiserver's own: never one an object of `namespace` reaches."""
        if service[0] != namespace:
            return Refused(
                "OtherNamespace",
                f"{host} is a Service of namespace {service[0]}: only Services of {namespace} are called "
                f"unless {self.setting} allows the host",
            )
        if service == ("default", "kubernetes"):
            return Refused("Apiserver", "kubernetes.default is the apiserver: never called")
        return None

    def _not_allowed(self, host: str, port: int) -> Refused:
        allowed = ", ".join(str(r) for r in self.rules) or "nothing"
        own = " or a Service of the object's namespace (<service>[.<namespace>.svc])" if self.namespace_services else ""
        return Refused(
            "DestinationNotAllowed",
            f"{host}:{port} is not allowed: {self.setting} allows {allowed}{own}",
        )

    def _check_address(self, address: IPAddress, port: int, *, named: bool, host: str) -> None:
        for item in self.protected:
            if address.version == item.network.version and address in item.network and port == item.port:
                if not any(rule.names_exactly(address, port) for rule in self.rules):
                    raise Refused(
                        "ProtectedDestination",
                        f"{host} ({address}:{port}) is {item.what}: never called unless {self.setting} "
                        f"names {address}:{port}",
                    )
                return
        by_address = any(rule.allows_address(address, port) for rule in self.rules)
        special = _special(address)
        if special is not None:
            if by_address:
                return
            raise Refused(
                "ProtectedDestination",
                f"{host} ({address}) is {special}: never called unless {self.setting} names that address",
            )
        if by_address or named or (self.public and address.is_global):
            return
        raise self._not_allowed(host, port)

    def resolve(self, url: str, namespace: str, services: ServiceLookup | None = None) -> Destination:
        """The checked destination of `url` for an object of `namespace`; raises Refused."""
        scheme, host, port = self._parts(url)
        named = self._named(host, port)
        service = self._service_of(host, namespace)
        if service is not None and self.namespace_services and not named:
            return self._service(scheme, host, port, service, namespace, services)
        if _is_ip(host):
            address = ipaddress.ip_address(host)
            self._check_address(address, port, named=False, host=host)
            return Destination(scheme, host, port, str(address), "address allowed")
        if not named and not self.public:
            raise self._not_allowed(host, port)
        try:
            found = self.resolver(host, port)
        except OSError as error:
            raise Refused("UnknownHost", f"{host} does not resolve: {error.strerror or error}") from None
        if not found:
            raise Refused("UnknownHost", f"{host} does not resolve")
        for text in found:
            self._check_address(ipaddress.ip_address(text.split("%")[0]), port, named=named, host=host)
        return Destination(scheme, host, port, found[0].split("%")[0], "host allowed" if named else "public address")

    def _service(
        self,
        scheme: str,
        host: str,
        port: int,
        service: tuple[str, str],
        namespace: str,
        services: ServiceLookup | None,
    ) -> Destination:
        where, name = service
        refused = self._elsewhere(host, service, namespace)
        if refused is not None:
            raise refused
        found = services(where, name) if services is not None else None
        if found is None:
            raise Refused("ServiceNotFound", f"Service {where}/{name} does not exist")
        spec = found.get("spec") or {}
        if spec.get("type") == "ExternalName":
            raise Refused("ExternalNameService", f"Service {where}/{name} is an ExternalName (it points elsewhere)")
        cluster_ip = str(spec.get("clusterIP") or "")
        if not cluster_ip or cluster_ip == "None":
            raise Refused("HeadlessService", f"Service {where}/{name} has no ClusterIP (headless)")
        served = {int(p.get("port", 0)) for p in spec.get("ports") or []}
        if served and port not in served:
            raise Refused("PortNotServed", f"Service {where}/{name} does not serve port {port}")
        self._check_address(ipaddress.ip_address(cluster_ip), port, named=True, host=host)
        return Destination(scheme, host, port, cluster_ip, f"Service {where}/{name}")


def protected_endpoints(apiserver_url: str | None, own_port: int | None) -> tuple[Protected, ...]:
    """The apiserver (every address its URL names) and the operator's own port on this host."""
    found: list[Protected] = []
    if apiserver_url:
        parts = urlsplit(apiserver_url)
        host, port = parts.hostname, parts.port or (443 if parts.scheme == "https" else 80)
        addresses: list[str] = []
        if host:
            try:
                addresses = [host] if _is_ip(host) else system_resolver(host, port)
            except OSError:
                addresses = []
        found.extend(Protected(ipaddress.ip_network(a), port, "the Kubernetes apiserver") for a in addresses)
    if own_port:
        local = ["127.0.0.0/8", "::1/128", "0.0.0.0/32", "::/128"]
        with contextlib.suppress(OSError):
            local.extend(system_resolver(socket.gethostname(), own_port))
        found.extend(Protected(ipaddress.ip_network(a, strict=False), own_port, "the operator itself") for a in local)
    return tuple(found)
