"""Mail coming back to Postroom: asynchronous bounces (VERP), mailto unsubscribes, complaints.

This package sits above the stages: its SMTP handler routes a session either to submission
(authenticated or trusted senders) or to the inbound service (mail addressed to Postroom's own
return paths), so the stages themselves stay independent of each other.
"""
