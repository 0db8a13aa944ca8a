"""The web configuration file: TLS and basic authentication for every listener, in Prometheus's format.

The file named by the top-level ``web_config_file:`` key has exactly the format of Prometheus 2.42's
``--web.config.file`` (exporter-toolkit v0.8.2, the version Prometheus 2.42 uses)::

    tls_server_config:            # TLS on every HTTP and gRPC listener
      cert_file: server.crt       # relative paths are relative to this file's folder
      key_file: server.key
      client_auth_type: RequireAndVerifyClientCert   # mTLS
      client_ca_file: ca.crt
      min_version: TLS12          # TLS10..TLS13; default TLS12 .. TLS13
      max_version: TLS13
      cipher_suites: [...]        # Go's names; TLS <= 1.2 only, as in Go
      curve_preferences: [...]    # CurveP256, CurveP384, CurveP521, X25519
      prefer_server_cipher_suites: true
    http_server_config:
      http2: true                 # accepted; Shardmon's HTTP listeners speak HTTP/1.1
      headers: {X-Frame-Options: deny, ...}   # only the five headers exporter-toolkit allows
    basic_auth_users:             # user: bcrypt hash; none: no authentication
      alice: $2y$10$...

It is checked as ``promtool check web-config`` checks it (``web.Validate``), in its order and with its
messages: unknown fields, the allowed headers and their values, every password a bcrypt hash (its
cost read as Go's ``bcrypt.Cost`` reads it), ``cert_file`` and ``key_file`` both given and loadable, the
client CA file readable, a known ``client_auth_type``, and no client CA without a client auth policy.

Where Python's ``ssl`` cannot do what Go's ``crypto/tls`` does (all documented in the README's Security
section): ``RequestClientCert`` asks no certificate (Python cannot ask one without verifying it; the
certificate would not be used anyway); ``RequireAnyClientCert`` requires a certificate that verifies
against ``client_ca_file`` (Python cannot require one without verifying it); ``curve_preferences``
restricts the key exchange to its first curve (Python sets one); TLS 1.3 cipher suites are Go's and
OpenSSL's defaults (as in Go, they cannot be chosen). The file is read once when a process starts
(exporter-toolkit reads it on every request): a changed file or certificate takes effect at restart.
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import concurrent.futures
import functools
import os
import random
import ssl
from pathlib import Path
from typing import Any, Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, SecretStr, ValidationError, field_validator

from shardmon.model.errors import ConfigError
from shardmon.model.yaml_strict import StrictSafeLoader

TLSVersionName = Literal["TLS10", "TLS11", "TLS12", "TLS13"]
TLS_VERSIONS = {
    "TLS10": ssl.TLSVersion.TLSv1,
    "TLS11": ssl.TLSVersion.TLSv1_1,
    "TLS12": ssl.TLSVersion.TLSv1_2,
    "TLS13": ssl.TLSVersion.TLSv1_3,
}

ClientAuthType = Literal[
    "", "NoClientCert", "RequestClientCert", "RequireAnyClientCert", "RequireClientCert",
    "VerifyClientCertIfGiven", "RequireAndVerifyClientCert",
]

#: Go's ``tls.CipherSuites()`` (Go 1.19, as Debian's Prometheus 2.42 is built) -> OpenSSL's name; None
#: for the TLS 1.3 suites, which Go accepts in the list but cannot choose (nor can Python).
CIPHER_SUITES: dict[str, str | None] = {
    "TLS_RSA_WITH_AES_128_CBC_SHA": "AES128-SHA",
    "TLS_RSA_WITH_AES_256_CBC_SHA": "AES256-SHA",
    "TLS_RSA_WITH_AES_128_GCM_SHA256": "AES128-GCM-SHA256",
    "TLS_RSA_WITH_AES_256_GCM_SHA384": "AES256-GCM-SHA384",
    "TLS_AES_128_GCM_SHA256": None,
    "TLS_AES_256_GCM_SHA384": None,
    "TLS_CHACHA20_POLY1305_SHA256": None,
    "TLS_ECDHE_ECDSA_WITH_AES_128_CBC_SHA": "ECDHE-ECDSA-AES128-SHA",
    "TLS_ECDHE_ECDSA_WITH_AES_256_CBC_SHA": "ECDHE-ECDSA-AES256-SHA",
    "TLS_ECDHE_RSA_WITH_AES_128_CBC_SHA": "ECDHE-RSA-AES128-SHA",
    "TLS_ECDHE_RSA_WITH_AES_256_CBC_SHA": "ECDHE-RSA-AES256-SHA",
    "TLS_ECDHE_ECDSA_WITH_AES_128_GCM_SHA256": "ECDHE-ECDSA-AES128-GCM-SHA256",
    "TLS_ECDHE_ECDSA_WITH_AES_256_GCM_SHA384": "ECDHE-ECDSA-AES256-GCM-SHA384",
    "TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256": "ECDHE-RSA-AES128-GCM-SHA256",
    "TLS_ECDHE_RSA_WITH_AES_256_GCM_SHA384": "ECDHE-RSA-AES256-GCM-SHA384",
    "TLS_ECDHE_RSA_WITH_CHACHA20_POLY1305_SHA256": "ECDHE-RSA-CHACHA20-POLY1305",
    "TLS_ECDHE_ECDSA_WITH_CHACHA20_POLY1305_SHA256": "ECDHE-ECDSA-CHACHA20-POLY1305",
}
CURVES = {"CurveP256": "prime256v1", "CurveP384": "secp384r1", "CurveP521": "secp521r1", "X25519": "X25519"}

#: The response headers a web config may set, and the values allowed (None: any), as exporter-toolkit.
ALLOWED_HEADERS: dict[str, tuple[str, ...] | None] = {
    "Strict-Transport-Security": None,
    "X-Content-Type-Options": ("nosniff",),
    "X-Frame-Options": ("deny", "sameorigin"),
    "X-XSS-Protection": None,
    "Content-Security-Policy": None,
}


class _Model(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True, coerce_numbers_to_str=True)


def _one_of(kind: str, known) -> Any:
    def check(value: Any) -> Any:
        if value not in known:
            raise ValueError(f"unknown {kind}: {value}")
        return value

    return check


class TLSServerConfig(_Model):
    """``tls_server_config``: the listeners' certificate, client certificate policy and TLS versions."""

    cert_file: str = Field("", description="The server's certificate (PEM); relative to the web config file's folder.")
    key_file: str = Field("", description="The server certificate's private key (PEM).")
    client_auth_type: str = Field(
        "", description="Client certificate policy, as Go's tls.ClientAuthType: NoClientCert (default), "
        "RequestClientCert, RequireAnyClientCert, VerifyClientCertIfGiven, RequireAndVerifyClientCert (mTLS).")
    client_ca_file: str = Field("", description="CA certificate(s) that client certificates must be signed by.")
    cipher_suites: list[str] = Field(default_factory=list, description="Cipher suites for TLS <= 1.2 (Go's names).")
    curve_preferences: list[str] = Field(default_factory=list, description="Key exchange curves, in preference order.")
    min_version: str = Field("TLS12", description="Lowest TLS version accepted.")
    max_version: str = Field("TLS13", description="Highest TLS version accepted.")
    prefer_server_cipher_suites: bool = Field(True, description="Pick the server's preferred cipher suite.")

    @field_validator("cipher_suites")
    @classmethod
    def _ciphers(cls, v: list[str]) -> list[str]:
        for name in v:
            _one_of("cipher", CIPHER_SUITES)(name)
        return v

    @field_validator("curve_preferences")
    @classmethod
    def _curves(cls, v: list[str]) -> list[str]:
        for name in v:
            _one_of("curve", CURVES)(name)
        return v

    @field_validator("min_version", "max_version")
    @classmethod
    def _version(cls, v: str) -> str:
        return _one_of("TLS version", TLS_VERSIONS)(v)

    @property
    def enabled(self) -> bool:
        """Whether TLS is on (exporter-toolkit: any of the certificate, key or client settings given)."""
        return bool(self.cert_file or self.key_file or self.client_auth_type or self.client_ca_file)


