"""SMTP wire protocol: a pure (sans-IO) core shared by server and client, plus asyncio edges.

The core modules (`replies`, `commands`, `errors`, `server_protocol` with its parts
`server_events`, `server_commands`, `server_sasl` and `server_data`, `client_protocol`) import
only the standard library and never touch sockets, clocks or the store, so they can be fuzzed.
"""
