"""The sans-IO server engine: whole input, byte by byte, pipelined, and fuzzed (hypothesis)."""

from __future__ import annotations

import re

from hypothesis import given, settings
from hypothesis import strategies as st

from postroom.smtp import replies as R
from postroom.smtp.server_protocol import (
    NEED_DATA,
    Auth,
    ConnectionClosed,
    DataStart,
    EndOfMessage,
    Hello,
    Mail,
    MessageData,
    Phase,
    Quit,
    Rcpt,
    Respond,
    ServerConnection,
    StartTls,
)

REPLY_LINE = re.compile(rb"^[2-5]\d\d[ -]")


def policy(conn: ServerConnection, event: object) -> R.Reply:
    """A permissive stand-in for the submission service: accepts everything well-formed."""
    if isinstance(event, Respond):
        return event.reply
    if isinstance(event, Hello):
        return R.reply(250, None, "test", *conn.ehlo_keywords())
    if isinstance(event, Mail):
        return R.sender_ok(event.path.address)
    if isinstance(event, Rcpt):
        if event.path.address.startswith("blocked"):
            return R.recipient_not_allowed(event.path.address)
        return R.recipient_ok(event.path.address)
    if isinstance(event, DataStart):
        return R.R354_DATA
    if isinstance(event, EndOfMessage):
        return R.R552_TOO_BIG if event.oversized else R.queued("x")
    if isinstance(event, Auth):
        return R.R235_AUTH_OK if event.password == "key" else R.R535_AUTH_FAILED
    if isinstance(event, StartTls):
        return R.R454_TLS_UNAVAILABLE
    if isinstance(event, Quit):
        return R.R221_BYE
    raise AssertionError(event)


def drive(conn: ServerConnection, chunks: list[bytes]) -> tuple[bytes, list[object], bytes]:
    """Feed chunks; answer every event; return (wire output, events, message data)."""
    out, events, data = b"", [], b""
    for chunk in [*chunks, b""]:
        conn.receive_data(chunk)
        while True:
            ev = conn.next_event()
            if ev is NEED_DATA or isinstance(ev, ConnectionClosed):
                break
            events.append(ev)
            if isinstance(ev, MessageData):
                data += ev.data
                continue
            out += conn.send(policy(conn, ev))
        if conn.phase is Phase.CLOSED:
            break
    return out, events, data


def new(**kw: object) -> ServerConnection:
    args = {"max_message_size": 1000, "max_recipients": 3, "tls_available": True}
    args.update(kw)
    return ServerConnection(**args)  # type: ignore[arg-type]


SESSION = (
    b"EHLO client.example\r\nMAIL FROM:<a@example.com> SIZE=20\r\nRCPT TO:<b@example.org>\r\n"
    b"RCPT TO:<blocked@example.org>\r\nRCPT TO:<bad address>\r\nDATA\r\n"
    b"Subject: hi\r\n\r\n..leading dot\r\n.x\r\nbody\r\n.\r\nQUIT\r\n"
)
EXPECTED = [
    b"250 2.1.0 Sender <a@example.com> OK",
    b"250 2.1.5 Recipient <b@example.org> OK",
    b"550 5.7.1 Recipient <blocked@example.org> not allowed",
    b"501 5.1.7 Bad recipient address <bad address>",
    b"354 End data with <CR><LF>.<CR><LF>",
    b"250 2.6.0 Message queued as <x>",
    b"221 2.0.0 Bye",
]


def replies_after_ehlo(out: bytes) -> list[bytes]:
    lines = out.split(b"\r\n")
    return [ln for ln in lines if ln and not ln.startswith(b"250-")][1:]


def test_pipelined_session_whole_input() -> None:
    out, _, data = drive(new(), [SESSION])
    assert replies_after_ehlo(out) == EXPECTED
    assert data == b"Subject: hi\r\n\r\n.leading dot\r\nx\r\nbody\r\n"


def test_byte_by_byte_gives_the_same_result() -> None:
    whole = drive(new(), [SESSION])
    split = drive(new(), [SESSION[i : i + 1] for i in range(len(SESSION))])
    assert split[0] == whole[0]
    assert split[2] == whole[2]


