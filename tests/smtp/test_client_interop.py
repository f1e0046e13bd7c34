"""The outbound client against real receivers on 127.0.0.1: aiosmtpd, a wire recorder, and
Postfix's smtp-sink when installed. Every wait is bounded; nothing leaves loopback."""

from __future__ import annotations

import asyncio
import email
import email.policy
import os
import shutil
import ssl
import stat
import subprocess
from collections.abc import Awaitable, Callable, Coroutine
from pathlib import Path
from typing import Any, TypeVar

import pytest
from cryptography import x509

from postroom.smtp.client import (
    AuthenticationFailed,
    ClientSession,
    ClientTimeouts,
    ConnectError,
    ConnectionLost,
    ProtocolFailure,
    SessionRefused,
    SmtpTimeout,
    TlsError,
    open_session,
)
from postroom.smtp.errors import LocalProtocolError
from postroom.smtp.tls import client_context, ensure_dev_certificate, server_context
from support.smtp_sinks import SmtpSink, WireRecorder, free_port, times, wait_listening

T = TypeVar("T")
FAST = ClientTimeouts(
    connect=2, greeting=2, ehlo=2, tls_handshake=2, mail=2, rcpt=2, data_init=2,
    data_block=2, data_final=2, quit=1,
)  # fmt: skip
MSG = b"From: s@sender.test\r\nTo: a@rcpt.test\r\nSubject: hello\r\n\r\nline one\r\n.dot\r\n"


def run(coro: Coroutine[Any, Any, T], timeout: float = 20.0) -> T:
    return asyncio.run(asyncio.wait_for(coro, timeout))


async def session_to(sink: Any, **kwargs: Any) -> ClientSession:
    kwargs.setdefault("tls", "off")
    kwargs.setdefault("timeouts", FAST)
    return await open_session(sink.host, sink.port, helo_name="client.test", **kwargs)


def deliver(sink: Any, rcpts: list[str], message: bytes = MSG, **kwargs: Any) -> Any:
    async def go() -> Any:
        async with await session_to(sink, **kwargs) as session:
            return session, await session.send("s@sender.test", rcpts, message)

    return run(go())


def test_plain_delivery() -> None:
    with SmtpSink() as sink:
        session, result = deliver(sink, ["a@rcpt.test"])
        assert result.outcomes["a@rcpt.test"].code == 250
        (got,) = sink.wait_for_messages(1)
    assert got.data == MSG and got.rcpt_tos == ["a@rcpt.test"] and not got.tls
    assert got.mail_options == [f"SIZE={len(MSG)}"]
    assert not session.tls_active and session.capabilities.esmtp


def test_starttls_opportunistic_and_required() -> None:
    with SmtpSink(starttls=True) as sink:
        for mode in ("opportunistic", "required"):
            session, result = deliver(sink, ["a@rcpt.test"], tls=mode)
            assert session.tls_active and session.tls_version in ("TLSv1.2", "TLSv1.3")
            assert result.accepted == ["a@rcpt.test"]
            assert not session.capabilities.starttls  # capabilities re-read after TLS
        assert all(m.tls for m in sink.wait_for_messages(2))


def test_starttls_verified_against_the_sink_certificate() -> None:
    with SmtpSink(starttls=True) as sink:
        assert sink.cert_path is not None
        ctx = client_context(True, cafile=sink.cert_path)
        session, result = deliver(
            sink, ["a@rcpt.test"], tls="required", tls_context=ctx, server_hostname="localhost"
        )
        assert session.tls_active and result.accepted == ["a@rcpt.test"]
        with pytest.raises(TlsError, match="TLS handshake failed"):
            deliver(sink, ["a@rcpt.test"], tls="required", verify=True)


def test_opportunistic_falls_back_to_plaintext_by_reconnecting() -> None:
    with SmtpSink(starttls=True) as sink:
        session, result = deliver(sink, ["a@rcpt.test"], tls="opportunistic", verify=True)
        assert not session.tls_active and result.accepted == ["a@rcpt.test"]
        assert session.tls_fallback_reason and "handshake" in session.tls_fallback_reason
        assert sink.handler.ehlo_count == 2  # one EHLO per connection: the first was abandoned
        (got,) = sink.wait_for_messages(1)
        assert not got.tls


def test_tls_required_but_not_offered() -> None:
    with SmtpSink() as sink:
        with pytest.raises(TlsError, match="does not offer STARTTLS"):
            deliver(sink, ["a@rcpt.test"], tls="required")
        session, _ = deliver(sink, ["a@rcpt.test"], tls="opportunistic")
        assert not session.tls_active and session.tls_fallback_reason is None


