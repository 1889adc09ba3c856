"""Recordings from the group's YouTube feed (SPEC §10): read the feed, match, apply.

`feed` fetches and parses the public Atom feed; `match` is the pure matcher (videos, sessions,
`now` → proposals); `sync` ties them to the database (SQL in bot.store.recordings) and applies a
match exactly as `sessions set` does, so the `recording` notice follows by rule 8.
"""
