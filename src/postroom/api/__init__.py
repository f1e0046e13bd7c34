"""HTTP ingress and read side (FastAPI)."""