@pytest.mark.parametrize("mechanism", ["PLAIN", "LOGIN"])
def test_auth_over_starttls(mechanism: str) -> None:
    other = {"PLAIN": "LOGIN", "LOGIN": "PLAIN"}[mechanism]
    with SmtpSink(starttls=True, users={"smart": "hostpw"}, auth_exclude=[other]) as sink:
        creds = {"username": "smart", "password": "hostpw", "tls": "required"}
        session, result = deliver(sink, ["a@rcpt.test"], **creds)
        assert session.authenticated and session.capabilities.auth_mechanisms == {mechanism}
        assert result.accepted == ["a@rcpt.test"]
        assert sink.wait_for_messages(1)[0].auth_user == "smart"
        with pytest.raises(AuthenticationFailed) as err:
            deliver(sink, ["a@rcpt.test"], **{**creds, "password": "wrong"})
        assert err.value.reply is not None and err.value.reply.code == 535


def test_credentials_only_over_tls_unless_tls_is_off() -> None:
    with SmtpSink(users={"u": "p"}, auth_require_tls=False) as sink:
        with pytest.raises(TlsError, match="credentials"):
            deliver(sink, ["a@rcpt.test"], tls="opportunistic", username="u", password="p")
        session, _ = deliver(sink, ["a@rcpt.test"], tls="off", username="u", password="p")
        assert session.authenticated


def test_several_messages_over_one_session() -> None:
    async def go(sink: SmtpSink) -> list[Any]:
        async with await session_to(sink) as session:
            results = [
                await session.send("s@sender.test", [f"r{i}@rcpt.test"], MSG + b"%d\r\n" % i)
                for i in range(5)
            ]
            assert session.transactions == 5
            return results

    with SmtpSink() as sink:
        results = run(go(sink))
        assert all(r.accepted == [f"r{i}@rcpt.test"] for i, r in enumerate(results))
        got = sink.wait_for_messages(5)
    assert len({m.peer for m in got}) == 1 and sink.handler.ehlo_count == 1


def test_one_bad_recipient_among_three() -> None:
    with SmtpSink(rcpt_replies={"bad@rcpt.test": "550 5.1.1 No such user"}) as sink:
        _, result = deliver(sink, ["a@rcpt.test", "bad@rcpt.test", "c@rcpt.test"])
        assert result.outcomes["bad@rcpt.test"].enhanced == "5.1.1"
        assert result.accepted == ["a@rcpt.test", "c@rcpt.test"]
        (got,) = sink.wait_for_messages(1)
        assert got.rcpt_tos == ["a@rcpt.test", "c@rcpt.test"]


def test_451_then_success_on_the_same_session() -> None:
    async def go(sink: SmtpSink) -> tuple[Any, Any]:
        async with await session_to(sink) as session:
            first = await session.send("s@sender.test", ["slow@rcpt.test"], MSG)
            second = await session.send("s@sender.test", ["slow@rcpt.test"], MSG)
            return first, second

    with SmtpSink(rcpt_replies={"slow@rcpt.test": times(1)}) as sink:
        first, second = run(go(sink))
    assert first.outcomes["slow@rcpt.test"].code == 451 and first.needs_rset
    assert second.accepted == ["slow@rcpt.test"]


def test_data_refusal_and_mail_refusal() -> None:
    with SmtpSink(data_replies=["451 4.3.0 Queue full"]) as sink:
        _, result = deliver(sink, ["a@rcpt.test", "b@rcpt.test"])
        assert {r.code for r in result.outcomes.values()} == {451}
        assert result.final_reply is not None and result.final_reply.enhanced == "4.3.0"
    with SmtpSink(mail_replies={"s@sender.test": "553 5.7.1 Sender refused"}) as sink:
        _, result = deliver(sink, ["a@rcpt.test", "b@rcpt.test"])
        assert {str(r) for r in result.outcomes.values()} == {"553 5.7.1 Sender refused"}


def test_421_closes_the_session() -> None:
    async def go(sink: SmtpSink) -> None:
        session = await session_to(sink)
        result = await session.send("s@sender.test", ["a@rcpt.test", "x@rcpt.test"], MSG)
        assert result.closing and not session.usable
        assert result.outcomes["x@rcpt.test"].code == 421
        with pytest.raises(ConnectionLost):
            await session.send("s@sender.test", ["a@rcpt.test"], MSG)
        await session.close()

    with SmtpSink(rcpt_replies={"x@rcpt.test": "421 4.3.2 Shutting down"}) as sink:
        run(go(sink))