def test_ehlo_lists_the_extensions() -> None:
    out, _, _ = drive(new(), [b"EHLO x\r\n"])
    for word in (b"PIPELINING", b"SIZE 1000", b"8BITMIME", b"SMTPUTF8", b"STARTTLS",
                 b"ENHANCEDSTATUSCODES"):
        assert word in out
    assert b"AUTH" not in out  # cleartext: AUTH not offered
    out, _, _ = drive(new(tls_active=True), [b"EHLO x\r\n"])
    assert b"AUTH LOGIN PLAIN" in out and b"STARTTLS" not in out
    out, _, _ = drive(new(allow_plaintext_auth=True), [b"EHLO x\r\n"])
    assert b"AUTH LOGIN PLAIN" in out


def test_sequence_errors() -> None:
    out, _, _ = drive(new(), [b"MAIL FROM:<a@b.co>\r\nEHLO x\r\nRCPT TO:<a@b.co>\r\nDATA\r\n"])
    lines = [ln for ln in out.split(b"\r\n") if ln and not ln.startswith(b"250")]
    assert lines == [
        b"503 5.5.1 Send EHLO/HELO first",
        b"503 5.5.1 Need MAIL command first",
        b"503 5.5.1 Need MAIL command first",
    ]


def test_unknown_and_syntax_and_misc() -> None:
    out, _, _ = drive(new(), [b"HELO x\r\nFOO\r\nMAIL TO:<x>\r\nNOOP\r\nVRFY bob\r\nHELP\r\n"
                              b"RSET\r\nMAIL FROM:<a@b.co> SIZE=5000\r\n"])
    text = out.decode()
    assert "500 5.5.1 Command not recognized" in text
    assert "501 5.5.4 Syntax error" in text
    assert "250 2.0.0 OK" in text
    assert "252 2.5.0" in text
    assert "214 2.0.0" in text
    assert "250 2.0.0 Reset OK" in text
    assert "552 5.3.4 Message size exceeds fixed maximum message size" in text


def test_hello_without_a_name_names_the_verb_used() -> None:
    out, _, _ = drive(new(), [b"HELO\r\nEHLO\r\n"])
    assert out.split(b"\r\n")[:2] == [b"501 5.5.4 Syntax: HELO hostname",
                                       b"501 5.5.4 Syntax: EHLO hostname"]


def test_too_many_recipients() -> None:
    rcpts = b"".join(b"RCPT TO:<r%d@example.org>\r\n" % i for i in range(4))
    out, _, _ = drive(new(), [b"EHLO x\r\nMAIL FROM:<a@b.co>\r\n" + rcpts])
    assert out.rstrip().endswith(b"452 4.5.3 Too many recipients")


def test_oversized_message_is_read_to_the_end_then_refused() -> None:
    body = b"x" * 70 + b"\r\n"
    msg = b"EHLO x\r\nMAIL FROM:<a@b.co>\r\nRCPT TO:<c@d.co>\r\nDATA\r\n" + body * 40 + b".\r\nNOOP\r\n"
    out, events, data = drive(new(), [msg])
    assert b"552 5.3.4" in out and out.rstrip().endswith(b"250 2.0.0 OK")
    assert len(data) == 1000  # never more than the limit is handed over
    assert any(isinstance(e, EndOfMessage) and e.oversized for e in events)


def test_bare_lf_dot_does_not_end_the_message() -> None:
    msg = b"EHLO x\r\nMAIL FROM:<a@b.co>\r\nRCPT TO:<c@d.co>\r\nDATA\r\nA\n.\nMAIL FROM:<e@f.co>\r\n.\r\n"
    _out, events, data = drive(new(), [msg])
    assert data == b"A\n.\nMAIL FROM:<e@f.co>\r\n"
    assert sum(isinstance(e, Mail) for e in events) == 1


