"""dispy's ``logger``: level names and logging calls for the ``gridlib`` loggers.

dispy programs write ``JobCluster(..., loglevel=dispy.logger.DEBUG)`` and
``dispy.logger.info("...")``; with ``import gridlib as dispy`` both work.
"""

from __future__ import annotations

import logging
from typing import Any

__all__ = ["CRITICAL", "ERROR", "WARNING", "INFO", "DEBUG", "NOTSET", "set_loglevel",
           "debug", "info", "warning", "warn", "error", "exception", "critical", "log"]

CRITICAL, ERROR, WARNING, INFO, DEBUG, NOTSET = (logging.CRITICAL, logging.ERROR, logging.WARNING,
                                                 logging.INFO, logging.DEBUG, logging.NOTSET)
_logger = logging.getLogger("gridlib")


def set_loglevel(level: int | str) -> None:
    """The level of every ``gridlib`` logger; a handler to stderr is added if none is set up."""
    _logger.setLevel(level.upper() if isinstance(level, str) else level)
    if not _logger.handlers and not logging.getLogger().handlers:
        handler = logging.StreamHandler()
        handler.setFormatter(logging.Formatter("%(asctime)s %(name)s %(levelname)s %(message)s"))
        _logger.addHandler(handler)


def debug(msg: str, *args: Any, **kwargs: Any) -> None:
    _logger.debug(msg, *args, **kwargs)


def info(msg: str, *args: Any, **kwargs: Any) -> None:
    _logger.info(msg, *args, **kwargs)


def warning(msg: str, *args: Any, **kwargs: Any) -> None:
    _logger.warning(msg, *args, **kwargs)


warn = warning


def error(msg: str, *args: Any, **kwargs: Any) -> None:
    _logger.error(msg, *args, **kwargs)


def exception(msg: str, *args: Any, **kwargs: Any) -> None:
    _logger.exception(msg, *args, **kwargs)


def critical(msg: str, *args: Any, **kwargs: Any) -> None:
    _logger.critical(msg, *args, **kwargs)


def log(level: int, msg: str, *args: Any, **kwargs: Any) -> None:
    _logger.log(level, msg, *args, **kwargs)
