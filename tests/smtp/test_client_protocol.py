"""The sans-IO client core: reply parsing, capabilities, commands, transactions, message prep."""

from __future__ import annotations

import base64
import email
import email.policy
import itertools

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from postroom.smtp.client_message import (
    NotConvertible,
    dot_stuff,
    normalise_crlf,
    prepare_message,
    split_header,
)
from postroom.smtp.client_protocol import (
    Capabilities,
    LocalProtocolError,
    RemoteProtocolError,
    ReplyParser,
    auth_plain_command,
    auth_response,
    ehlo_command,
    mail_command,
    parse_ehlo,
    rcpt_command,
)
from postroom.smtp.client_transaction import Step, Transaction
from postroom.smtp.replies import Reply, reply

EHLO = (
    b"250-mx.example.org Hello\r\n250-PIPELINING\r\n250-SIZE 1000\r\n250-8BITMIME\r\n"
    b"250-ENHANCEDSTATUSCODES\r\n250-smtputf8\r\n250-auth PLAIN login\r\n250 STARTTLS\r\n"
)


def parse_all(data: bytes) -> list[Reply]:
    return ReplyParser().feed(data)


def caps(*keywords: str) -> Capabilities:
    lines = ["mx.test", *keywords]
    return parse_ehlo(Reply(250, None, tuple(lines)))


OK = reply(250, "2.0.0", "OK")
GO = reply(354, None, "go ahead")
FULL = caps("PIPELINING", "8BITMIME", "SMTPUTF8", "SIZE 100000")
LOCKSTEP = caps("8BITMIME", "SMTPUTF8")
MSG = b"Subject: t\r\n\r\nbody\r\n"


# --- reply parser -----------------------------------------------------------------------------


def test_single_and_multiline_replies_whole() -> None:
    got = parse_all(b"220 mx ESMTP\r\n" + EHLO)
    assert [r.code for r in got] == [220, 250]
    assert got[1].lines[0] == "mx.example.org Hello" and len(got[1].lines) == 8


def test_byte_by_byte_gives_the_same_replies() -> None:
    data = b"250-first\r\n250 2.1.0 second\r\n550 5.1.1 <x@y> unknown\r\n"
    parser = ReplyParser()
    got: list[Reply] = []
    for i in range(len(data)):
        got += parser.feed(data[i : i + 1])
    assert got == parse_all(data)
    assert got[1] == Reply(550, "5.1.1", ("<x@y> unknown",))


def test_trailing_partial_reply_stays_pending() -> None:
    parser = ReplyParser()
    assert parser.feed(b"250 OK\r\n354 go") == [Reply(250, None, ("OK",))]
    assert parser.has_pending
    assert parser.feed(b" ahead\r\n") == [Reply(354, None, ("go ahead",))]
    assert not parser.has_pending


def test_enhanced_code_is_split_from_every_line() -> None:
    (rep,) = parse_all(b"451-4.3.0 busy\r\n451-4.3.0\r\n451 4.3.0 try later\r\n")
    assert rep == Reply(451, "4.3.0", ("busy", "", "try later"))
    (rep,) = parse_all(b"250 2.5.0\r\n")  # a code of another class is not an enhanced code
    assert rep.enhanced == "2.5.0"
    (rep,) = parse_all(b"550 4.1.1 odd\r\n")
    assert rep.enhanced is None and rep.lines == ("4.1.1 odd",)


def test_lenient_forms_bare_lf_code_only_and_empty_text() -> None:
    assert parse_all(b"250\n250-\r\n250 \r\n") == [
        Reply(250, None, ("",)),
        Reply(250, None, ("", "")),
    ]


@pytest.mark.parametrize(
    "data",
    [
        b"hello\r\n",
        b"25\r\n",
        b"2500 x\r\n",
        b"250x\r\n",
        b"150 old\r\n",
        b"650 new\r\n",
        b"250-a\r\n251 b\r\n",
        b"2a0 b\r\n",
        b"250 " + b"x" * 5000 + b"\r\n",
        b"250 " + b"x" * 5000,
    ],
)
def test_malformed_input_raises_remote_protocol_error(data: bytes) -> None:
    parser = ReplyParser()
    with pytest.raises(RemoteProtocolError):
        parser.feed(data)
    with pytest.raises(RemoteProtocolError):  # a broken stream stays broken
        parser.feed(b"250 OK\r\n")


def test_runaway_multiline_reply_is_refused() -> None:
    with pytest.raises(RemoteProtocolError):
        ReplyParser(max_lines=10).feed(b"250-x\r\n" * 11)


