"""The HTTPS half of MTA-STS: GET https://mta-sts.<domain>/.well-known/mta-sts.txt.

RFC 8461 §3.3: the certificate must be valid for `mta-sts.<domain>`, redirects are not
followed, only a 200 counts, and the body is a text/plain policy (64 KiB at most here). The
request goes to the addresses our own resolver gives for that name (the `[delivery]
nameservers`, like every other delivery lookup), with the name in SNI and Host, so that tests
and split-horizon setups see one consistent DNS. A client per fetch: a shared connection pool is
keyed by address, and a connection verified for one domain's policy host must never serve
another domain's. Fetches are rare (policies are cached for their max_age).

One deadline (`timeout`, 10 s) covers the whole fetch: the name's lookup and every address.
Connecting has shorter ones of its own (a quarter of it for the TCP connection, and again for
the TLS handshake), so that an address that never answers leaves time for the next one
(`_Unreachable`).
"""

from __future__ import annotations

import asyncio
import ssl
from typing import Protocol

import httpx

from postroom.delivery.dns import DnsError
from postroom.delivery.mta_sts import MAX_POLICY_BYTES, Policy, PolicyError, parse_policy

__all__ = ["DomainResolver", "FetchError", "PolicyFetcher"]

WELL_KNOWN = "/.well-known/mta-sts.txt"


class FetchError(Exception):
    """The policy could not be fetched or was invalid; the text is fit for a log line."""


class _Unreachable(FetchError):
    """No connection to this address (the next one may answer)."""


class DomainResolver(Protocol):
    async def txt(self, name: str) -> list[str]: ...

    async def resolve_addresses(self, host: str) -> list[str]: ...


class PolicyFetcher:
    """GET https://mta-sts.<domain>/.well-known/mta-sts.txt (RFC 8461 §3.3)."""

    def __init__(self, resolver: DomainResolver, context: ssl.SSLContext, *, port: int = 443,
                 timeout: float = 10.0, connect_timeout: float | None = None) -> None:
        self._resolver, self._context = resolver, context
        self._port, self._timeout = port, timeout
        self._connect_timeout = timeout / 4 if connect_timeout is None else connect_timeout

    async def __call__(self, domain: str) -> Policy:
        host = f"mta-sts.{domain}"
        try:
            async with asyncio.timeout(self._timeout):
                body = await self._first_answer(host)
        except TimeoutError:
            raise FetchError(f"fetching from {host} timed out") from None
        try:
            return parse_policy(body)
        except PolicyError as exc:
            raise FetchError(f"invalid policy at {host}: {exc}") from None

    async def _first_answer(self, host: str) -> bytes:
        """The policy bytes from the first of `host`'s addresses that can be reached."""
        try:
            addresses = await self._resolver.resolve_addresses(host)
        except DnsError as exc:
            raise FetchError(exc.reason) from None
        error = FetchError(f"{host} has no address")
        for address in addresses:
            try:
                return await self._get(host, address)
            except _Unreachable as exc:
                error = exc
        raise error

    async def _get(self, host: str, address: str) -> bytes:
        where = f"[{address}]" if ":" in address else address
        url = f"https://{where}:{self._port}{WELL_KNOWN}"
        headers = {"Host": host, "Accept-Encoding": "identity", "User-Agent": "postroom"}
        timeout = httpx.Timeout(self._timeout, connect=self._connect_timeout)
        async with httpx.AsyncClient(verify=self._context, follow_redirects=False,
                                     trust_env=False, timeout=timeout) as client:
            try:
                async with client.stream("GET", url, headers=headers,
                                         extensions={"sni_hostname": host}) as response:
                    return await _body(host, response)
            except (httpx.ConnectError, httpx.ConnectTimeout) as exc:
                raise _Unreachable(f"cannot connect to {host} at {address}: {_why(exc)}") from None
            except (httpx.HTTPError, httpx.InvalidURL, OSError, ValueError) as exc:
                raise FetchError(f"fetching from {host} failed: {_why(exc)}") from None


async def _body(host: str, response: httpx.Response) -> bytes:
    """The policy bytes: status 200, text/plain, not encoded, at most 64 KiB."""
    if response.status_code != 200:
        raise FetchError(f"{host} answered HTTP {response.status_code}")
    media = response.headers.get("content-type", "").partition(";")[0].strip().lower()
    if media != "text/plain":
        raise FetchError(f"{host} served {media or 'no media type'}, not text/plain")
    if response.headers.get("content-encoding", "identity").lower() != "identity":
        raise FetchError(f"{host} served an encoded policy")
    body = bytearray()
    async for chunk in response.aiter_raw():
        body += chunk
        if len(body) > MAX_POLICY_BYTES:
            raise FetchError(f"the policy at {host} is larger than 64 KiB")
    return bytes(body)


def _why(exc: BaseException) -> str:
    """A short reason; a certificate problem by name (httpx wraps it in a ConnectError)."""
    cause: BaseException | None = exc
    while cause is not None and not isinstance(cause, ssl.SSLError):
        cause = cause.__cause__ or cause.__context__
    if isinstance(cause, ssl.SSLCertVerificationError):
        return f"certificate not valid ({cause.verify_message})"
    return str(exc) or type(exc).__name__
