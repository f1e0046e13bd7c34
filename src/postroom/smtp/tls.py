"""TLS contexts for both SMTP sides, and the self-signed development certificate.

TLS 1.2 is the floor everywhere (RFC 8996 retired 1.0/1.1). Outbound MX delivery is usually
opportunistic and unverified (RFC 7435: encryption beats plaintext even without authentication);
`verify=True` is for smarthosts and policies that demand a valid certificate.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import fcntl
import ipaddress
import os
import ssl
from pathlib import Path

DEV_CERT = "dev-cert.pem"
DEV_KEY = "dev-key.pem"


def server_context(
    cert_path: str | os.PathLike[str], key_path: str | os.PathLike[str]
) -> ssl.SSLContext:
    """Context for our listeners (STARTTLS and implicit TLS); clients are not asked for certs."""
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    ctx.minimum_version = ssl.TLSVersion.TLSv1_2
    ctx.load_cert_chain(os.fspath(cert_path), os.fspath(key_path))
    ctx.options |= ssl.OP_NO_COMPRESSION | ssl.OP_CIPHER_SERVER_PREFERENCE
    return ctx


def client_context(verify: bool, *, cafile: str | os.PathLike[str] | None = None,
                   dns_id_only: bool = False) -> ssl.SSLContext:
    """Context for outbound STARTTLS. Without `verify` any certificate is accepted (but the
    session is still encrypted); with it, the chain and host name are checked against the
    system trust store or `cafile`. `dns_id_only`: the name must be in a subjectAltName
    dNSName; a subject CN alone does not count (MTA-STS, RFC 8461 §4.2 and §3.3). Routes with
    `verify = true` keep the CN fallback RFC 6125 allows for certificates without SANs."""
    if verify:
        ctx = ssl.create_default_context(ssl.Purpose.SERVER_AUTH, cafile=cafile)
        if dns_id_only:
            ctx.hostname_checks_common_name = False
    else:
        ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
        ctx.check_hostname = False
        ctx.verify_mode = ssl.CERT_NONE
    ctx.minimum_version = ssl.TLSVersion.TLSv1_2
    return ctx


def ensure_dev_certificate(data_dir: Path, hostname: str) -> tuple[Path, Path]:
    """Return (cert, key) in `data_dir`, generating a self-signed pair when either is missing.

    EC P-256, valid one year, SAN = hostname + localhost + 127.0.0.1. A lock file serialises
    concurrent first starts (several ingress processes) so cert and key always match.
    """
    data_dir = Path(data_dir)
    data_dir.mkdir(parents=True, exist_ok=True)
    cert_path, key_path = data_dir / DEV_CERT, data_dir / DEV_KEY
    with open(data_dir / ".dev-cert.lock", "a") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        if not (cert_path.is_file() and key_path.is_file()):
            cert_pem, key_pem = _self_signed(hostname)
            _write(key_path, key_pem, 0o600)
            _write(cert_path, cert_pem, 0o644)
    return cert_path, key_path


def _write(path: Path, data: bytes, mode: int) -> None:
    """Write via a temporary file created with the final mode (the key is never world-readable)."""
    tmp = path.with_name(path.name + ".tmp")
    with contextlib.suppress(FileNotFoundError):
        tmp.unlink()
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, mode)
    with os.fdopen(fd, "wb") as fh:
        fh.write(data)
        fh.flush()
        os.fsync(fh.fileno())
    os.chmod(tmp, mode)
    os.replace(tmp, path)


def _self_signed(hostname: str) -> tuple[bytes, bytes]:
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

    key = ec.generate_private_key(ec.SECP256R1())
    names: list[x509.GeneralName] = []
    for name in dict.fromkeys([hostname, "localhost", "127.0.0.1"]):
        try:
            names.append(x509.IPAddress(ipaddress.ip_address(name)))
        except ValueError:
            names.append(x509.DNSName(name))
    subject = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, hostname[:64] or "localhost")])
    now = dt.datetime.now(dt.UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(subject)
        .issuer_name(subject)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(minutes=5))
        .not_valid_after(now + dt.timedelta(days=365))
        .add_extension(x509.SubjectAlternativeName(names), critical=False)
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.SERVER_AUTH]), critical=False)
        .sign(key, hashes.SHA256())
    )
    key_pem = key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    )
    return cert.public_bytes(serialization.Encoding.PEM), key_pem
