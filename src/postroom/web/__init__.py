"""The web dashboard: an account's mail, events, suppressions and webhooks, in a browser.

Server-rendered HTML at /dashboard on the HTTP API's listener; sign in with an API key that has
the `read` scope. See docs/DASHBOARD.md.
"""

from postroom.web.app import create_dashboard, with_dashboard

__all__ = ["create_dashboard", "with_dashboard"]
