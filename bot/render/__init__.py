"""Rendering: Jinja2 messages, zone-correct times, calendars, and lengths as channels count them."""
