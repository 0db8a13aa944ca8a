"""Test-only certificates: a CA, a server certificate for 127.0.0.1/localhost and client certificates,
written as PEM files; and bcrypt hashes for web config files."""

from __future__ import annotations

import datetime as dt
import ipaddress
from dataclasses import dataclass
from pathlib import Path

import bcrypt
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID


def _name(cn: str) -> x509.Name:
    return x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, cn)])


def _write_key(key, path: Path) -> None:
    path.write_bytes(key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                       serialization.NoEncryption()))


@dataclass
class Certs:
    """PEM files in one folder: ca.crt, server.crt/key, client.crt/key, and other-ca.crt with
    rogue-client.crt/key (a client certificate of a CA the servers do not trust)."""

    folder: Path

    @property
    def ca(self) -> Path:
        return self.folder / "ca.crt"

    def path(self, name: str) -> Path:
        return self.folder / name


def _cert(subject: str | x509.Name, key, issuer_name: x509.Name, issuer_key, *, ca: bool = False,
          server: bool = False, ips: tuple[str, ...] = ()):
    """A certificate for ``subject`` (a common name, or a whole name), signed by the issuer: a CA's, a server's
    (localhost, 127.0.0.1 and ``ips``) or a client's."""
    now = dt.datetime.now(dt.timezone.utc)
    subject = _name(subject) if isinstance(subject, str) else subject
    b = (x509.CertificateBuilder().subject_name(subject).issuer_name(issuer_name)
         .public_key(key.public_key()).serial_number(x509.random_serial_number())
         .not_valid_before(now - dt.timedelta(minutes=5)).not_valid_after(now + dt.timedelta(days=2))
         .add_extension(x509.BasicConstraints(ca=ca, path_length=None), critical=True))
    if ca:
        b = b.add_extension(x509.KeyUsage(digital_signature=True, key_cert_sign=True, crl_sign=True,
                                          content_commitment=False, key_encipherment=False, data_encipherment=False,
                                          key_agreement=False, encipher_only=False, decipher_only=False), critical=True)
    elif server:
        b = b.add_extension(x509.SubjectAlternativeName(
            [x509.DNSName("localhost")]
            + [x509.IPAddress(ipaddress.ip_address(ip)) for ip in dict.fromkeys(("127.0.0.1", *ips))]),
            critical=False)
        b = b.add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.SERVER_AUTH,
                                                   ExtendedKeyUsageOID.CLIENT_AUTH]), critical=False)
    else:
        b = b.add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.CLIENT_AUTH]), critical=False)
    return b.sign(issuer_key, hashes.SHA256())


def make_certs(folder: Path, server_ips: tuple[str, ...] = ()) -> Certs:
    """The certificates; the server's is valid for localhost, 127.0.0.1 and ``server_ips``."""
    folder.mkdir(parents=True, exist_ok=True)
    for ca_name, prefix, clients in (("Shardmon test CA", "", ("server", "client")),
                                     ("Another CA", "other-", ("rogue-client",))):
        ca_key = ec.generate_private_key(ec.SECP256R1())
        ca_cert = _cert(ca_name, ca_key, _name(ca_name), ca_key, ca=True)
        (folder / f"{prefix}ca.crt").write_bytes(ca_cert.public_bytes(serialization.Encoding.PEM))
        for who in clients:
            key = ec.generate_private_key(ec.SECP256R1())
            cert = _cert(who, key, ca_cert.subject, ca_key, server=who == "server", ips=server_ips)
            (folder / f"{who}.crt").write_bytes(cert.public_bytes(serialization.Encoding.PEM))
            _write_key(key, folder / f"{who}.key")
    return Certs(folder)


def bcrypt_hash(password: str, cost: int = 4) -> str:
    """A bcrypt hash as htpasswd writes it ($2y$), cheap (cost 4) unless asked otherwise."""
    return bcrypt.hashpw(password.encode(), bcrypt.gensalt(cost)).decode().replace("$2b$", "$2y$", 1)
