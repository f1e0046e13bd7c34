"""Values that go into a message's body may span lines and keep their spaces (SendGrid `sub`
values and sections, Zoho merge data, Mailgun variables); names and header values stay one line."""

from __future__ import annotations

import json

import pytest

from postroom.dialects import DialectError, extract
from postroom.dialects.options import SendOptions


def options(name: str, value: object) -> SendOptions:
    found, _ = extract(f"From: a@example.com\r\n{name}: {json.dumps(value)}\r\n\r\n".encode())
    return found


def test_sendgrid_sections_and_sub_values_are_kept_as_given() -> None:
    found = options("X-SMTPAPI", {"to": ["a@example.com"],
                                  "sub": {"-addr-": ["  Street 1\r\nTown\t"]},
                                  "section": {":footer": "<p>Shop</p>\n<p>Street 1</p>\n"}})
    assert found.sendgrid_sub == {"-addr-": ("  Street 1\r\nTown\t",)}
    assert found.recipient_vars == {"a@example.com": {"-addr-": "  Street 1\r\nTown\t"}}
    assert found.sendgrid_sections == {":footer": "<p>Shop</p>\n<p>Street 1</p>\n"}
    assert options("X-SMTPAPI", {"sub": {" -n- ": ["x"]}}).sendgrid_sub == {"-n-": ("x",)}


def test_zoho_merge_data_and_mailgun_variables_keep_line_breaks() -> None:
    zoho = options("X-ZCEA-SMTP-DATA", {"recipient_data": {"a@example.com": {
        "merge_data": {"addr": "Street 1\nTown"}, "additional_data": {"note": "a\nb"}}}})
    assert zoho.recipient_vars == {"a@example.com": {"addr": "Street 1\nTown"}}
    assert zoho.recipient_fields == {"a@example.com": {"note": "a\nb"}}
    variables = json.dumps({"note": "line1\nline2 ", "n": 1})
    mailgun, _ = extract(f"X-Mailgun-Template-Name: t\r\nX-Mailgun-Variables: {variables}\r\n"
                         "\r\n".encode())
    assert mailgun.metadata == {"note": "line1\nline2 ", "n": "1"}
    assert mailgun.global_vars == {"note": "line1\nline2 ", "n": 1}  # for the template


@pytest.mark.parametrize(("name", "value"), [
    ("X-SMTPAPI", {"sub": {"-n\n-": ["x"]}}),  # a key is a name: one line
    ("X-SMTPAPI", {"section": {":f": "a\x00b"}}),  # other control characters: still refused
    ("X-ZCEA-SMTP-DATA", {"recipient_data": {"a@example.com": {"merge_data": {"x": "\x1b"}}}}),
    ("X-ZCEA-SMTP-DATA", {"recipient_data": {"a@example.com": {"name": "A\nB"}}}),  # a header
    ("X-SMTPAPI", {"sub": {"-n-": [["not", "text"]]}}),
])
def test_names_and_control_characters_are_still_refused(name: str, value: object) -> None:
    with pytest.raises(DialectError):
        options(name, value)
