"""The group's static website, from the same database as the announcements (SPEC §9).

`build` is pure (SiteData, settings, now -> files), `write` swaps the files in atomically,
`rebuild` keeps SITE_DIR current after changes and worker passes.
"""