def test_8bit_message_downgraded_for_a_7bit_peer() -> None:
    msg = "Subject: Grüße\r\nContent-Type: text/plain; charset=utf-8\r\n\r\nsmörgås\r\n"
    with SmtpSink(hide_extensions=["8BITMIME", "SMTPUTF8"]) as sink:
        session, result = deliver(sink, ["a@rcpt.test"], msg.encode())
        assert not session.capabilities.eight_bit_mime and result.accepted == ["a@rcpt.test"]
        (got,) = sink.wait_for_messages(1)
    assert got.data.isascii() and not any(o.startswith("BODY") for o in got.mail_options)
    parsed = email.message_from_bytes(got.data, policy=email.policy.default)
    assert parsed["Subject"] == "Grüße" and parsed.get_content().strip() == "smörgås"


def test_utf8_recipient_needs_smtputf8() -> None:
    with SmtpSink(smtputf8=False) as sink:
        _, result = deliver(sink, ["jörg@rcpt.test", "a@rcpt.test"])
        assert str(result.outcomes["jörg@rcpt.test"]).startswith("550 5.6.7")
        assert result.accepted == ["a@rcpt.test"]
    with SmtpSink(smtputf8=True) as sink:
        _, result = deliver(sink, ["jörg@rcpt.test"])
        assert result.accepted == ["jörg@rcpt.test"]
        assert "SMTPUTF8" in sink.wait_for_messages(1)[0].mail_options


def test_sink_serving_inside_the_test_loop() -> None:
    async def go() -> None:
        sink = SmtpSink(starttls=True)
        async with sink.serving(), await session_to(sink, tls="required") as session:
            result = await session.send("s@sender.test", ["a@rcpt.test"], MSG)
        assert result.accepted == ["a@rcpt.test"] and sink.messages[0].tls

    run(go())


def test_pipelining_observed_on_the_wire() -> None:
    rcpts = ["a@rcpt.test", "b@rcpt.test", "c@rcpt.test"]
    with WireRecorder() as wire:
        _, result = deliver(wire, rcpts)
        assert result.accepted == rcpts
    chunks = wire.chunks[0]
    batch = next(c for c in chunks if c.startswith(b"MAIL FROM"))
    assert batch == (
        b"MAIL FROM:<s@sender.test>\r\n"
        + b"".join(f"RCPT TO:<{r}>\r\n".encode() for r in rcpts)
        + b"DATA\r\n"
    )
    assert MSG.replace(b"\n.dot", b"\n..dot") + b".\r\n" in chunks  # one write, dot-stuffed
    assert wire.messages == [MSG]


def test_the_next_transaction_rides_behind_the_message() -> None:
    """RFC 2920 §3.1: message content may start a group, so the next transaction's MAIL, RCPT
    and DATA go out in the same write as the message before it."""
    envs = [("s@sender.test", [f"r{i}@rcpt.test"], MSG + b"%d\r\n" % i) for i in range(3)]

    async def go(wire: WireRecorder) -> list[bool]:
        opened = []
        async with await session_to(wire) as session:
            for i, env in enumerate(envs):
                then = envs[i + 1] if i + 1 < len(envs) else None
                result = await session.send(*env, then=then)
                assert result.accepted == env[1] and result.final_reply is not None
                opened.append(session.opened)
            assert session.transactions == 3
        return opened

    with WireRecorder() as wire:
        assert run(go(wire)) == [True, True, False]
        assert wire.messages == [env[2] for env in envs]
    chunks = wire.chunks[0]
    for i in (1, 2):
        riding = (b"MAIL FROM:<s@sender.test>\r\nRCPT TO:<r%d@rcpt.test>\r\nDATA\r\n" % i)
        body = envs[i - 1][2].replace(b"\n.dot", b"\n..dot")
        assert body + b".\r\n" + riding in chunks, chunks
    assert len([c for c in chunks if c.startswith(b"MAIL FROM")]) == 1  # only the first alone


def test_an_opened_transaction_is_dropped_when_the_server_closes_at_the_dot() -> None:
    async def go(sink: SmtpSink) -> None:
        session = await session_to(sink)
        result = await session.send("s@sender.test", ["a@rcpt.test"], MSG,
                                    then=("s@sender.test", ["b@rcpt.test"], MSG))
        assert result.closing and result.outcomes["a@rcpt.test"].code == 421
        assert not session.opened and not session.usable
        with pytest.raises(ConnectionLost):
            await session.send("s@sender.test", ["b@rcpt.test"], MSG)
        await session.close()

    with SmtpSink(add_extensions=["PIPELINING"],
                  data_replies=["421 4.3.2 Shutting down"]) as sink:
        run(go(sink))


