"""Submission: one entry for both ingresses (SMTP and HTTP): authorize, check, build, enqueue."""