def test_control_characters_in_text_are_neutralised() -> None:
    (rep,) = parse_all(b"250 a\x00b\x1bc\td\r\n")
    assert rep.lines == ("a?b?c\td",)


@given(st.binary(max_size=300), st.lists(st.integers(0, 300), max_size=20))
@settings(max_examples=400, deadline=None)
def test_property_random_bytes_yield_replies_or_protocol_error(
    data: bytes, cuts: list[int]
) -> None:
    parser = ReplyParser(max_line=64, max_lines=5)
    points = sorted({min(c, len(data)) for c in cuts} | {0, len(data)})
    try:
        for a, b in itertools.pairwise(points):
            for rep in parser.feed(data[a:b]):
                assert isinstance(rep, Reply) and 200 <= rep.code <= 599
    except RemoteProtocolError:
        pass


_texts = st.text(st.characters(min_codepoint=32, max_codepoint=126), max_size=40)


@given(
    st.integers(200, 599),
    st.lists(
        _texts.filter(lambda t: t == t.strip() and not t[:1].isdigit()), min_size=1, max_size=4
    ),
)
def test_property_server_replies_round_trip(code: int, lines: list[str]) -> None:
    enhanced = None if code // 100 == 3 else f"{code // 100}.1.0"
    sent = reply(code, enhanced, *lines)
    data = sent.to_bytes()
    assert parse_all(data) == [sent]
    parser = ReplyParser()
    assert [r for i in range(len(data)) for r in parser.feed(data[i : i + 1])] == [sent]


# --- capabilities -----------------------------------------------------------------------------


def test_capabilities_from_ehlo() -> None:
    c = parse_ehlo(parse_all(EHLO)[0])
    assert c.esmtp and c.pipelining and c.eight_bit_mime and c.smtputf8 and c.starttls
    assert c.enhanced_status_codes and c.size_supported and c.size_limit == 1000
    assert c.auth_mechanisms == {"PLAIN", "LOGIN"}
    assert c.has("pipelining") and not c.has("CHUNKING")


def test_capability_oddities() -> None:
    c = caps("SIZE", "AUTH=LOGIN PLAIN", "AUTH CRAM-MD5", "", "X-WEIRD_KEY!", "size 0")
    assert c.size_supported and c.size_limit is None
    assert c.auth_mechanisms == {"LOGIN", "PLAIN", "CRAM-MD5"}
    assert not c.has("X-WEIRD_KEY!")
    assert not Capabilities().pipelining and not Capabilities().esmtp
    # smtp-sink ends its EHLO reply with an empty "250 " line
    sink = parse_all(b"250-smtp-sink\r\n250-PIPELINING\r\n250 \r\n")[0]
    assert parse_ehlo(sink).keywords == {"PIPELINING": ()}


# --- commands ---------------------------------------------------------------------------------


def test_command_bytes() -> None:
    assert ehlo_command("client.example") == b"EHLO client.example\r\n"
    assert mail_command("") == b"MAIL FROM:<>\r\n"
    assert mail_command("a@b.c", ["SIZE=10", "BODY=8BITMIME"]) == (
        b"MAIL FROM:<a@b.c> SIZE=10 BODY=8BITMIME\r\n"
    )
    assert rcpt_command("jörg@b.c") == "RCPT TO:<jörg@b.c>\r\n".encode()
    token = base64.b64decode(auth_plain_command("user", "pässword")[11:-2])
    assert token == "\0user\0pässword".encode()
    assert auth_response("user") == b"dXNlcg==\r\n"


@pytest.mark.parametrize(
    "build",
    [
        lambda: mail_command("a@b.c\r\nRCPT TO:<evil@x>"),
        lambda: rcpt_command("a@b.c\nDATA"),
        lambda: rcpt_command(""),
        lambda: mail_command("a@b.c", ["X=1\r\n"]),
        lambda: ehlo_command("two words"),
        lambda: ehlo_command(""),
    ],
)
def test_command_injection_and_bad_arguments_are_local_errors(build) -> None:  # type: ignore[no-untyped-def]
    with pytest.raises(LocalProtocolError):
        build()


# --- message preparation ----------------------------------------------------------------------


def test_crlf_normalisation_and_dot_stuffing() -> None:
    assert normalise_crlf(b"a\nb\rc\r\nd") == b"a\r\nb\r\nc\r\nd"
    assert dot_stuff(b".a\r\nb\r\n.\r\n..c") == b"..a\r\nb\r\n..\r\n...c\r\n.\r\n"
    assert dot_stuff(b"") == b".\r\n"
    assert dot_stuff(b"x\r\n") == b"x\r\n.\r\n"


