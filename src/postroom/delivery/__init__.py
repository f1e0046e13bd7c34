"""Outbound delivery: DNS, routing, retry policy, reply classification and DSNs."""
