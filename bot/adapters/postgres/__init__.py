"""The PostgreSQL store: the same ports as the embedded SQLite one, shared by replicas.

This package's modules import psycopg (a quarter second): bootstrap imports them only when
the database is PostgreSQL; ``is_postgres_url`` is here so that choosing costs nothing."""


def is_postgres_url(target: str) -> bool:
    return target.startswith(("postgresql://", "postgres://"))
