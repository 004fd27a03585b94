"""SQL adapter: PostgreSQL (production) and SQLite (embedded default) through
SQLAlchemy 2 Core, psycopg 3 and aiosqlite, with Alembic migrations."""
