"""reading-group-bot: announces reading-group sessions on time, exactly once, and right."""

__version__ = "0.1.0"
