"""A real DNS server on 127.0.0.1 for tests (UDP and TCP on one ephemeral port).

Tests point `[delivery] nameservers` (or dkimpy's `dnsfunc`) at it instead of mocking the
resolver, so MX ordering, NXDOMAIN/NODATA, truncation and SERVFAIL all go through dnspython's
real wire handling. Records are given as {name: {type: [rdata text, ...]}}, or as zone text.

    with DnsStub({"example.com": {"MX": ["10 mx.example.com."], "A": ["127.0.0.1"]}}) as dns:
        settings = DeliverySettings(nameservers=[dns.address])
"""

from __future__ import annotations

import contextlib
import socket
import socketserver
import struct
import textwrap
import threading
from collections.abc import Iterable, Mapping, Sequence

import dns.exception
import dns.flags
import dns.message
import dns.name
import dns.query
import dns.rcode
import dns.rdata
import dns.rdataclass
import dns.rdatatype
import dns.rrset
import dns.zone

Records = Mapping[str, Mapping[str, Sequence[str] | str]]

__all__ = ["DnsStub", "txt_rdata"]


def txt_rdata(value: str) -> str:
    """Quote a TXT value as rdata text, split into <=255-octet strings (long DKIM keys)."""
    if value.startswith('"'):
        return value
    chunks = [value[i : i + 255] for i in range(0, len(value), 255)] or [""]
    return " ".join('"' + c.replace("\\", "\\\\").replace('"', '\\"') + '"' for c in chunks)


