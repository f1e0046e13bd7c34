"""Pages: Jinja2 templates (autoescaped), the inline stylesheet and the security headers.

Everything a page shows from the store (subjects, addresses, replies) is user data, so
autoescaping is on for every template and nothing is marked safe except the stylesheet, which
ships with the package. The stylesheet is inline and allowed by its hash in the
Content-Security-Policy: no script may run, no other style applies, nothing loads from
elsewhere, and no other site may frame the pages or receive their forms.
"""

from __future__ import annotations

import base64
import hashlib
import json
from datetime import datetime
from importlib.resources import files
from typing import Any
from urllib.parse import urlencode

from jinja2 import Environment, PackageLoader, StrictUndefined
from markupsafe import Markup
from starlette.requests import Request
from starlette.responses import HTMLResponse

_CSS = (files("postroom.web") / "templates" / "style.css").read_text(encoding="utf-8")
_CSS_HASH = base64.b64encode(hashlib.sha256(_CSS.encode()).digest()).decode()

CSP = ("default-src 'none'; "
       f"style-src 'sha256-{_CSS_HASH}'; "
       "img-src 'none'; form-action 'self'; frame-ancestors 'none'; base-uri 'none'")
#: On every dashboard response (pages, redirects, errors).
SECURITY_HEADERS: list[tuple[bytes, bytes]] = [
    (b"content-security-policy", CSP.encode()),
    (b"x-frame-options", b"DENY"),
    (b"cache-control", b"no-store"),
    (b"x-content-type-options", b"nosniff"),
    (b"referrer-policy", b"no-referrer"),
    (b"cross-origin-opener-policy", b"same-origin"),
]


def _when(value: datetime | None) -> str:
    return value.strftime("%Y-%m-%d %H:%M:%S UTC") if value else ""


def _details(data: dict[str, Any]) -> str:
    """An event's data as readable text (`key: value; …`); the template escapes it."""
    return "; ".join(f"{k}: {v if isinstance(v, str) else json.dumps(v, ensure_ascii=False)}"
                     for k, v in sorted(data.items()))


_env = Environment(
    loader=PackageLoader("postroom.web", "templates"),
    autoescape=True,
    undefined=StrictUndefined,
    trim_blocks=True,
    lstrip_blocks=True,
)
_env.filters["when"] = _when
_env.filters["details"] = _details
_env.globals["css"] = Markup(_CSS)  # the package's own file: the one thing not escaped


def href(request: Request, path: str, **params: Any) -> str:
    """A path under the dashboard's mount point, with the non-empty `params` as a query."""
    query = urlencode({k: v for k, v in params.items() if v not in (None, "")})
    return request.scope.get("root_path", "") + path + (f"?{query}" if query else "")


def page(request: Request, template: str, http_status: int = 200, **context: Any
         ) -> HTMLResponse:
    """Render `template` with `context`; `href` and `viewer` (None when signed out) are always
    available."""
    context.setdefault("viewer", None)
    html = _env.get_template(template).render(
        href=lambda path, **params: href(request, path, **params), **context)
    return HTMLResponse(html, status_code=http_status)


def error_page(request: Request, status: int, message: str, viewer: Any = None) -> HTMLResponse:
    return page(request, "error.html", http_status=status, message=message, viewer=viewer)
