"""TLS of the Kubernetes metrics API service: the serving certificate (``tls_cert_file``/
``tls_private_key_file``, or a self-signed one made at start as Metrics Server does), the server's SSL
context (client certificates requested, not required, and verified against ``client_ca_file`` and
``requestheader_client_ca_file``), and which of those CA bundles issued a verified client certificate.

OpenSSL verifies a presented client certificate against the union of both bundles during the handshake
(a certificate that neither verifies ends the handshake: Python's ``ssl`` has no verify callback to defer
the decision as Go's ``RequestClientCert`` does); :func:`issued_by` then tells the authenticator which
bundle holds the certificate's issuer. It looks at the leaf's direct issuer only: a client chain through
an intermediate CA is verified by OpenSSL, but attributed to no bundle (and so not authenticated).
"""

from __future__ import annotations

import datetime
import ipaddress
import os
import socket
import ssl
import tempfile

from cryptography import x509
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

from shardmon.model.errors import ConfigError
from shardmon.model.k8sapi_config import KubernetesMetricsConfig

SECTION = "kubernetes_metrics"


def load_ca_bundle(path: str, field: str) -> list[x509.Certificate]:
    """The certificates of a PEM bundle; a ConfigError naming ``kubernetes_metrics.<field>`` if unreadable."""
    try:
        with open(path, "rb") as f:
            certs = x509.load_pem_x509_certificates(f.read())
    except (OSError, ValueError) as exc:
        raise ConfigError(f"{SECTION}.{field}: cannot read the CA bundle {path}: {exc}") from None
    return certs


def self_signed(hosts: list[str], *, days: int = 365) -> tuple[bytes, bytes]:
    """A self-signed serving certificate and its key (PEM) for ``hosts`` (names and IP addresses as
    subject alternative names), as Metrics Server makes one when given no certificate."""
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, f"{hosts[0]}@{int(datetime.datetime.now().timestamp())}")])
    sans: list[x509.GeneralName] = []
    for h in dict.fromkeys(hosts):
        try:
            sans.append(x509.IPAddress(ipaddress.ip_address(h)))
        except ValueError:
            sans.append(x509.DNSName(h))
    now = datetime.datetime.now(datetime.UTC)
    cert = (x509.CertificateBuilder().subject_name(name).issuer_name(name).public_key(key.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(now - datetime.timedelta(hours=1)).not_valid_after(now + datetime.timedelta(days=days))
            .add_extension(x509.SubjectAlternativeName(sans), critical=False)
            .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
            .add_extension(x509.KeyUsage(digital_signature=True, key_encipherment=True, key_cert_sign=True,
                                         content_commitment=False, data_encipherment=False, key_agreement=False,
                                         crl_sign=False, encipher_only=False, decipher_only=False), critical=True)
            .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.SERVER_AUTH]), critical=False)
            .sign(key, hashes.SHA256()))
    key_pem = key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                serialization.NoEncryption())
    return cert.public_bytes(serialization.Encoding.PEM), key_pem


def default_hosts(listen_host: str) -> list[str]:
    """The names a self-signed certificate is made for: localhost, the loopback addresses, the host's
    name, and the listen address when it is a specific one."""
    hosts = ["localhost", "127.0.0.1", "::1", socket.gethostname()]
    if listen_host not in ("", "0.0.0.0", "::"):
        hosts.append(listen_host)
    return hosts


def server_context(cfg: KubernetesMetricsConfig) -> ssl.SSLContext:
    """The listener's SSL context; ConfigError naming the field at fault."""
    if bool(cfg.tls_cert_file) != bool(cfg.tls_private_key_file):
        missing = "tls_private_key_file" if cfg.tls_cert_file else "tls_cert_file"
        raise ConfigError(f"{SECTION}.{missing}: required with {'tls_cert_file' if cfg.tls_cert_file else 'tls_private_key_file'}")
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    ctx.minimum_version = ssl.TLSVersion.TLSv1_2
    ctx.set_alpn_protocols(["http/1.1"])
    if cfg.tls_cert_file:
        try:
            ctx.load_cert_chain(cfg.tls_cert_file, cfg.tls_private_key_file)
        except (OSError, ssl.SSLError) as exc:
            raise ConfigError(f"{SECTION}.tls_cert_file: cannot load {cfg.tls_cert_file} with its key "
                              f"{cfg.tls_private_key_file}: {exc}") from None
    else:
        cert, key = self_signed(default_hosts(str(cfg.listen_address).rsplit(":", 1)[0].strip("[]")))
        with tempfile.TemporaryDirectory(prefix="shardmon-k8sapi-") as d:  # ssl loads chains from files only
            cert_path, key_path = os.path.join(d, "tls.crt"), os.path.join(d, "tls.key")
            with open(cert_path, "wb") as f:
                f.write(cert)
            with open(os.open(key_path, os.O_WRONLY | os.O_CREAT, 0o600), "wb") as f:
                f.write(key)
            ctx.load_cert_chain(cert_path, key_path)
    bundles = [(f, getattr(cfg, f)) for f in ("client_ca_file", "requestheader_client_ca_file") if getattr(cfg, f)]
    if bundles:
        ctx.verify_mode = ssl.CERT_OPTIONAL  # asked for, not required: bearer tokens and anonymous remain
        for field, path in bundles:
            try:
                ctx.load_verify_locations(cafile=path)
            except (OSError, ssl.SSLError) as exc:
                raise ConfigError(f"{SECTION}.{field}: cannot load the CA bundle {path}: {exc}") from None
    return ctx


def issued_by(cert: x509.Certificate, cas: list[x509.Certificate], now: datetime.datetime | None = None) -> bool:
    """Whether ``cert`` (already verified by OpenSSL) was issued by one of ``cas``, is valid now and, if it
    names extended key usages, may authenticate a client (as Go's verification with ``ClientAuth``)."""
    now = now or datetime.datetime.now(datetime.UTC)
    if not cert.not_valid_before_utc <= now <= cert.not_valid_after_utc:
        return False
    try:
        eku = cert.extensions.get_extension_for_class(x509.ExtendedKeyUsage).value
    except x509.ExtensionNotFound:
        pass
    else:
        if ExtendedKeyUsageOID.CLIENT_AUTH not in eku and ExtendedKeyUsageOID.ANY_EXTENDED_KEY_USAGE not in eku:
            return False
    for ca in cas:
        if ca.subject != cert.issuer:
            continue
        try:
            cert.verify_directly_issued_by(ca)
        except (ValueError, TypeError, InvalidSignature):  # not this CA's signature
            continue
        return True
    return False


__all__ = ["default_hosts", "issued_by", "load_ca_bundle", "self_signed", "server_context"]