class DnsStub:
    """Authoritative-for-everything test server. Thread-safe; mutate it while it runs."""

    def __init__(
        self,
        records: Records | None = None,
        *,
        zone_text: str | None = None,
        origin: str = ".",
        servfail: Iterable[str] = (),
        drop: Iterable[str] = (),
        ttl: int = 300,
    ) -> None:
        self.ttl = ttl
        self._lock = threading.Lock()
        self._data: dict[dns.name.Name, dict[int, dns.rrset.RRset]] = {}
        self._servfail = {_name(n) for n in servfail}
        self._drop = {_name(n) for n in drop}
        self.queries: list[tuple[str, str]] = []
        self.errors: list[BaseException] = []
        for name, types in (records or {}).items():
            for rdtype, values in types.items():
                for value in [values] if isinstance(values, str) else values:
                    self.add(name, rdtype, value)
        if zone_text is not None:
            zone = dns.zone.from_text(
                textwrap.dedent(zone_text).strip() + "\n",
                origin=origin,
                relativize=False,
                check_origin=False,
            )
            for zname, rdataset in zone.iterate_rdatasets():
                for rd in rdataset:
                    self._add_rdata(zname, rd, rdataset.ttl)
        self._udp: socketserver.ThreadingUDPServer | None = None
        self._tcp: socketserver.ThreadingTCPServer | None = None
        self._threads: list[threading.Thread] = []
        self.host = "127.0.0.1"
        self.port = 0

    # --- data -----------------------------------------------------------------------------
    def add(self, name: str, rdtype: str, value: str, ttl: int | None = None) -> None:
        """Add one record; `value` is rdata text (TXT values are quoted/split for you)."""
        rdt = dns.rdatatype.from_text(rdtype)
        if rdt == dns.rdatatype.TXT:
            value = txt_rdata(value)
        rd = dns.rdata.from_text(
            dns.rdataclass.IN, rdt, value, origin=dns.name.root, relativize=False
        )
        self._add_rdata(_name(name), rd, self.ttl if ttl is None else ttl)

    def _add_rdata(self, name: dns.name.Name, rd: dns.rdata.Rdata, ttl: int) -> None:
        with self._lock:
            node = self._data.setdefault(name, {})
            rrset = node.get(rd.rdtype)
            if rrset is None:
                rrset = node[rd.rdtype] = dns.rrset.RRset(name, dns.rdataclass.IN, rd.rdtype)
            rrset.add(rd, ttl)

    def remove(self, name: str, rdtype: str | None = None) -> None:
        """Forget a name (or one type of it)."""
        with self._lock:
            node = self._data.get(_name(name), {})
            if rdtype is None:
                self._data.pop(_name(name), None)
            else:
                node.pop(dns.rdatatype.from_text(rdtype), None)

    def set_servfail(self, name: str, on: bool = True) -> None:
        (self._servfail.add if on else self._servfail.discard)(_name(name))

    def set_drop(self, name: str, on: bool = True) -> None:
        """Never answer queries for `name` (the client times out)."""
        (self._drop.add if on else self._drop.discard)(_name(name))

    @property
    def address(self) -> str:
        """ "host:port", the form `[delivery] nameservers` takes."""
        return f"{self.host}:{self.port}"

    # --- answering ------------------------------------------------------------------------
    def answer(self, query: dns.message.Message) -> dns.message.Message | None:
        """Build the response to a parsed query (None: stay silent)."""
        response = dns.message.make_response(query)
        response.flags |= dns.flags.AA
        if not query.question:
            response.set_rcode(dns.rcode.FORMERR)
            return response
        q = query.question[0]
        with self._lock:
            self.queries.append(
                (q.name.to_text(omit_final_dot=True), dns.rdatatype.to_text(q.rdtype))
            )
            if q.name in self._drop:
                return None
            if q.name in self._servfail:
                response.set_rcode(dns.rcode.SERVFAIL)
                return response
            name = q.name
            for _ in range(8):  # follow CNAME chains inside our data
                node = self._data.get(name)
                if node is None:
                    if not self._exists(name):
                        response.set_rcode(dns.rcode.NXDOMAIN)
                    return response
                cname = node.get(dns.rdatatype.CNAME)
                if cname is not None and q.rdtype != dns.rdatatype.CNAME:
                    response.answer.append(cname)
                    name = cname[0].target
                    continue
                found = node.get(q.rdtype)
                if found is not None:
                    response.answer.append(found)
                return response
        return response

    def _exists(self, name: dns.name.Name) -> bool:
        """An empty non-terminal (a parent of a known name) exists: NODATA, not NXDOMAIN."""
        return any(known.is_subdomain(name) for known in self._data)

    def _wire(self, data: bytes, *, udp: bool) -> bytes | None:
        try:
            query = dns.message.from_wire(data)
        except Exception:
            return None
        try:
            response = self.answer(query)
        except Exception as exc:  # a bug in the stub or its data: say so, loudly but validly
            self.errors.append(exc)
            response = dns.message.make_response(query)
            response.set_rcode(dns.rcode.SERVFAIL)
        if response is None:
            return None
        max_size = 65535 if not udp else max(512, query.payload) if query.edns >= 0 else 512
        try:
            return response.to_wire(max_size=max_size)
        except dns.exception.TooBig:
            response.answer.clear()
            response.flags |= dns.flags.TC
            return response.to_wire()

    # --- lifecycle ------------------------------------------------------------------------
    def start(self) -> DnsStub:
        stub = self

        class Udp(socketserver.BaseRequestHandler):
            def handle(self) -> None:
                data, sock = self.request
                out = stub._wire(data, udp=True)
                if out is not None:
                    sock.sendto(out, self.client_address)

        class Tcp(socketserver.BaseRequestHandler):
            def handle(self) -> None:
                with contextlib.suppress(OSError):
                    while True:
                        head = _recv_exact(self.request, 2)
                        if head is None:
                            return
                        data = _recv_exact(self.request, struct.unpack("!H", head)[0])
                        if data is None:
                            return
                        out = stub._wire(data, udp=False)
                        if out is not None:
                            self.request.sendall(struct.pack("!H", len(out)) + out)

        for _ in range(20):  # find a port free for both UDP and TCP
            udp = _Udp((self.host, 0), Udp)
            try:
                tcp = _Tcp((self.host, udp.server_address[1]), Tcp)
            except OSError:
                udp.server_close()
                continue
            break
        else:  # pragma: no cover
            raise OSError("no free port for the DNS stub")
        self._udp, self._tcp, self.port = udp, tcp, udp.server_address[1]
        for server in (udp, tcp):
            t = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05})
            t.daemon = True
            t.start()
            self._threads.append(t)
        return self

    def stop(self) -> None:
        for server in (self._udp, self._tcp):
            if server is not None:
                server.shutdown()
                server.server_close()
        for t in self._threads:
            t.join(timeout=2)
        self._udp = self._tcp = None
        self._threads.clear()

    def __enter__(self) -> DnsStub:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    # --- helpers for other libraries ------------------------------------------------------
    def dnsfunc(self, name: bytes | str, timeout: float = 5) -> bytes | None:
        """dkimpy's `dnsfunc`: a real TXT query to this server, strings concatenated."""
        qname = name.decode() if isinstance(name, bytes) else name
        query = dns.message.make_query(qname, "TXT")
        response = dns.query.tcp(query, self.host, port=self.port, timeout=timeout)
        for rrset in response.answer:
            if rrset.rdtype == dns.rdatatype.TXT:
                return b"".join(rrset[0].strings)
        return None


class _Quiet:
    daemon_threads = True
    allow_reuse_address = False

    def handle_error(self, request: object, client_address: object) -> None:
        pass  # a client that went away mid-answer is not the test's business


class _Udp(_Quiet, socketserver.ThreadingUDPServer):
    pass


class _Tcp(_Quiet, socketserver.ThreadingTCPServer):
    pass


def _recv_exact(sock: socket.socket, n: int) -> bytes | None:
    buf = b""
    while len(buf) < n:
        chunk = sock.recv(n - len(buf))
        if not chunk:
            return None
        buf += chunk
    return buf


def _name(text: str) -> dns.name.Name:
    return dns.name.from_text(text.rstrip(".") + ".")