class HTTPServerConfig(_Model):
    """``http_server_config``: HTTP/2 and the response headers of every HTTP listener."""

    http2: bool = Field(True, description="Accepted for compatibility; Shardmon's HTTP listeners speak HTTP/1.1.")
    headers: dict[str, str] = Field(default_factory=dict, description="Headers added to every response.")

    @field_validator("headers")
    @classmethod
    def _headers(cls, v: dict[str, str]) -> dict[str, str]:
        for name, value in v.items():
            if name not in ALLOWED_HEADERS:
                raise ValueError(f'HTTP header "{name}" can not be configured')
            allowed = ALLOWED_HEADERS[name]
            if allowed and value not in allowed:
                raise ValueError(f"invalid value for {name}. Expected one of: {list(allowed)}, but got: {value!r}")
        return v


class WebConfig(_Model):
    """The whole web configuration file (every field optional; an empty file changes nothing)."""

    tls_server_config: TLSServerConfig = Field(default_factory=TLSServerConfig)
    http_server_config: HTTPServerConfig = Field(default_factory=HTTPServerConfig)
    basic_auth_users: dict[str, SecretStr] = Field(
        default_factory=dict, description="User name -> bcrypt hash of the password; none: no authentication.")

    @property
    def tls(self) -> bool:
        return self.tls_server_config.enabled

    @property
    def auth(self) -> bool:
        return bool(self.basic_auth_users)


