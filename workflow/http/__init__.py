"""The HTTP API: `create_app(engine)` (see workflow/http/app.py)."""

from workflow.http.app import create_app

__all__ = ["create_app"]