def test_auth_plain_and_login() -> None:
    import base64

    plain = base64.b64encode(b"\x00apikey\x00key")
    conn = new(tls_active=True)
    out, _events, _ = drive(conn, [b"EHLO x\r\nAUTH PLAIN " + plain + b"\r\n"])
    assert b"235 2.7.0 Authentication successful" in out and conn.authenticated
    conn = new(tls_active=True)
    out, _, _ = drive(conn, [b"EHLO x\r\nAUTH LOGIN\r\n", base64.b64encode(b"apikey") + b"\r\n",
                             base64.b64encode(b"wrong") + b"\r\n"])
    assert b"334 VXNlcm5hbWU6" in out and b"334 UGFzc3dvcmQ6" in out
    assert b"535 5.7.8 Authentication credentials invalid" in out
    out, _, _ = drive(new(tls_active=True), [b"EHLO x\r\nAUTH PLAIN\r\n", plain + b"\r\n"])
    assert b"334 \r\n" in out and b"235 2.7.0" in out
    out, _, _ = drive(new(tls_active=True), [b"EHLO x\r\nAUTH PLAIN !!!\r\nAUTH LOGIN\r\n*\r\n"])
    assert b"501 5.5.2" in out and b"501 5.7.0 Authentication cancelled" in out
    out, _, _ = drive(new(), [b"EHLO x\r\nAUTH PLAIN " + plain + b"\r\n"])
    assert b"538 5.7.11" in out


def test_starttls_discards_pipelined_commands() -> None:
    conn = new()
    conn.receive_data(b"EHLO x\r\nSTARTTLS\r\nMAIL FROM:<evil@x.co>\r\n")
    assert isinstance(conn.next_event(), Hello)
    conn.send(R.reply(250, None, "ok"))
    assert isinstance(conn.next_event(), StartTls)
    conn.send(R.R220_GO_TLS)
    assert conn.next_event() is NEED_DATA
    conn.tls_established()
    assert conn.tls_active and not conn.greeted
    assert conn.next_event() is NEED_DATA  # the injected MAIL is gone


def test_over_long_line_is_refused_and_session_continues() -> None:
    out, _, _ = drive(new(), [b"NOOP " + b"a" * 10000 + b"\r\nNOOP\r\n"])
    assert out.startswith(b"500 5.5.2 Line too long") and out.endswith(b"250 2.0.0 OK\r\n")


def test_answering_twice_is_a_local_error() -> None:
    import pytest

    from postroom.smtp.errors import LocalProtocolError

    conn = new()
    conn.receive_data(b"NOOP\r\nNOOP\r\n")
    conn.next_event()
    with pytest.raises(LocalProtocolError):
        conn.next_event()


COMMANDS = st.sampled_from([
    b"EHLO a.example", b"HELO a", b"MAIL FROM:<s@a.example>", b"MAIL FROM:<>",
    b"RCPT TO:<r@b.example>", b"RCPT TO:<blocked@b.example>", b"DATA", b"RSET", b"NOOP",
    b"QUIT", b"VRFY x", b"AUTH PLAIN AHgAa2V5", b"AUTH LOGIN", b"STARTTLS", b"BDAT 10",
    b".", b"..", b"hello", b"*", b"", b"MAIL FROM:<a@b.example> SIZE=99999",
])


@settings(max_examples=300, deadline=None)
@given(
    parts=st.lists(st.one_of(COMMANDS.map(lambda c: c + b"\r\n"), st.binary(max_size=80)),
                   max_size=30),
    cuts=st.lists(st.integers(min_value=1, max_value=50), max_size=30),
    tls=st.booleans(),
)
def test_fuzz_never_crashes_and_every_reply_is_well_formed(parts, cuts, tls) -> None:
    stream = b"".join(parts)
    chunks, i = [], 0
    for c in cuts:
        chunks.append(stream[i : i + c])
        i += c
    chunks.append(stream[i:])
    out, _, _ = drive(new(tls_active=tls), [c for c in chunks if c])
    for line in out.split(b"\r\n")[:-1]:
        assert REPLY_LINE.match(line), line
    # the same bytes in one piece produce the same replies (framing is split-independent)
    assert drive(new(tls_active=tls), [stream] if stream else [])[0] == out
