"""Management service layer shared by the CLI and the HTTP admin endpoints."""
