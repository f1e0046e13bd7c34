"""Turning stored messages into what goes on the wire (DKIM signing)."""
