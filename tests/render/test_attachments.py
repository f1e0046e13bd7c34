"""File-cache attachments (pure): a single part becomes multipart/mixed, structure is kept."""

from __future__ import annotations

from email import message_from_bytes, policy
from email.message import EmailMessage

from postroom.render.attachments import File, attach

PDF = File("report.pdf", "application/pdf", b"%PDF-1.4 fake")


def parse(raw: bytes) -> EmailMessage:
    return message_from_bytes(raw, _class=EmailMessage, policy=policy.default)


def test_a_single_part_becomes_mixed_with_its_body_first() -> None:
    raw = (b"From: a@x.example\r\nTo: b@y.example\r\nSubject: Hi\r\n"
           b"Content-Type: text/plain; charset=iso-8859-1\r\n"
           b"Content-Transfer-Encoding: quoted-printable\r\n\r\nHall=F6\r\n")
    msg = parse(attach(raw, [PDF, File("notes.txt", "text/plain", b"line\n")]))
    assert msg.get_content_type() == "multipart/mixed" and msg["MIME-Version"] == "1.0"
    assert msg["Subject"] == "Hi" and msg["From"] == "a@x.example"
    body, pdf, notes = msg.get_payload()
    assert body.get_content_type() == "text/plain" and body.get_content().strip() == "Hallö"
    assert (pdf.get_filename(), pdf.get_content_type(), pdf.get_content()) == \
        ("report.pdf", "application/pdf", PDF.data)
    assert notes.get_content_disposition() == "attachment" and notes.get_content() == "line\n"
    assert "MIME-Version" not in pdf and "MIME-Version" not in notes


def test_a_body_without_content_type_is_kept() -> None:
    raw = b"From: a@x.example\r\nSubject: s\r\n\r\nJust text.\r\n"
    body, _ = parse(attach(raw, [PDF])).get_payload()
    assert body.get_content().strip() == "Just text."


def test_alternative_and_related_parts_stay_whole() -> None:
    m = EmailMessage()
    m["From"], m["Subject"] = "a@x.example", "s"
    m.set_content("text")
    m.add_alternative("<p>html</p>", subtype="html")
    out = parse(attach(m.as_bytes(), [PDF]))
    first, pdf = out.get_payload()
    assert first.get_content_type() == "multipart/alternative"
    assert [p.get_content_type() for p in first.get_payload()] == ["text/plain", "text/html"]
    assert pdf.get_filename() == "report.pdf"
    again = parse(attach(out.as_bytes(), [File("b.png", "image/png", b"\x89PNG")]))
    assert [p.get_content_type() for p in again.get_payload()] == \
        ["multipart/alternative", "application/pdf", "image/png"]  # appended, not nested


def test_names_and_types_are_made_safe() -> None:
    raw = b"From: a@x.example\r\nSubject: s\r\n\r\nx\r\n"
    out = attach(raw, [File("r\u00e9sum\u00e9 2030.pdf", "application/pdf", b"1"),
                       File("../../etc/passwd", "text/plain; charset=utf-8", b"2"),
                       File("m.eml", "message/rfc822", b"From: x\r\n\r\ny"),
                       File("w", "not a type", b"3")])
    assert b"filename*=utf-8''r%C3%A9sum%C3%A9%202030.pdf" in out  # RFC 2231
    parts = parse(out).get_payload()[1:]
    assert [p.get_filename() for p in parts] == ["résumé 2030.pdf", ".._.._etc_passwd", "m.eml",
                                                 "w"]
    assert [p.get_content_type() for p in parts] == [
        "application/pdf", "text/plain", "application/octet-stream", "application/octet-stream"]
    assert all(p["Content-Transfer-Encoding"] == "base64" for p in parts)


def test_no_files_leaves_the_bytes_alone() -> None:
    raw = b"From: a@x.example\r\nSubject:   odd   spacing\r\n\r\nx\r\n"
    assert attach(raw, []) is raw
