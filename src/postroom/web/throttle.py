"""Sign-in attempts per client IP: the SMTP AUTH throttle (`submission/throttle.py`), with the
same limits (`[smtp] auth_failure_limit` within `auth_failure_window`) and a count of its own.

An attempt is counted when it starts, before the form is read or the key looked up, so requests
sent in parallel cannot all slip in under the limit; a successful sign-in takes back only its
own attempt, so signing in with a key of one's own buys no more guesses.
"""

from __future__ import annotations

from postroom.submission.throttle import AuthThrottle

#: One class for both doors; the dashboard keeps an instance of its own (`web/app.py`).
SignInThrottle = AuthThrottle

__all__ = ["SignInThrottle"]
