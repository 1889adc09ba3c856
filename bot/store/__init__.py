"""Storage: the schema, its migrations, and every SQL statement (reads, ledger, edits)."""