def test_nothing_rides_behind_a_transaction_that_never_sends_its_message() -> None:
    async def go(wire: WireRecorder) -> None:
        async with await session_to(wire) as session:
            refused = await session.send("s@sender.test", ["x@rcpt.test"], MSG,
                                         then=("s@sender.test", ["b@rcpt.test"], MSG))
            assert refused.outcomes["x@rcpt.test"].code == 550 and not session.opened
            result = await session.send("s@sender.test", ["b@rcpt.test"], MSG)
            assert result.accepted == ["b@rcpt.test"]

    with WireRecorder(rcpt_replies={"x@rcpt.test": "550 5.1.1 No such user"}) as wire:
        run(go(wire))
        assert wire.messages == [MSG]


def test_a_next_transaction_that_cannot_be_built_opens_nothing() -> None:
    bad = ("s@sender.test", ["a\r\nRSET@rcpt.test"], MSG)

    async def go(wire: WireRecorder) -> None:
        async with await session_to(wire) as session:
            result = await session.send("s@sender.test", ["a@rcpt.test"], MSG, then=bad)
            assert result.accepted == ["a@rcpt.test"] and not session.opened
            with pytest.raises(LocalProtocolError):  # met by its own send, as without then=
                await session.send(*bad)

    with WireRecorder() as wire:
        run(go(wire))
        assert wire.messages == [MSG]


def test_send_must_continue_with_the_opened_transaction() -> None:
    async def go(wire: WireRecorder) -> None:
        session = await session_to(wire)
        await session.send("s@sender.test", ["a@rcpt.test"], MSG,
                           then=("s@sender.test", ["b@rcpt.test"], MSG))
        with pytest.raises(ValueError):
            await session.send("s@sender.test", ["c@rcpt.test"], MSG)
        assert not session.usable
        await session.close()

    with WireRecorder() as wire:
        run(go(wire))


def test_lockstep_without_pipelining_on_the_wire() -> None:
    with WireRecorder(extensions=["8BITMIME"]) as wire:
        _, result = deliver(wire, ["a@rcpt.test", "b@rcpt.test"])
        assert len(result.accepted) == 2
    assert wire.chunks[0][1:5] == [
        b"MAIL FROM:<s@sender.test>\r\n",
        b"RCPT TO:<a@rcpt.test>\r\n",
        b"RCPT TO:<b@rcpt.test>\r\n",
        b"DATA\r\n",
    ]


def test_connection_refused() -> None:
    port = free_port()
    with pytest.raises(ConnectError, match=f"127.0.0.1:{port}"):
        run(open_session("127.0.0.1", port, helo_name="c.test", tls="off", timeouts=FAST))


Handler = Callable[[asyncio.StreamReader, asyncio.StreamWriter], Awaitable[None]]