def test_seven_bit_message_is_untouched_without_8bitmime() -> None:
    msg = b"Subject: plain\r\nX-Long: a\r\n  folded\r\n\r\nhello\r\n"
    prepared = prepare_message(msg, eight_bit_mime=False, smtputf8=False)
    assert prepared.data == msg and not prepared.converted and not prepared.eight_bit


def test_8bit_message_passes_unchanged_to_8bitmime_peer() -> None:
    msg = "Subject: x\r\n\r\nhéllo\r\n".encode()
    prepared = prepare_message(msg, eight_bit_mime=True, smtputf8=False)
    assert prepared.data == msg and prepared.eight_bit and not prepared.converted


def test_8bit_text_becomes_quoted_printable() -> None:
    msg = (
        "From: a@example.org\r\nSubject: plain\r\nContent-Type: text/plain; charset=utf-8\r\n"
        "Content-Transfer-Encoding: 8bit\r\n\r\nhéllo wörld = 1\r\n.dotline\r\n"
    ).encode()
    prepared = prepare_message(msg, eight_bit_mime=False, smtputf8=False)
    assert prepared.data.isascii() and prepared.converted and not prepared.eight_bit
    parsed = email.message_from_bytes(prepared.data, policy=email.policy.default)
    assert parsed["Content-Transfer-Encoding"] == "quoted-printable"
    assert parsed.get_content().replace("\r\n", "\n") == "héllo wörld = 1\n.dotline\n"
    assert b"h=C3=A9llo w=C3=B6rld =3D 1\r\n.dotline\r\n" in prepared.data
    head = prepared.data.split(b"\r\n\r\n")[0]
    assert head.startswith(b"From: a@example.org\r\nSubject: plain\r\n")  # order kept


def test_8bit_attachment_becomes_base64_and_headers_get_encoded_words() -> None:
    blob = bytes(b for b in range(256) if b not in (10, 13))  # raw CR/LF cannot survive SMTP
    msg = (
        (
            "From: Zoë <z@example.org>\r\nSubject: Grüße\r\nMIME-Version: 1.0\r\n"
            'Content-Type: multipart/mixed; boundary="b"\r\nContent-Transfer-Encoding: 8bit\r\n\r\n'
            "--b\r\nContent-Type: text/plain; charset=utf-8\r\n\r\nsmörgås\r\n--b\r\n"
            "Content-Type: application/octet-stream\r\nContent-Transfer-Encoding: binary\r\n\r\n"
        ).encode()
        + blob
        + b"\r\n--b--\r\n"
    )
    prepared = prepare_message(msg, eight_bit_mime=False, smtputf8=False)
    assert prepared.data.isascii()
    parsed = email.message_from_bytes(prepared.data, policy=email.policy.default)
    assert parsed["Subject"] == "Grüße"
    assert parsed["From"].addresses[0].display_name == "Zoë"
    assert parsed["Content-Transfer-Encoding"] == "7bit"
    text, attachment = parsed.iter_parts()
    assert text.get_content() == "smörgås"  # the CRLF before a boundary belongs to it
    assert attachment["Content-Transfer-Encoding"] == "base64"
    assert attachment.get_content() == blob


def test_utf8_headers_go_raw_to_smtputf8_peers_and_encoded_otherwise() -> None:
    msg = "Subject: Grüße\r\n\r\nhi\r\n".encode()
    raw = prepare_message(msg, eight_bit_mime=True, smtputf8=True)
    assert raw.data == msg and raw.utf8_headers
    down = prepare_message(msg, eight_bit_mime=True, smtputf8=False)
    assert down.data.isascii() and b"=?utf-8?" in down.data and not down.utf8_headers
    parsed = email.message_from_bytes(down.data, policy=email.policy.default)
    assert parsed["Subject"] == "Grüße"


def test_utf8_address_in_header_cannot_be_downgraded() -> None:
    msg = "To: jörg@bücher.example\r\n\r\nhi\r\n".encode()
    with pytest.raises(NotConvertible) as err:
        prepare_message(msg, eight_bit_mime=True, smtputf8=False)
    assert err.value.enhanced == "5.6.7"


_lines = st.sampled_from(
    [b"Subject: s\xc3\xa9", b"To: j\xc3\xb6rg@x", b"From: Z\xc3\xab <z@x>", b"", b".",
     b"Content-Type: multipart/mixed; boundary=b", b"--b", b"--b--", b"\xff\xfe\x00",
     b"Content-Transfer-Encoding: 8bit", b"Content-Transfer-Encoding: base64", b"h\xc3\xa9"]
)  # fmt: skip