# -- bcrypt, as Go's golang.org/x/crypto/bcrypt reads a hash ----------------------------------------


def bcrypt_cost(hashed: str) -> int:
    """The cost of a bcrypt hash, with Go's ``bcrypt.Cost`` checks and messages (ValueError)."""
    b = hashed.encode()
    if len(b) < 59:
        raise ValueError("crypto/bcrypt: hashedSecret too short to be a bcrypted password")
    if b[0:1] != b"$":
        raise ValueError(f"crypto/bcrypt: bcrypt hashes must start with '$', but hashedSecret started with '{chr(b[0])}'")
    if b[1] > ord("2"):
        raise ValueError(f"crypto/bcrypt: bcrypt algorithm version '{chr(b[1])}' requested is newer than current version '2'")
    n = 3 if b[2:3] == b"$" else 4
    digits = b[n:n + 2].decode(errors="replace")
    if not digits.isdigit():
        raise ValueError(f'strconv.Atoi: parsing "{digits}": invalid syntax')
    cost = int(digits)
    if not 4 <= cost <= 31:
        raise ValueError(f"crypto/bcrypt: cost {cost} is outside allowed range (4,31)")
    return cost


#: bcrypt of "fakepassword" (exporter-toolkit's): checked for unknown users, so that timing does not
#: tell which user names exist.
_FAKE_HASH = b"$2y$10$QOauhQNbBCuQDKes6eFzPeMqBSjb7Mr5DUmpZ/VcEd00UAV/LDeSi"
_CACHE_SIZE = 100


def _bcrypt_ok(hashed: bytes, password: bytes) -> bool:
    import bcrypt

    try:
        # Go's bcrypt uses the first 72 bytes of a password; pyca/bcrypt refuses longer ones.
        return bcrypt.checkpw(password[:72], hashed)
    except ValueError:  # a hash pyca/bcrypt cannot read (Go's minor versions it does not know)
        return False