async def _scripted(handler: Handler, body: Callable[[int], Awaitable[None]]) -> None:
    """Run `body(port)` against a throwaway asyncio server speaking `handler`'s script."""
    tasks: set[asyncio.Task[None]] = set()

    async def serve(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        tasks.add(asyncio.current_task())  # type: ignore[arg-type]
        try:
            await handler(reader, writer)
        except (ConnectionError, asyncio.CancelledError):
            pass
        finally:
            writer.close()

    server = await asyncio.start_server(serve, "127.0.0.1", 0)
    try:
        await body(server.sockets[0].getsockname()[1])
    finally:
        server.close()
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        await server.wait_closed()


def test_silent_server_times_out_and_rude_servers_are_refused() -> None:
    async def silent(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await reader.read()

    async def refuse(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        writer.write(b"554 5.7.1 No SMTP service here\r\n")
        await reader.readline()
        writer.write(b"221 Bye\r\n")
        writer.close()

    async def hang_up(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        writer.write(b"220 hi\r\n")
        await reader.readline()
        writer.close()

    async def garbage(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        writer.write(b"HTTP/1.1 400 Bad Request\r\n\r\n")
        await reader.read()

    async def trickle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        for byte in b"220 a greeting that never ends" * 10:  # a byte every 50 ms, no CRLF
            writer.write(bytes([byte]))
            await asyncio.sleep(0.05)

    t = ClientTimeouts(connect=1, greeting=0.3, ehlo=1, quit=0.3)

    async def attempt(port: int) -> None:
        await open_session("127.0.0.1", port, helo_name="c.test", tls="off", timeouts=t)

    async def expect(handler: Any, error: type[Exception], match: str) -> None:
        async def body(port: int) -> None:
            with pytest.raises(error, match=match):
                await attempt(port)

        await _scripted(handler, body)

    async def go() -> None:
        await expect(silent, SmtpTimeout, "greeting")
        started = asyncio.get_running_loop().time()
        await expect(trickle, SmtpTimeout, "greeting")  # one deadline for the whole reply
        assert asyncio.get_running_loop().time() - started < 1.5
        await expect(refuse, SessionRefused, "554 5.7.1")
        await expect(hang_up, ConnectionLost, "EHLO")
        await expect(garbage, ProtocolFailure, "protocol error")

    run(go())


def test_stalled_transaction_times_out_and_breaks_the_session() -> None:
    async def stall_after_ehlo(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        writer.write(b"220 hi\r\n")
        await reader.readline()
        writer.write(b"250-hi\r\n250 PIPELINING\r\n")
        await reader.read()

    async def body(port: int) -> None:
        t = ClientTimeouts(connect=1, greeting=1, ehlo=1, mail=0.3, quit=0.3)
        session = await open_session("127.0.0.1", port, helo_name="c.test", tls="off", timeouts=t)
        with pytest.raises(SmtpTimeout) as err:
            await session.send("s@sender.test", ["a@rcpt.test"], MSG)
        assert err.value.command == "MAIL" and not session.usable
        await session.close()

    run(_scripted(stall_after_ehlo, body))


def test_dev_certificate_and_contexts(tmp_path: Path) -> None:
    cert, key = ensure_dev_certificate(tmp_path / "data", "mx.example.test")
    assert (cert.name, key.name) == ("dev-cert.pem", "dev-key.pem")
    assert stat.S_IMODE(key.stat().st_mode) == 0o600
    parsed = x509.load_pem_x509_certificate(cert.read_bytes())
    san = parsed.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    assert san.get_values_for_type(x509.DNSName) == ["mx.example.test", "localhost"]
    assert [str(ip) for ip in san.get_values_for_type(x509.IPAddress)] == ["127.0.0.1"]
    lifetime = parsed.not_valid_after_utc - parsed.not_valid_before_utc
    assert 365 <= lifetime.days <= 366
    before = cert.read_bytes()
    assert ensure_dev_certificate(tmp_path / "data", "mx.example.test") == (cert, key)
    assert cert.read_bytes() == before  # kept, not regenerated
    server = server_context(cert, key)
    assert server.minimum_version == ssl.TLSVersion.TLSv1_2
    for verify in (False, True):
        ctx = client_context(verify)
        assert ctx.minimum_version == ssl.TLSVersion.TLSv1_2
        assert ctx.check_hostname is verify


SMTP_SINK = shutil.which("smtp-sink") or ("/usr/sbin/smtp-sink" if os.path.exists("/usr/sbin/smtp-sink") else None)  # fmt: skip


@pytest.mark.skipif(SMTP_SINK is None, reason="Postfix smtp-sink is not installed")
def test_postfix_smtp_sink_with_pipelining() -> None:
    port = free_port()
    cmd = [SMTP_SINK, "-c", f"127.0.0.1:{port}", "100"]
    if os.geteuid() == 0:
        cmd[1:1] = ["-u", "nobody"]
    proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        wait_listening(port)

        async def go() -> None:
            session = await open_session(
                "127.0.0.1", port, helo_name="c.test", tls="off", timeouts=FAST
            )
            async with session:
                assert session.capabilities.pipelining
                envs = [("s@sender.test", [f"r{i}{j}@rcpt.test" for j in range(4)], MSG)
                        for i in range(3)]
                for i, env in enumerate(envs):  # each opened behind the one before
                    then = envs[i + 1] if i + 1 < len(envs) else None
                    result = await session.send(*env, then=then)
                    assert result.accepted == env[1] and result.final_reply is not None
                    assert session.opened == (then is not None)

        run(go())
    finally:
        proc.terminate()
        proc.wait(timeout=5)


def test_large_message_goes_through_flow_control() -> None:
    line = b"x" * 76 + b"\r\n"
    message = b"Subject: big\r\n\r\n" + line * 60_000 + b".leading dot\r\n"  # ~4.7 MB
    with SmtpSink() as sink:
        _, result = deliver(sink, ["a@rcpt.test"], message)
        assert result.accepted == ["a@rcpt.test"]
        assert sink.wait_for_messages(1)[0].data == message
