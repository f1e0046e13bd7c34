"""Real parts for MTA-STS tests: a test CA, an HTTPS policy server and STARTTLS MX hosts.

* `TestCA` issues server certificates (EC P-256) for any names; `cafile` is what
  `[delivery] mta_sts_cafile` points at.
* `PolicyServer` serves `/.well-known/mta-sts.txt` over HTTPS on 127.0.0.1 with a certificate
  from the CA, one answer per Host header (`set(host, body, status=…, content_type=…)`), and
  counts the requests per host.
* `mx_host(address, port, …)` runs an aiosmtpd receiver on another loopback address (127.0.0.2,
  127.0.0.3 …): every MX host listens on the same `[delivery] mx_port`, so hosts that behave
  differently need addresses of their own. `shared_port(addresses)` finds a port free on all.
"""

from __future__ import annotations

import datetime as dt
import socket
import ssl
import threading
from collections.abc import Iterable
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

from aiosmtpd.controller import Controller
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

from postroom.smtp.tls import server_context
from support.smtp_sinks import SinkHandler, sink_certificate

__all__ = ["PolicyServer", "TestCA", "mx_host", "shared_port"]


class TestCA:
    """A throwaway certificate authority in `directory`."""

    __test__ = False  # not a pytest class

    def __init__(self, directory: Path, name: str = "Postroom Test CA") -> None:
        self.directory = directory
        self.key = ec.generate_private_key(ec.SECP256R1())
        subject = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, name)])
        public = self.key.public_key()
        self.cert = (
            _builder(subject, subject, public)
            .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
            .add_extension(_usage(ca=True), critical=True)
            .sign(self.key, hashes.SHA256())
        )
        self.cafile = directory / "ca.pem"
        self.cafile.write_bytes(self.cert.public_bytes(serialization.Encoding.PEM))
        self._issued = 0

    def issue(self, *names: str, san: bool = True) -> tuple[Path, Path]:
        """(cert, key) files of a server certificate for `names` (SAN dNSNames). Without
        `san` the first name is only the subject CN, as in certificates of old (RFC 8461
        §4.2 requires a DNS-ID, so MTA-STS must refuse them)."""
        key = ec.generate_private_key(ec.SECP256R1())
        subject = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, names[0])])
        builder = (
            _builder(subject, self.cert.subject, key.public_key())
            .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
            .add_extension(_usage(ca=False), critical=True)
            .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.SERVER_AUTH]), False)
            .add_extension(x509.AuthorityKeyIdentifier.from_issuer_public_key(
                self.key.public_key()), False)
        )
        if san:
            builder = builder.add_extension(
                x509.SubjectAlternativeName([x509.DNSName(n) for n in names]), False)
        cert = builder.sign(self.key, hashes.SHA256())
        self._issued += 1
        cert_path = self.directory / f"server{self._issued}.pem"
        key_path = self.directory / f"server{self._issued}.key"
        cert_path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
        key_path.write_bytes(key.private_bytes(serialization.Encoding.PEM,
                                               serialization.PrivateFormat.PKCS8,
                                               serialization.NoEncryption()))
        return cert_path, key_path


def _builder(subject: x509.Name, issuer: x509.Name, public: ec.EllipticCurvePublicKey
             ) -> x509.CertificateBuilder:
    now = dt.datetime.now(dt.UTC)
    return (
        x509.CertificateBuilder().subject_name(subject).issuer_name(issuer).public_key(public)
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(days=1)).not_valid_after(now + dt.timedelta(days=30))
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(public), False)
    )


def _usage(*, ca: bool) -> x509.KeyUsage:
    return x509.KeyUsage(digital_signature=True, content_commitment=False,
                         key_encipherment=False, data_encipherment=False, key_agreement=not ca,
                         key_cert_sign=ca, crl_sign=ca, encipher_only=False, decipher_only=False)


@dataclass
class Answer:
    body: bytes
    status: int = 200
    content_type: str = "text/plain"
    headers: dict[str, str] = field(default_factory=dict)


class PolicyServer:
    """HTTPS policy server on 127.0.0.1 (see the module docstring)."""

    def __init__(self, cert: tuple[Path, Path]) -> None:
        self.answers: dict[str, Answer] = {}
        self.requests: list[tuple[str, str]] = []  # (Host, path)
        context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        context.load_cert_chain(*cert)
        outer = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                host = (self.headers.get("Host") or "").partition(":")[0].lower()
                outer.requests.append((host, self.path))
                answer = outer.answers.get(host)
                if answer is None or self.path != "/.well-known/mta-sts.txt":
                    answer = Answer(b"not found", 404)
                self.send_response(answer.status)
                self.send_header("Content-Type", answer.content_type)
                self.send_header("Content-Length", str(len(answer.body)))
                for name, value in answer.headers.items():
                    self.send_header(name, value)
                self.end_headers()
                self.wfile.write(answer.body)

            def log_message(self, *args: object) -> None:
                pass

        class Server(ThreadingHTTPServer):
            daemon_threads = True

            def get_request(self) -> tuple[socket.socket, object]:
                sock, address = self.socket.accept()
                return context.wrap_socket(sock, server_side=True,
                                           do_handshake_on_connect=False), address

            def finish_request(self, request: object, client_address: object) -> None:
                try:
                    request.do_handshake()  # type: ignore[attr-defined]
                except (OSError, ssl.SSLError):
                    return  # the client refused our certificate: nothing to serve
                super().finish_request(request, client_address)  # type: ignore[arg-type]

            def handle_error(self, request: object, client_address: object) -> None:
                pass

        self._server = Server(("127.0.0.1", 0), Handler)
        self.port = int(self._server.server_address[1])
        self._thread = threading.Thread(target=self._server.serve_forever,
                                        kwargs={"poll_interval": 0.05}, daemon=True)

    def set(self, host: str, body: str | bytes, **kwargs: object) -> None:
        data = body.encode() if isinstance(body, str) else body
        self.answers[host] = Answer(data, **kwargs)  # type: ignore[arg-type]

    def count(self, host: str) -> int:
        return sum(1 for h, _ in self.requests if h == host)

    def __enter__(self) -> PolicyServer:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._server.shutdown()
        self._server.server_close()
        self._thread.join(timeout=2)


def shared_port(addresses: Iterable[str]) -> int:
    """A TCP port free on every one of `addresses` right now."""
    addresses = list(addresses)
    for _ in range(50):
        socks: list[socket.socket] = []
        try:
            first = socket.socket()
            socks.append(first)
            first.bind((addresses[0], 0))
            port = int(first.getsockname()[1])
            for address in addresses[1:]:
                s = socket.socket()
                socks.append(s)
                s.bind((address, port))
            return port
        except OSError:
            continue
        finally:
            for s in socks:
                s.close()
    raise OSError("no port free on all of " + ", ".join(addresses))


def mx_host(address: str, port: int, *, cert: tuple[Path, Path] | None = None,
            untrusted: bool = False, name: str = "mx.test") -> tuple[Controller, SinkHandler]:
    """A started aiosmtpd receiver at address:port. With `cert` (or `untrusted`: the sinks'
    self-signed certificate) it offers STARTTLS; without either it offers no TLS at all."""
    handler = SinkHandler()
    kwargs: dict[str, object] = {}
    if untrusted:
        cert = sink_certificate()
    if cert is not None:
        kwargs["tls_context"] = server_context(*cert)
    controller = Controller(handler, hostname=address, port=port, server_hostname=name,
                            **kwargs)  # type: ignore[arg-type]
    controller.start()
    return controller, handler