class BasicAuthVerifier:
    """Checks ``Authorization: Basic ...`` against ``basic_auth_users``, as exporter-toolkit does.

    bcrypt runs on one thread of its own (exporter-toolkit runs one comparison at a time too), never on
    the event loop, so a flood of wrong passwords costs the caller the bcrypt time and leaves the
    listener answering. Results are cached by (user, hash, password), up to 100 entries with random
    eviction: a known client pays bcrypt once.
    """

    def __init__(self, users: dict[str, SecretStr]) -> None:
        self._users = {u: h.get_secret_value().encode() for u, h in users.items()}
        self._cache: dict[tuple[str, bytes, bytes], bool] = {}
        self._pool = concurrent.futures.ThreadPoolExecutor(1, thread_name_prefix="bcrypt")

    def __bool__(self) -> bool:
        return bool(self._users)

    @staticmethod
    def parse(header: str | None) -> tuple[str, bytes] | None:
        """(user, password) of an ``Authorization: Basic`` header value, None if it is not one."""
        if not header:
            return None
        scheme, _, value = header.strip().partition(" ")
        if scheme.lower() != "basic":
            return None
        try:
            user, sep, password = base64.b64decode(value.strip(), validate=True).partition(b":")
        except (binascii.Error, ValueError):
            return None
        if not sep:
            return None
        return user.decode(errors="surrogateescape"), password

    def _lookup(self, user: str, password: bytes) -> tuple[tuple[str, bytes, bytes], bool | None, bytes, bool]:
        hashed = self._users.get(user)
        known = hashed is not None
        if not known:
            hashed = _FAKE_HASH
        key = (user, hashed, password)
        return key, self._cache.get(key), hashed, known

    def _store(self, key: tuple[str, bytes, bytes], ok: bool) -> None:
        if len(self._cache) >= _CACHE_SIZE:
            for k in random.sample(list(self._cache), max(1, len(self._cache) // 10) + 1):
                self._cache.pop(k, None)
        self._cache[key] = ok

    async def check(self, header: str | None) -> str:
        """"" when the header names a user with the right password; else why not: ``"no_credentials"``
        (none, or not Basic) or ``"wrong_credentials"``."""
        parsed = self.parse(header)
        if parsed is None:
            return "no_credentials"
        user, password = parsed
        key, cached, hashed, known = self._lookup(user, password)
        if cached is None:
            loop = asyncio.get_running_loop()
            cached = known and await loop.run_in_executor(self._pool, _bcrypt_ok, hashed, password)
            if not known:  # the fake hash's time is spent all the same
                await loop.run_in_executor(self._pool, _bcrypt_ok, hashed, password)
            self._store(key, cached)
        return "" if cached and known else "wrong_credentials"

    def check_blocking(self, header: str | None) -> str:
        """:meth:`check` for threads (no event loop)."""
        parsed = self.parse(header)
        if parsed is None:
            return "no_credentials"
        user, password = parsed
        key, cached, hashed, known = self._lookup(user, password)
        if cached is None:
            ok = self._pool.submit(_bcrypt_ok, hashed, password).result()
            cached = known and ok
            self._store(key, cached)
        return "" if cached and known else "wrong_credentials"


# -- loading and checking --------------------------------------------------------------------------


def _join_dir(folder: str, path: str) -> str:
    """exporter-toolkit's ``JoinDir``: a relative path is relative to the web config file's folder."""
    if not path or os.path.isabs(path):
        return path
    return os.path.normpath(os.path.join(folder, path))


def _loc(loc) -> str:
    return ".".join(str(p) for p in loc)


def parse_web_config(text: str, folder: str = ".") -> WebConfig:
    """Parse and check a web config's text as ``web.Validate`` does; ValueError with its message."""
    try:
        raw = yaml.load(text, Loader=StrictSafeLoader)  # noqa: S506 - a SafeLoader
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f" at line {mark.line + 1}, column {mark.column + 1}" if mark is not None else ""
        raise ValueError(f"yaml: {getattr(exc, 'problem', None) or 'not valid YAML'}{where}") from None
    if raw is None:
        raw = {}
    if not isinstance(raw, dict):
        raise ValueError("yaml: unmarshal errors: the web config must be a mapping")
    try:
        cfg = WebConfig.model_validate(raw)
    except ValidationError as exc:
        msgs = []
        for err in exc.errors():
            msg = err["msg"].removeprefix("Value error, ")
            if err["type"] == "extra_forbidden":
                msg = f"field {err['loc'][-1]} not found"
            msgs.append(f"{_loc(err['loc'])}: {msg}")
        raise ValueError("; ".join(msgs)) from None
    for user, hashed in cfg.basic_auth_users.items():
        try:
            bcrypt_cost(hashed.get_secret_value())
        except ValueError as exc:
            raise ValueError(f"basic_auth_users.{user}: {exc}") from None
    t = cfg.tls_server_config
    t = t.model_copy(update={name: _join_dir(folder, getattr(t, name))
                             for name in ("cert_file", "key_file", "client_ca_file")})
    cfg = cfg.model_copy(update={"tls_server_config": t})
    if t.enabled:
        server_ssl_context(cfg)  # the checks of ConfigToTLSConfig, which loads the files
    return cfg


def read_web_config(path: str | os.PathLike) -> WebConfig:
    """Read and check a web config file (ValueError with ``web.Validate``'s message)."""
    p = Path(path)
    try:
        text = p.read_text()
    except OSError as exc:
        raise ValueError(f"open {p}: {(exc.strerror or str(exc)).lower()}") from None
    return parse_web_config(text, str(p.parent))


@functools.lru_cache(maxsize=8)
def load_web_config(path: str, field: str = "web_config_file") -> WebConfig:
    """The web config at ``path``, read and checked once per process; ConfigError naming ``field``."""
    try:
        return read_web_config(path)
    except ValueError as exc:
        raise ConfigError(f"{field} ({path}): {exc}") from None


_GO_CLIENT_AUTH = {
    "": "NoClientCert", "NoClientCert": "NoClientCert", "RequestClientCert": "RequestClientCert",
    "RequireAnyClientCert": "RequireAnyClientCert", "RequireClientCert": "RequireAnyClientCert",
    "VerifyClientCertIfGiven": "VerifyClientCertIfGiven", "RequireAndVerifyClientCert": "RequireAndVerifyClientCert",
}


def client_auth_policy(t: TLSServerConfig) -> str:
    """The Go ``tls.ClientAuthType`` name of ``client_auth_type`` (ValueError if unknown)."""
    try:
        return _GO_CLIENT_AUTH[t.client_auth_type]
    except KeyError:
        raise ValueError(f"Invalid ClientAuth: {t.client_auth_type}") from None


def server_ssl_context(cfg: WebConfig) -> ssl.SSLContext:
    """The server-side SSL context of ``tls_server_config``, checked as exporter-toolkit's
    ``ConfigToTLSConfig`` checks it (ValueError with its messages)."""
    t = cfg.tls_server_config
    if not t.cert_file:
        raise ValueError("missing cert_file")
    if not t.key_file:
        raise ValueError("missing key_file")
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    try:
        ctx.load_cert_chain(t.cert_file, t.key_file)
    except ssl.SSLError as exc:
        raise ValueError(f"failed to load X509KeyPair: {(exc.reason or str(exc)).lower().replace('_', ' ')}") from None
    except OSError as exc:
        path = t.cert_file if not os.path.exists(t.cert_file) or os.path.exists(t.key_file) else t.key_file
        raise ValueError(f"failed to load X509KeyPair: open {path}: {(exc.strerror or str(exc)).lower()}") from None
    ctx.minimum_version = TLS_VERSIONS[t.min_version]
    ctx.maximum_version = TLS_VERSIONS[t.max_version]
    if not t.prefer_server_cipher_suites:
        ctx.options &= ~ssl.OP_CIPHER_SERVER_PREFERENCE
    else:
        ctx.options |= ssl.OP_CIPHER_SERVER_PREFERENCE
    names = [CIPHER_SUITES[c] for c in t.cipher_suites if CIPHER_SUITES[c]]
    if names:
        try:
            ctx.set_ciphers(":".join(names))
        except ssl.SSLError:
            raise ValueError(f"cipher_suites: none of {t.cipher_suites} is usable") from None
    if t.curve_preferences:
        ctx.set_ecdh_curve(CURVES[t.curve_preferences[0]])
    if t.client_ca_file:
        try:
            with open(t.client_ca_file, "rb") as f:
                pem = f.read()
        except OSError as exc:
            raise ValueError(f"open {t.client_ca_file}: {(exc.strerror or str(exc)).lower()}") from None
    policy = client_auth_policy(t)
    if t.client_ca_file and policy == "NoClientCert":
        raise ValueError("Client CA's have been configured without a Client Auth Policy")
    if policy in ("NoClientCert", "RequestClientCert"):
        ctx.verify_mode = ssl.CERT_NONE
    else:
        ctx.verify_mode = ssl.CERT_OPTIONAL if policy == "VerifyClientCertIfGiven" else ssl.CERT_REQUIRED
        if t.client_ca_file:
            try:
                ctx.load_verify_locations(cadata=pem.decode(errors="replace"))
            except (ssl.SSLError, ValueError):
                raise ValueError(f"client_ca_file: {t.client_ca_file}: no PEM certificate found") from None
        else:
            ctx.load_default_certs(ssl.Purpose.CLIENT_AUTH)  # Go: no ClientCAs, the system's roots
    ctx.set_alpn_protocols(["http/1.1"])
    return ctx


def server_key_pair(cfg: WebConfig) -> tuple[bytes, bytes, bytes | None, bool]:
    """(key PEM, certificate chain PEM, client CA PEM or None, require client certificate) for gRPC.

    gRPC servers either ask for no client certificate or require one that verifies (mTLS): only
    ``RequireAndVerifyClientCert`` (and ``RequireAnyClientCert``, verified as on HTTP) require one;
    ``RequestClientCert`` and ``VerifyClientCertIfGiven`` ask none there."""
    t = cfg.tls_server_config
    with open(t.key_file, "rb") as f:
        key = f.read()
    with open(t.cert_file, "rb") as f:
        chain = f.read()
    ca = None
    if t.client_ca_file:
        with open(t.client_ca_file, "rb") as f:
            ca = f.read()
    require = client_auth_policy(t) in ("RequireAndVerifyClientCert", "RequireAnyClientCert")
    return key, chain, ca, require
