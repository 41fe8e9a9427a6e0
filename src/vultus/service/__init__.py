"""The vultus REST service: `vultus serve`, or create_app(Settings(...)) in your own ASGI server.

    from vultus.service import Settings, create_app
    app = create_app(Settings(gallery="people.db"))

See docs/service.md. Nothing in the library imports this package.
"""

from __future__ import annotations


def create_app(settings=None):
    from vultus.service.app import create_app as _create

    return _create(settings)


def __getattr__(name):
    if name == "Settings":
        from vultus.service.settings import Settings

        return Settings
    raise AttributeError(name)


__all__ = ["Settings", "create_app"]
