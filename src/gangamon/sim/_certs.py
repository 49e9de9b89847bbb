"""A throw-away grid PKI for the simulator: a CA, a host certificate, a user, an RFC 3820 proxy.

Written as PEM files in a directory: `ca/ca.pem` (and `ca/<subject hash>.0`, the name
OpenSSL looks up in a CA directory such as DIRAC's CALocation), `host.pem` + `host.key`, and
`proxy.pem`
holding the proxy certificate, its key and the user certificate, as voms-proxy-init writes it
(and `expired-proxy.pem`, for fault injection).
"""

from __future__ import annotations

import datetime as dt
import hashlib
import ipaddress
import re
from dataclasses import dataclass
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID, ObjectIdentifier

#: RFC 3820 proxyCertInfo, with the "inherit all" policy.
PROXY_CERT_INFO = ObjectIdentifier("1.3.6.1.5.5.7.1.14")
_INHERIT_ALL = bytes.fromhex("300c300a06082b06010505071501")


@dataclass(frozen=True, slots=True)
class Credentials:
    ca_dir: Path
    ca_file: Path
    host_cert: Path
    host_key: Path
    proxy: Path
    expired_proxy: Path


_ORGANIZATION = "gangamon simulated grid"
_USER_CN = "gangamon simulated user"
#: The user's DN as DIRAC writes it (its Registry maps DNs to users).
USER_DN = f"/O={_ORGANIZATION}/CN={_USER_CN}"


def _name(*cns: str) -> x509.Name:
    attrs = [x509.NameAttribute(NameOID.ORGANIZATION_NAME, _ORGANIZATION)]
    attrs += [x509.NameAttribute(NameOID.COMMON_NAME, cn) for cn in cns]
    return x509.Name(attrs)


def _pem(cert: x509.Certificate) -> bytes:
    return cert.public_bytes(serialization.Encoding.PEM)


def _key_pem(key: ec.EllipticCurvePrivateKey) -> bytes:
    return key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    )


def _builder(
    subject: x509.Name,
    issuer: x509.Name,
    key: ec.EllipticCurvePrivateKey,
    start: dt.datetime,
    days: float,
) -> x509.CertificateBuilder:
    return (
        x509.CertificateBuilder()
        .subject_name(subject)
        .issuer_name(issuer)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(start)
        .not_valid_after(start + dt.timedelta(days=days))
    )


def make_credentials(
    directory: Path, *, hostname: str = "localhost", proxy_hours: float = 24.0
) -> Credentials:
    """Create the CA, host certificate and proxies in `directory` (made if missing); the
    proxy is valid for `proxy_hours` from now."""
    directory.mkdir(parents=True, exist_ok=True)
    now = dt.datetime.now(dt.UTC) - dt.timedelta(minutes=5)
    ca_key = ec.generate_private_key(ec.SECP256R1())
    ca = (
        _builder(_name("gangamon sim CA"), _name("gangamon sim CA"), ca_key, now, 30)
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .add_extension(
            x509.KeyUsage(False, False, False, False, False, True, True, False, False),
            critical=True,
        )
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(ca_key.public_key()), False)
        .sign(ca_key, hashes.SHA256())
    )
    host_key = ec.generate_private_key(ec.SECP256R1())
    host = (
        _builder(_name(hostname), ca.subject, host_key, now, 30)
        .add_extension(
            x509.SubjectAlternativeName(
                [x509.DNSName(hostname), x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]
            ),
            False,
        )
        .add_extension(
            x509.ExtendedKeyUsage(
                [ExtendedKeyUsageOID.SERVER_AUTH, ExtendedKeyUsageOID.CLIENT_AUTH]
            ),
            False,
        )
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .sign(ca_key, hashes.SHA256())
    )
    user_key = ec.generate_private_key(ec.SECP256R1())
    user_name = _name(_USER_CN)
    user = (
        _builder(user_name, ca.subject, user_key, now, 30)
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(
            x509.KeyUsage(True, False, True, False, True, False, False, False, False), critical=True
        )
        .sign(ca_key, hashes.SHA256())
    )
    ca_dir = directory / "ca"
    ca_dir.mkdir(exist_ok=True)
    ca_file = ca_dir / "ca.pem"
    ca_file.write_bytes(_pem(ca))
    (ca_dir / f"{subject_hash(ca.subject)}.0").write_bytes(_pem(ca))
    (directory / "host.pem").write_bytes(_pem(host))
    host_key_file = directory / "host.key"
    host_key_file.write_bytes(_key_pem(host_key))
    host_key_file.chmod(0o600)
    lifetime = proxy_hours + 5 / 60  # `now` is five minutes ago
    proxy = _write_proxy(directory / "proxy.pem", user, user_key, now, hours=lifetime)
    expired = _write_proxy(
        directory / "expired-proxy.pem", user, user_key, now - dt.timedelta(days=2), hours=1
    )
    return Credentials(ca_dir, ca_file, directory / "host.pem", host_key_file, proxy, expired)


def _write_proxy(
    path: Path,
    user: x509.Certificate,
    user_key: ec.EllipticCurvePrivateKey,
    start: dt.datetime,
    *,
    hours: float,
) -> Path:
    key = ec.generate_private_key(ec.SECP256R1())
    serial = x509.random_serial_number()
    subject = x509.Name([*user.subject, x509.NameAttribute(NameOID.COMMON_NAME, str(serial))])
    proxy = (
        x509.CertificateBuilder()
        .subject_name(subject)
        .issuer_name(user.subject)
        .public_key(key.public_key())
        .serial_number(serial)
        .not_valid_before(start)
        .not_valid_after(start + dt.timedelta(hours=hours))
        .add_extension(x509.UnrecognizedExtension(PROXY_CERT_INFO, _INHERIT_ALL), critical=True)
        .add_extension(
            x509.KeyUsage(True, False, True, False, False, False, False, False, False),
            critical=True,
        )
        .sign(user_key, hashes.SHA256())
    )
    path.write_bytes(_pem(proxy) + _key_pem(key) + _pem(user))
    path.chmod(0o600)
    return path


def subject_hash(name: x509.Name) -> str:
    """OpenSSL's X509_NAME_hash: SHA-1 of the name's canonical DER (values trimmed, spaces
    collapsed, ASCII lowercased, as UTF8String; RDN sets without the outer sequence), its
    first four bytes read little-endian, in hex."""
    canonical = b""
    for rdn in name.rdns:
        entries = []
        for attribute in rdn:
            value = re.sub(r"\s+", " ", str(attribute.value).strip())
            value = "".join(c.lower() if "A" <= c <= "Z" else c for c in value)
            oid = _der(0x06, _oid_body(attribute.oid.dotted_string))
            entries.append(_der(0x30, oid + _der(0x0C, value.encode())))
        canonical += _der(0x31, b"".join(sorted(entries)))
    return f"{int.from_bytes(hashlib.sha1(canonical).digest()[:4], 'little'):08x}"


def _der(tag: int, body: bytes) -> bytes:
    size = len(body)
    if size < 128:
        return bytes([tag, size]) + body
    octets = size.to_bytes((size.bit_length() + 7) // 8, "big")
    return bytes([tag, 0x80 | len(octets)]) + octets + body


def _oid_body(dotted: str) -> bytes:
    first, second, *rest = (int(part) for part in dotted.split("."))
    body = bytes([40 * first + second])
    for arc in rest:
        septets = [arc & 0x7F]
        arc >>= 7
        while arc:
            septets.append(0x80 | (arc & 0x7F))
            arc >>= 7
        body += bytes(reversed(septets))
    return body