@given(st.lists(_lines, max_size=15), st.booleans(), st.booleans())
@settings(max_examples=300, deadline=None)
def test_property_prepared_messages_fit_the_peer_or_are_refused(
    lines: list[bytes], eight_bit_mime: bool, smtputf8: bool
) -> None:
    try:
        prepared = prepare_message(
            b"\r\n".join(lines), eight_bit_mime=eight_bit_mime, smtputf8=smtputf8
        )
    except NotConvertible as exc:
        assert exc.enhanced in ("5.6.3", "5.6.7")
        return
    if not eight_bit_mime:
        assert prepared.data.isascii()
    if not smtputf8:
        assert split_header(prepared.data)[0].isascii()


# --- transactions -----------------------------------------------------------------------------


def run(tx: Transaction, replies: list[Reply]) -> list[bytes]:
    """Drive a transaction; return every write it asked for."""
    writes = [tx.start()]
    for rep in replies:
        assert not tx.done
        out = tx.receive(rep)
        if out:
            writes.append(out)
    assert tx.done
    return writes


def test_pipelined_batch_is_one_write_and_outcomes_per_recipient() -> None:
    tx = Transaction("s@x.org", ["a@y.org", "b@y.org", "c@y.org"], MSG, FULL)
    batch = tx.start()
    assert batch == (
        b"MAIL FROM:<s@x.org> SIZE=20\r\nRCPT TO:<a@y.org>\r\nRCPT TO:<b@y.org>\r\n"
        b"RCPT TO:<c@y.org>\r\nDATA\r\n"
    )
    assert tx.expecting is Step.MAIL
    bad = reply(550, "5.1.1", "no such user")
    for rep in (OK, OK, bad, OK):
        assert tx.receive(rep) == b""
    assert tx.receive(GO) == b"Subject: t\r\n\r\nbody\r\n.\r\n"
    assert tx.expecting is Step.DOT
    final = reply(250, "2.0.0", "queued as X")
    assert tx.receive(final) == b"" and tx.done
    r = tx.result
    assert r.outcomes == {"a@y.org": final, "b@y.org": bad, "c@y.org": final}
    assert r.rcpt_replies["b@y.org"] == bad and r.final_reply == final and not r.needs_rset
    assert r.accepted == ["a@y.org", "c@y.org"]


def test_lockstep_without_pipelining() -> None:
    tx = Transaction("s@x.org", ["a@y.org", "b@y.org"], MSG, LOCKSTEP)
    writes = run(tx, [OK, OK, OK, GO, OK])
    assert writes == [
        b"MAIL FROM:<s@x.org>\r\n",
        b"RCPT TO:<a@y.org>\r\n",
        b"RCPT TO:<b@y.org>\r\n",
        b"DATA\r\n",
        MSG + b".\r\n",
    ]


def test_mail_refused_fails_everyone_and_consumes_pipelined_replies() -> None:
    no = reply(553, "5.7.1", "sender rejected")
    tx = Transaction("s@x.org", ["a@y.org", "b@y.org"], MSG, FULL)
    bad_seq = reply(503, "5.5.1", "need MAIL")
    run(tx, [no, bad_seq, bad_seq, bad_seq])
    assert tx.result.outcomes == {"a@y.org": no, "b@y.org": no}
    assert not tx.result.needs_rset
    tx = Transaction("s@x.org", ["a@y.org"], MSG, LOCKSTEP)
    assert run(tx, [no]) == [b"MAIL FROM:<s@x.org>\r\n"]
    assert tx.result.outcomes == {"a@y.org": no}


def test_no_valid_recipient_lockstep_sends_no_data_and_needs_rset() -> None:
    bad = reply(550, "5.1.1", "unknown")
    tx = Transaction("s@x.org", ["a@y.org"], MSG, LOCKSTEP)
    assert run(tx, [OK, bad]) == [b"MAIL FROM:<s@x.org>\r\n", b"RCPT TO:<a@y.org>\r\n"]
    assert tx.result.outcomes == {"a@y.org": bad} and tx.result.needs_rset


def test_no_valid_recipient_pipelined_data_refused() -> None:
    bad = reply(550, "5.1.1", "unknown")
    tx = Transaction("s@x.org", ["a@y.org"], MSG, FULL)
    run(tx, [OK, bad, reply(554, "5.5.1", "no valid recipients")])
    assert tx.result.outcomes == {"a@y.org": bad} and tx.result.needs_rset


def test_no_valid_recipient_but_354_sends_a_lone_dot() -> None:
    bad = reply(550, "5.1.1", "unknown")
    tx = Transaction("s@x.org", ["a@y.org"], MSG, FULL)
    writes = run(tx, [OK, bad, GO, reply(554, "5.5.1", "empty")])
    assert writes[-1] == b".\r\n"
    assert tx.result.outcomes == {"a@y.org": bad} and not tx.result.needs_rset


