"""The PostgreSQL store: the same ports as the embedded SQLite one, shared by replicas."""
