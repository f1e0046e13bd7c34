"""File-cache files attached to a message (pure).

The files are added after everything the message already has. A message that is not
multipart/mixed becomes one, whose first part is the original body with its own content headers
(a text part, a multipart/alternative, a multipart/related…), so the existing structure is kept
whole. Names are given with RFC 2231 when they are not ASCII; contents are base64.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass
from email import message_from_bytes
from email.generator import BytesGenerator
from email.message import EmailMessage
from email.policy import SMTP
from io import BytesIO

__all__ = ["POLICY", "File", "add", "attach", "flatten"]

#: Parsed headers are written back as they came (no refolding); new ones are folded for SMTP.
POLICY = SMTP.clone(refold_source="none")
_TYPE = re.compile(r"^[A-Za-z0-9!#$&^_.+-]{1,64}/[A-Za-z0-9!#$&^_.+-]{1,64}$")


@dataclass(frozen=True, slots=True)
class File:
    name: str
    content_type: str
    data: bytes


def _safe_name(name: str) -> str:
    name = re.sub(r"[\x00-\x1f\x7f]+", " ", name).replace("/", "_").replace("\\", "_").strip()
    return name or "attachment"


def _type_of(content_type: str) -> tuple[str, str, dict[str, str]]:
    """(maintype, subtype, parameters): a text file's charset says how to read it."""
    ctype = content_type.split(";")[0].strip().lower()
    if not _TYPE.match(ctype) or ctype.startswith(("multipart/", "message/")):
        return "application", "octet-stream", {}  # containers would need parsing: bytes
    maintype, _, subtype = ctype.partition("/")
    return maintype, subtype, _params(content_type)


def _params(content_type: str) -> dict[str, str]:
    """The parameters of a Content-Type value (not `name`: the file's own name is given)."""
    if ";" not in content_type:
        return {}
    probe = EmailMessage()
    probe["Content-Type"] = re.sub(r"[\x00-\x1f\x7f]+", " ", content_type)
    return {k: str(v) for k, v in probe["Content-Type"].params.items()
            if k.lower() != "name" and str(v).isprintable()}


def add(msg: EmailMessage, files: Sequence[File]) -> None:
    """Attach `files` to `msg` in place, in order."""
    if not files:
        return
    if "MIME-Version" not in msg:
        msg["MIME-Version"] = "1.0"
    if not msg.is_multipart() and "Content-Type" not in msg:
        # the email package moves only Content-* headers (and with them the body) into the
        # first part: without one, the body would be dropped
        msg["Content-Type"] = "text/plain"
    for f in files:
        maintype, subtype, params = _type_of(f.content_type)
        msg.add_attachment(bytes(f.data), maintype=maintype, subtype=subtype,
                           filename=_safe_name(f.name), params=params)
        part = msg.get_payload()[-1]
        del part["MIME-Version"]  # only the top level carries it


def flatten(msg: EmailMessage) -> bytes:
    out = BytesIO()
    BytesGenerator(out, policy=POLICY).flatten(msg)
    return out.getvalue()


def attach(raw: bytes, files: Sequence[File]) -> bytes:
    """`raw` with `files` attached (unchanged when there are none)."""
    if not files:
        return raw
    msg = message_from_bytes(raw, _class=EmailMessage, policy=POLICY)
    add(msg, files)
    return flatten(msg)
