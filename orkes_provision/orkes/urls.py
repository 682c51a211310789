"""Server URL normalisation: the one place a user's URL becomes the API base URL.

Every SDK but Java and JS uses ``CONDUCTOR_SERVER_URL`` verbatim and needs it to end in ``/api``
(a Python worker pointed at a URL without ``/api`` silently turns auth off), so the tool keeps
exactly one form everywhere: ``scheme://host[:port][/prefix]/api``.
"""

from __future__ import annotations

import ipaddress
import socket
import urllib.parse

from orkes_provision.errors import UsageError

_LOOPBACK_NAMES = frozenset({"localhost", "localhost.localdomain", "ip6-localhost", "ip6-loopback"})


def is_loopback_host(host: str) -> bool:
    """True for a loopback IP address, and for a loopback name (``localhost``, its subdomains) that
    resolves to loopback addresses only.

    A name is not trusted for what it says: ``*.localhost`` is sent to DNS by many resolvers, and
    any name can be mapped anywhere, so the answer is what the resolver returns now.
    """
    host = host.strip("[]").lower().rstrip(".")
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        pass
    if host not in _LOOPBACK_NAMES and not host.endswith(".localhost"):
        return False
    try:
        addresses = {str(info[4][0]) for info in socket.getaddrinfo(host, None, proto=socket.IPPROTO_TCP)}
    except (OSError, UnicodeError):
        return False
    return bool(addresses) and all(_is_loopback_address(address) for address in addresses)


def is_loopback_address(address: str) -> bool:
    """True for a loopback IP address (a peer's address, never a name)."""
    return _is_loopback_address(address)


def _is_loopback_address(address: str) -> bool:
    try:
        return ipaddress.ip_address(address.split("%", 1)[0]).is_loopback
    except ValueError:
        return False


def normalize_server_url(url: str, *, insecure_http: bool = False) -> str:
    """Return ``scheme://host[:port][/prefix]/api`` for a URL given with or without ``/api``.

    Trailing slashes, surrounding whitespace, a query and a fragment are dropped; scheme and
    host are lower-cased. Raises ``UsageError`` for something that is not an http(s) URL, and
    for plain ``http://`` to a host other than loopback unless ``insecure_http`` is set
    (the key secret and every token would cross the network in clear).
    """
    raw = url.strip()
    shown = _shown(raw)
    if not raw:
        raise UsageError("the server URL is empty",
                         "give --server https://HOST/api or set CONDUCTOR_SERVER_URL")
    parts = urllib.parse.urlsplit(raw)
    scheme = parts.scheme.lower()
    if scheme not in ("http", "https") or not parts.netloc:
        raise UsageError(f"not a server URL: {shown}",
                         "write it as https://HOST[:PORT]/api, for example https://developer.orkescloud.com/api")
    if parts.username is not None or parts.password is not None:
        raise UsageError("the server URL must not carry a user name or password",
                         "remove the 'user:password@' part; credentials come from the key id and secret")
    try:
        host = parts.hostname or ""
        port = parts.port
    except ValueError:
        raise UsageError(f"not a server URL: {shown} (bad port)",
                         "write it as https://HOST[:PORT]/api") from None
    if not host or any(ch.isspace() for ch in host):
        raise UsageError(f"not a server URL: {shown}", "write it as https://HOST[:PORT]/api")
    if scheme == "http" and not insecure_http and not is_loopback_host(host):
        why = " (it does not resolve to loopback addresses only)" if _looks_local(host) else ""
        raise UsageError(f"refusing plain http:// to {host}{why}: the key secret and tokens would travel "
                         "unencrypted", "use https://, or pass --insecure-http if this network is trusted")
    netloc = f"[{host}]" if ":" in host else host
    if port is not None:
        netloc = f"{netloc}:{port}"
    path = parts.path.rstrip("/")
    if path.endswith("/api"):
        path = path[: -len("/api")]
    return f"{scheme}://{netloc}{path}/api"


def _looks_local(host: str) -> bool:
    host = host.lower().rstrip(".")
    return host in _LOOPBACK_NAMES or host.endswith(".localhost")


def server_root(api_url: str) -> str:
    """The URL without its trailing ``/api`` (where ``/health`` and the UI live)."""
    return api_url[: -len("/api")] if api_url.endswith("/api") else api_url.rstrip("/")


def _shown(raw: str) -> str:
    # Quote what the user typed, but never echo anything that looks like embedded credentials.
    parts = urllib.parse.urlsplit(raw) if "://" in raw else None
    if parts is not None and "@" in parts.netloc:
        return repr(parts._replace(netloc=parts.netloc.rsplit("@", 1)[1]).geturl())
    return repr(raw[:200])
