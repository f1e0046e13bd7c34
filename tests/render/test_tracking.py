"""Tracking rewrites (pure): links through signed redirects, a pixel, encodings kept."""

from __future__ import annotations

from email import message_from_bytes, policy
from email.message import EmailMessage

from postroom.render import tokens
from postroom.render.tracking import CLICK, Links, apply, rewrite_html

LINKS = Links("https://t.example", b"k" * 32)


def message(html: str, text: str = "See https://shop.example/a?x=1&y=2 now") -> bytes:
    m = EmailMessage()
    m["From"], m["To"], m["Subject"] = "a@shop.example", "r@example.org", "s"
    m.set_content(text, charset="utf-8")
    m.add_alternative(html, subtype="html", charset="utf-8")
    return m.as_bytes()


def test_links_are_signed_and_verifiable() -> None:
    url = LINKS.click_url("m1", "r@example.org", "https://shop.example/x")
    token = url.rsplit("/", 1)[1]
    assert tokens.verify(LINKS.secret, CLICK, token) == {
        "m": "m1", "r": "r@example.org", "u": "https://shop.example/x"}
    assert tokens.verify(b"other" * 8, CLICK, token) is None
    assert tokens.verify(LINKS.secret, CLICK, token[:-2] + "xx") is None
    assert tokens.verify(LINKS.secret, "open", token) is None  # a click token is no open token


def test_rewrite_html_skips_mailto_and_adds_one_pixel() -> None:
    html = ('<html><body><a href="https://shop.example/a?x=1&amp;y=2">A</a> '
            '<a href="mailto:x@y">m</a> <A HREF=\'http://b.example\'>B</A></body></html>')
    out = rewrite_html(html, lambda u: f"[{u}]", "PIX")
    assert 'href="[https://shop.example/a?x=1&y=2]"' in out
    assert 'href="mailto:x@y"' in out and "HREF='[http://b.example]'" in out
    assert out.count('src="PIX"') == 1 and out.index("PIX") < out.index("</body>")


def test_apply_keeps_charset_and_non_ascii() -> None:
    raw = message('<p>Grüße <a href="https://shop.example/ü">x</a></p>', "Grüße https://s.example")
    out = apply(raw, links=LINKS, message_id="m1", recipient="r@example.org", opens=True,
                clicks=True, text_clicks=True, keep=("https://t.example/u/",))
    msg = message_from_bytes(out, policy=policy.default)
    html = msg.get_body(("html",)).get_content()
    text = msg.get_body(("plain",)).get_content()
    assert "Grüße" in html and "https://t.example/t/c/" in html and "https://t.example/t/o/" in html
    assert "https://t.example/t/c/" in text and "Grüße" in text
    assert msg.get_body(("html",)).get_content_charset() == "utf-8"


def test_apply_without_tracking_is_identity() -> None:
    raw = message("<p>x</p>")
    assert apply(raw, links=LINKS, message_id="m", recipient="r", opens=False, clicks=False) == raw
