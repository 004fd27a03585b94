"""The REST API (FastAPI): ``create_app(settings)`` builds it; nothing at import."""
