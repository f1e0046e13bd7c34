"""Sending options over SMTP: every provider's control headers, read into one `SendOptions`.

An application written for Zoho Campaigns, ZeptoMail, Infobip, SendGrid, Mailgun, Postmark or
Amazon SES keeps its headers; Postroom reads them at DATA, before the 250, and strips them so they
never reach recipients. One module per dialect, each a small table; `registry.extract` runs them
all over a header block. Pure code: no I/O, no clock, no store.

Precedence, when several headers set the same option (`registry.DIALECTS`, lowest first):

    ses < postmark < mailgun < sendgrid < infobip < zeptomail < zoho < postroom

- Postroom's own `X-Postroom-*` headers win over every vendor header.
- Among vendors, the three whose SMTP dialogue Postroom imitates come first (Zoho Campaigns, then
  ZeptoMail, then Infobip), then SendGrid, Mailgun, Postmark and SES.
- "Win" is `SendOptions.merge`: a single value (campaign id, a tracking switch, send_at…) comes
  from the highest dialect that sets it; lists (tags, attachments, extra recipients) are the union;
  mappings (metadata, variables, per-recipient dates) merge key by key, the highest winning a key.
- Within one dialect, a more specific header beats a general one wherever it stands
  (`X-Mailgun-Track-Clicks` over `X-Mailgun-Track`); a header that takes one value is refused when
  given twice; an empty header counts as absent.
"""

from postroom.dialects.options import FileRef, Sender, SendOptions, Syntax
from postroom.dialects.registry import control_headers, extract, is_control_header
from postroom.dialects.values import DialectError

__all__ = [
    "DialectError",
    "FileRef",
    "SendOptions",
    "Sender",
    "Syntax",
    "control_headers",
    "extract",
    "is_control_header",
]
