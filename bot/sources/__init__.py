"""Where sessions come from: session files (and, later, feeds)."""
