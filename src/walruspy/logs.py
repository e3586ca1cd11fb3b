"""The library's loggers: structlog's, as the application configured it, else quiet on stderr.

Theory of operation (STYLE.md, Tooling). walruspy never configures logging: configuration is
process-wide, and a library that imports must not take stdout, or a level, from its host. Left
unconfigured, structlog prints every level to stdout, which would mix debug lines into a
program's output. So each module asks `get_logger(name)` for a logger that decides when a line
is written: if the application has configured structlog (`structlog.configure`, as the CLI and
`walruspy node run` do), the line goes where that configuration says; otherwise only warnings
and worse are written, to stderr.
"""

from __future__ import annotations

import logging
import sys
from typing import Any, Final

import structlog

__all__ = ["UNCONFIGURED_LEVEL", "configure_logging", "get_logger"]

#: The least severe level written while the application has not configured structlog.
UNCONFIGURED_LEVEL: Final = logging.WARNING


class _Stderr:
    """Whatever `sys.stderr` is when a line is written (tests and the CLI may swap it)."""

    def write(self, text: str) -> int:
        return sys.stderr.write(text)

    def flush(self) -> None:
        sys.stderr.flush()


_unconfigured: Any = None


def _unconfigured_logger() -> Any:
    """The logger of an unconfigured process: warnings and worse, rendered for people, stderr."""
    global _unconfigured  # noqa: PLW0603 - one, made on first use
    if _unconfigured is None:
        _unconfigured = structlog.wrap_logger(
            structlog.PrintLogger(_Stderr()),  # type: ignore[arg-type]
            wrapper_class=structlog.make_filtering_bound_logger(UNCONFIGURED_LEVEL),
            processors=[
                structlog.contextvars.merge_contextvars,
                structlog.processors.add_log_level,
                structlog.processors.TimeStamper(fmt="iso", utc=True),
                structlog.dev.ConsoleRenderer(colors=False),
            ],
        )
    return _unconfigured


class _LibraryLogger:
    """A logger that picks, at each line, the application's structlog setup or the quiet one."""

    __slots__ = ("_configured", "_name", "_values")

    def __init__(self, name: str, values: dict[str, Any]) -> None:
        self._name = name
        self._values = values
        # structlog's own lazy proxy: it follows the configuration in force when it logs.
        self._configured = structlog.get_logger(name, **values)

    def _target(self) -> Any:
        if structlog.is_configured():
            return self._configured
        return _unconfigured_logger().bind(logger=self._name, **self._values)

    def bind(self, **values: Any) -> _LibraryLogger:
        """A logger that adds `values` to each line."""
        return _LibraryLogger(self._name, {**self._values, **values})

    def __getattr__(self, method: str) -> Any:
        # debug, info, warning, error, exception, ...: forwarded to the chosen logger.
        return getattr(self._target(), method)


def get_logger(name: str) -> Any:
    """The logger of the library module `name` (module doc)."""
    return _LibraryLogger(name, {})


def configure_logging(as_json: bool, level: int = logging.INFO) -> None:
    """The application's setup of a long-running process (a node, the daemon): structlog's
    records at `level` and worse to stderr, for people or as JSON lines."""
    renderer: structlog.types.Processor = (
        structlog.processors.JSONRenderer()
        if as_json
        else structlog.dev.ConsoleRenderer(colors=sys.stderr.isatty())
    )
    structlog.configure(
        processors=[
            structlog.contextvars.merge_contextvars,
            structlog.processors.add_log_level,
            structlog.processors.TimeStamper(fmt="iso", utc=True),
            structlog.processors.format_exc_info,
            renderer,
        ],
        wrapper_class=structlog.make_filtering_bound_logger(level),
        logger_factory=structlog.PrintLoggerFactory(sys.stderr),
        cache_logger_on_first_use=True,
    )
