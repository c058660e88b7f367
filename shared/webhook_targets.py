"""Where a webhook may go: never inside (loopback, private, link-local, CGNAT, multicast,
reserved, unspecified, cloud metadata), unless an operator allowlists the network.

The API checks the URL as written (a literal internal address is refused at submission);
the worker checks every address the host resolves to at send time and connects to the
address it checked, so DNS can not answer differently between the check and the connect.
"""

from __future__ import annotations

import ipaddress
import re
import socket
from collections.abc import Callable, Sequence
from urllib.parse import urlsplit

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address
IPNetwork = ipaddress.IPv4Network | ipaddress.IPv6Network
Resolver = Callable[[str, int], list[str]]

_INTERNAL_NAMES = frozenset({"localhost", "metadata.google.internal", "metadata.goog", "metadata"})
# What libc's inet_aton reads as IPv4: 1 to 4 parts, decimal, octal (leading 0) or hex (0x).
_INET_ATON_FORM = re.compile(r"^(0x[0-9a-f]*|[0-9]+)(\.(0x[0-9a-f]*|[0-9]+)){0,3}\.?$", re.IGNORECASE)


class RefusedTarget(ValueError):
    """A webhook URL or address that must not be reached; the message says why."""


def parse_networks(text: str) -> tuple[IPNetwork, ...]:
    """'10.0.0.0/8, fd00::/8' -> networks (the SEQSERVE_WEBHOOK_ALLOW_NETWORKS format)."""
    return tuple(ipaddress.ip_network(part.strip(), strict=False) for part in text.split(",") if part.strip())


def literal_address(host: str) -> IPAddress | None:
    """The address a host written as an IP literal means, in any spelling a browser or libc
    accepts (2130706433, 0x7f.1, 017700000001, 127.1, [::ffff:127.0.0.1]); None for a name."""
    host = host.strip("[]")
    try:
        return ipaddress.ip_address(host.split("%", 1)[0])
    except ValueError:
        pass
    if _INET_ATON_FORM.match(host):
        try:
            return ipaddress.IPv4Address(socket.inet_aton(host.rstrip(".")))
        except OSError:
            return None
    return None


def internal_reason(address: IPAddress, allow: Sequence[IPNetwork] = ()) -> str | None:
    """Why `address` is internal, or None when a webhook may reach it."""
    if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is not None:
        address = address.ipv4_mapped
    if any(address in network for network in allow if network.version == address.version):
        return None
    kinds = {"loopback": address.is_loopback, "link-local": address.is_link_local, "multicast": address.is_multicast,
             "unspecified": address.is_unspecified, "private": address.is_private, "reserved": address.is_reserved,
             # Not global also covers CGNAT 100.64/10 and the documentation ranges.
             "not globally routable": not address.is_global}
    kind = next((name for name, flagged in kinds.items() if flagged), None)
    return None if kind is None else f"{address} is an internal address ({kind})"


def check_url(url: str, allow: Sequence[IPNetwork] = ()) -> None:
    """Raise RefusedTarget for a URL that is not http(s), carries credentials, or names an
    internal host or literal address."""
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https"):
        raise RefusedTarget("webhook URLs must be http or https")
    if parts.username is not None or parts.password is not None:
        raise RefusedTarget("webhook URLs must not carry credentials (user:password@)")
    host = (parts.hostname or "").rstrip(".").lower()
    if not host:
        raise RefusedTarget("webhook URL has no host")
    address = literal_address(host)
    if address is None:
        if host in _INTERNAL_NAMES or host.endswith(".localhost") or host.endswith(".internal"):
            raise RefusedTarget(f"'{host}' names an internal host")
        return
    reason = internal_reason(address, allow)
    if reason is not None:
        raise RefusedTarget(reason)


def system_resolver(host: str, port: int) -> list[str]:
    """Every address `host` resolves to (what libc's getaddrinfo answers)."""
    infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)
    return list(dict.fromkeys(str(info[4][0]) for info in infos))


def resolve_checked(host: str, port: int, allow: Sequence[IPNetwork], resolve: Resolver = system_resolver) -> str:
    """The address to connect to: refused (RefusedTarget) when ANY address the host resolves
    to is internal, since a client may pick any of them."""
    address = literal_address(host)
    addresses = [str(address)] if address is not None else resolve(host, port)
    if not addresses:
        raise RefusedTarget(f"'{host}' resolves to no address")
    for text in addresses:
        reason = internal_reason(ipaddress.ip_address(text.split("%", 1)[0]), allow)
        if reason is not None:
            raise RefusedTarget(f"'{host}' resolves to {text}: {reason}")
    return addresses[0]
