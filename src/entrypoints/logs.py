"""Log output: text lines (the default) or, with GRIDCORE_LOG_FORMAT=json,
one JSON object a line for a log shipper.

An object has ``time`` (ISO 8601, UTC), ``level``, ``logger`` and
``message``, the traceback as ``exception`` when there is one, and every
field the code passed with ``extra=``: the ids a line is about, by the
payloads' names (``eventId``, ``correlationId``, ``venId``), so that a
query finds every line of an event without parsing its message.
"""

from __future__ import annotations

import json
import logging
import sys
from datetime import UTC, datetime
from typing import Any

TEXT_FORMAT = "%(asctime)s %(levelname)s %(name)s: %(message)s"

# What every LogRecord has; anything else on a record came from ``extra=``
# (but uvicorn's ``color_message``, its message again with terminal colours).
_STANDARD = frozenset(
    logging.LogRecord("", 0, "", 0, "", (), None).__dict__.keys()
    | {"message", "asctime", "color_message"}
)


class JsonFormatter(logging.Formatter):
    """One JSON object a line (see the module's docstring)."""

    def format(self, record: logging.LogRecord) -> str:
        entry: dict[str, Any] = {
            "time": datetime.fromtimestamp(record.created, UTC).isoformat(timespec="milliseconds"),
            "level": record.levelname,
            "logger": record.name,
            "message": record.getMessage(),
        }
        for key, value in record.__dict__.items():
            if key not in _STANDARD and not key.startswith("_"):
                entry[key] = value
        if record.exc_info:
            entry["exception"] = self.formatException(record.exc_info)
        elif record.exc_text:
            entry["exception"] = record.exc_text
        if record.stack_info:
            entry["stack"] = self.formatStack(record.stack_info)
        return json.dumps(entry, default=str, ensure_ascii=False)


def formatter(fmt: str) -> logging.Formatter:
    return JsonFormatter() if fmt == "json" else logging.Formatter(TEXT_FORMAT)


def configure(level: str, fmt: str) -> None:
    """The root logger of a gridcore command: to stderr, in ``fmt``."""
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(formatter(fmt))
    logging.basicConfig(level=level, handlers=[handler])


def dict_config_formatter(fmt: str) -> dict[str, Any]:
    """The formatter's entry for ``logging.config.dictConfig`` (processes
    uvicorn starts, which do not inherit the parent's handlers)."""
    if fmt == "json":
        return {"()": f"{__name__}.JsonFormatter"}
    return {"format": TEXT_FORMAT}
