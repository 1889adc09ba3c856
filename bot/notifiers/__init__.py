"""Channel registry: built-in notifiers plus plugins from the `bot.notifiers` entry-point group."""

from __future__ import annotations

import importlib
from functools import cache

from bot.notifiers.base import Notifier

_BUILTIN = {
    "console": "bot.notifiers.console:ConsoleNotifier",
    "email": "bot.notifiers.email:EmailNotifier",
    "x": "bot.notifiers.x:XNotifier",
    "bluesky": "bot.notifiers.bluesky:BlueskyNotifier",
    "mastodon": "bot.notifiers.mastodon:MastodonNotifier",
    "slack": "bot.notifiers.slack:SlackNotifier",
    "discord": "bot.notifiers.discord:DiscordNotifier",
    "telegram": "bot.notifiers.telegram:TelegramNotifier",
}


class PluginError(KeyError):
    """A channel's plugin could not be loaded."""

    def __str__(self) -> str:
        return str(self.args[0])


class _Registry:
    """Maps channel names to notifier classes, importing each module only when it is asked for."""

    @cache  # noqa: B019 - one registry per process, cached for its lifetime
    def _targets(self) -> dict[str, str]:
        from importlib.metadata import entry_points

        targets = dict(_BUILTIN)
        for ep in entry_points(group="bot.notifiers"):
            targets.setdefault(ep.name, ep.value)
        return targets

    def names(self) -> list[str]:
        """Every channel name known: built-ins first, then plugins."""
        return list(self._targets())

    def get(self, name: str) -> type[Notifier]:
        """The notifier class for `name`; KeyError when there is none."""
        target = _BUILTIN.get(name) or self._targets()[name]
        module_name, _, attr = target.partition(":")
        try:
            cls = getattr(importlib.import_module(module_name), attr)
        except Exception as exc:  # a broken plugin is reported, not a traceback
            raise PluginError(
                f"{name}: cannot load {target} ({type(exc).__name__}: {exc})"
            ) from exc
        if not (isinstance(cls, type) and issubclass(cls, Notifier)):
            raise PluginError(f"{name}: {target} is not a Notifier class")
        return cls


registry = _Registry()