def test_data_refused_and_final_reply_transient() -> None:
    busy = reply(451, "4.3.0", "later")
    tx = Transaction("s@x.org", ["a@y.org"], MSG, FULL)
    run(tx, [OK, OK, busy])
    assert tx.result.outcomes == {"a@y.org": busy} and tx.result.needs_rset
    tx = Transaction("s@x.org", ["a@y.org"], MSG, FULL)
    run(tx, [OK, OK, GO, busy])
    assert tx.result.outcomes == {"a@y.org": busy} and not tx.result.needs_rset


def test_421_ends_the_transaction_for_everyone_left() -> None:
    bye = reply(421, "4.3.2", "shutting down")
    bad = reply(550, "5.1.1", "unknown")
    tx = Transaction("s@x.org", ["a@y.org", "b@y.org", "c@y.org"], MSG, FULL)
    run(tx, [OK, bad, bye])
    assert tx.result.closing
    assert tx.result.outcomes == {"a@y.org": bad, "b@y.org": bye, "c@y.org": bye}


def test_reset_first_is_pipelined_or_lockstep() -> None:
    tx = Transaction("s@x.org", ["a@y.org"], MSG, FULL, reset_first=True)
    assert tx.start().startswith(b"RSET\r\nMAIL FROM:")
    tx = Transaction("s@x.org", ["a@y.org"], MSG, LOCKSTEP, reset_first=True)
    writes = run(tx, [OK, OK, OK, GO, OK])
    assert writes[:2] == [b"RSET\r\n", b"MAIL FROM:<s@x.org>\r\n"]


def test_unexpected_intermediate_replies_are_protocol_errors() -> None:
    tx = Transaction("s@x.org", ["a@y.org"], MSG, FULL)
    tx.start()
    with pytest.raises(RemoteProtocolError):
        tx.receive(GO)  # 354 to MAIL
    tx = Transaction("s@x.org", ["a@y.org"], MSG, FULL)
    tx.start()
    tx.receive(OK)
    tx.receive(OK)
    with pytest.raises(RemoteProtocolError):
        tx.receive(OK)  # 250 to DATA


def test_size_limit_is_checked_locally() -> None:
    tx = Transaction("s@x.org", ["a@y.org"], b"x" * 2000, caps("SIZE 1000"))
    assert tx.start() == b"" and tx.done
    assert tx.result.outcomes["a@y.org"].code == 552
    assert tx.result.outcomes["a@y.org"].enhanced == "5.3.4"


def test_smtputf8_needed_but_missing_fails_only_those_recipients() -> None:
    tx = Transaction("s@x.org", ["jörg@y.org", "a@y.org"], MSG, caps("PIPELINING"))
    assert b"j\xc3\xb6rg" not in tx.start()
    run_rest = [OK, OK, GO, OK]
    for rep in run_rest:
        tx.receive(rep)
    assert tx.result.outcomes["jörg@y.org"] == reply(
        550, "5.6.7", "SMTPUTF8 not supported by the receiving server"
    )
    assert tx.result.outcomes["a@y.org"] == OK
    tx = Transaction("zoë@x.org", ["a@y.org"], MSG, caps("PIPELINING"))
    assert tx.start() == b"" and tx.result.outcomes["a@y.org"].enhanced == "5.6.7"


def test_mail_parameters_follow_the_peer_and_the_message() -> None:
    tx = Transaction("zoë@x.org", ["a@y.org"], "Subject: é\r\n\r\né\r\n".encode(), FULL)
    assert (
        tx.start().split(b"\r\n")[0]
        == "MAIL FROM:<zoë@x.org> SIZE=19 BODY=8BITMIME SMTPUTF8".encode()
    )
    tx = Transaction("s@x.org", ["a@y.org"], "Subject: x\r\n\r\né\r\n".encode(), caps("PIPELINING"))
    batch = tx.start()
    assert batch.startswith(b"MAIL FROM:<s@x.org>\r\n") and batch.isascii()
    run_rest = [OK, OK, GO]
    out = b""
    for rep in run_rest:
        out = tx.receive(rep)
    assert out.isascii() and b"=C3=A9" in out


def test_duplicate_recipients_are_sent_once() -> None:
    tx = Transaction("s@x.org", ["a@y.org", "a@y.org"], MSG, FULL)
    assert tx.start().count(b"RCPT TO") == 1


def test_no_recipients_is_a_caller_error() -> None:
    with pytest.raises(ValueError):
        Transaction("s@x.org", [], MSG, FULL)
