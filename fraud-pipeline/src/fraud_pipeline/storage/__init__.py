"""Storage: where PostgreSQL is, its migrations, the idempotent upsert and the cards' history."""
