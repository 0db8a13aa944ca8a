"""Network addresses in the configuration: ``host:port`` listeners, Redis URLs and Ray addresses.

Each kind is a pydantic field type (:data:`HostPort`, :data:`RedisURL`, :data:`RayAddress`), so a bad
address is refused when the configuration loads, naming the field path (``shards.nodes[0].address: not
a host:port address: 'shard-0'``): ``shardmon check-config`` and every service's ``--check`` see the
same errors. The ``check_*`` functions are the same checks for values that come from elsewhere
(command-line flags); they raise ``ValueError``. :func:`redacted_url` hides the password of a URL in
messages and logs.
"""

from __future__ import annotations

import re
import urllib.parse
from typing import Annotated

from pydantic import AfterValidator

_HOST_PORT = re.compile(r"^(?:\[[0-9A-Fa-f:.]+\]|[A-Za-z0-9_.-]+):(\d{1,5})$")


def check_host_port(value: str) -> str:
    """``value`` if it is a ``host:port`` (port 1-65535; an IPv6 host in brackets); else ValueError."""
    m = _HOST_PORT.match(value or "")
    if m is None or not 0 < int(m.group(1)) < 65536:
        raise ValueError(f"not a host:port address: {value!r}")
    return value


def check_redis_url(value: str) -> str:
    """``value`` if it is a ``redis://``, ``rediss://`` (TLS) or ``unix://`` URL with a host; else
    ValueError (quoting the URL without its password)."""
    try:
        url = urllib.parse.urlparse(value)
        ok = url.scheme in ("redis", "rediss", "unix") and (url.scheme == "unix" or bool(url.hostname))
    except ValueError:  # e.g. an unclosed [ of an IPv6 host
        ok = False
    if not ok:
        raise ValueError(f"not a redis:// URL: {redacted_url(value)!r}")
    return value


def check_ray_address(value: str) -> str:
    """``value`` if it is ``local``, a Ray head's GCS ``host:port`` or a Ray Client ``ray://host:port``."""
    if value != "local":
        check_host_port(value.removeprefix("ray://"))
    return value


#: ``host:port`` to listen on or connect to.
HostPort = Annotated[str, AfterValidator(check_host_port)]
#: A Redis URL (``redis://``, ``rediss://``, ``unix://``).
RedisURL = Annotated[str, AfterValidator(check_redis_url)]
#: ``local`` (a Ray of the process's own), ``host:port`` (a head's GCS) or ``ray://host:port`` (Ray Client).
RayAddress = Annotated[str, AfterValidator(check_ray_address)]


def redacted_url(url: str, mask: str = "xxxxx") -> str:
    """``url`` with the password of its user-info, if any, replaced by ``mask`` (``xxxxx`` as Go's
    ``URL.Redacted``, for messages and logs; ``<secret>`` in the configuration the status API shows).
    Text that is not a ``scheme://`` URL comes back unchanged."""
    scheme, sep, rest = url.partition("://")
    if not sep or not scheme.replace("+", "").replace("-", "").replace(".", "").isalnum():
        return url
    netloc, slash, tail = rest.partition("/")
    userinfo, at, hostport = netloc.rpartition("@")
    if not at or ":" not in userinfo:
        return url
    return f"{scheme}://{userinfo.split(':', 1)[0]}:{mask}@{hostport}{slash}{tail}"


def split_url_password(url: str) -> tuple[str, str | None]:
    """``url`` without the password of its user-info, and that password (percent-decoded), if any."""
    scheme, sep, rest = url.partition("://")
    if not sep:
        return url, None
    netloc, slash, tail = rest.partition("/")
    userinfo, at, hostport = netloc.rpartition("@")
    if not at or ":" not in userinfo:
        return url, None
    user, password = userinfo.split(":", 1)
    return f"{scheme}://{user + '@' if user else ''}{hostport}{slash}{tail}", urllib.parse.unquote(password)
