"""Every log record of every process masked (`masking.mask_card_numbers`) before any handler
writes it: its message, its arguments, its exception (message, chain and traceback text) and
its stack.

`install()` (called when `fraud_pipeline` is imported, so in the CLI, Airflow's task processes,
the uvicorn servers and the report alike) does two things:
- wraps the log record factory, so that a record is masked as it is made, whichever handler,
  added before or after (uvicorn's, Airflow's, pytest's), later receives it;
- adds `CardNumberFilter` to every handler configured at that moment (and `install()` again,
  e.g. after `logging.basicConfig`, adds it to the handlers added since).

Airflow's task log files are written through structlog, not by these handlers: `mask_event`
is the same masking as a structlog processor (`security.airflow_logging`).
"""

from __future__ import annotations

import contextlib
import logging
import traceback
from collections.abc import Callable
from typing import Any

from fraud_pipeline.security.masking import mask_card_numbers

# `[logging] logging_config_class` of every Airflow we run (`make run`, docker-compose, Helm, the
# tests): Airflow's logging with card numbers masked, task log files included.
AIRFLOW_LOGGING_CONFIG_CLASS = "fraud_pipeline.security.airflow_logging.LOGGING_CONFIG"


def _mask_arg(value: Any) -> Any:
    if isinstance(value, str):
        return mask_card_numbers(value)
    if isinstance(value, bool | float) or value is None:
        return value
    return value if mask_card_numbers(str(value)) == str(value) else mask_card_numbers(str(value))


def _mask_exception(error: BaseException | None) -> None:
    """Each exception of the chain whose text holds a card number gets its masked text as its
    only argument: the caller that re-raises it, Airflow's own traceback and the CLI's
    `ERROR:` line then show it masked too."""
    seen: set[int] = set()
    while error is not None and id(error) not in seen:
        seen.add(id(error))
        try:
            text = str(error)
        except Exception:  # an exception whose __str__ fails: nothing to mask
            text = ""
        masked = mask_card_numbers(text)
        if masked != text:
            with contextlib.suppress(AttributeError, TypeError):  # read-only args
                error.args = (masked,)
        error = error.__cause__ or error.__context__


_PLAIN = (str, int, float, bool, type(None))


def mask_record(record: logging.LogRecord) -> logging.LogRecord:
    """Mask `record` in place and return it (again and again: idempotent).

    Arguments that are not plain values (a dict, a request object) are rendered now, masked:
    their owner may change them before a handler formats the record (botocore adds a retry id
    to the request it logged). Plain arguments stay arguments (uvicorn's access formatter reads
    them), each masked."""
    args = record.args
    if args and not all(isinstance(a, _PLAIN) for a in _values(args)):
        # A bad format string: left as it is, the handler reports it.
        with contextlib.suppress(Exception):
            record.msg, record.args = record.getMessage(), None
    try:
        message = record.getMessage()
    except Exception:
        message = str(record.msg)
    if mask_card_numbers(message) != message:
        if isinstance(record.args, tuple):
            record.args = tuple(_mask_arg(a) for a in record.args)
        elif isinstance(record.args, dict):
            record.args = {k: _mask_arg(v) for k, v in record.args.items()}
        if isinstance(record.msg, str):
            record.msg = mask_card_numbers(record.msg)
        try:
            still = record.getMessage()
        except Exception:
            still = message
        if mask_card_numbers(still) != still:  # split over arguments, or formatted by %d
            record.msg, record.args = mask_card_numbers(message), None
    if record.exc_info and record.exc_info[1] is not None:
        _mask_exception(record.exc_info[1])
        if not record.exc_text:
            record.exc_text = "".join(traceback.format_exception(*record.exc_info)).rstrip("\n")
    if record.exc_text:
        record.exc_text = mask_card_numbers(record.exc_text)
    if record.stack_info:
        record.stack_info = mask_card_numbers(record.stack_info)
    return record


def _masked(value: Any) -> Any:
    """`value` with every card number masked, its type kept where nothing was masked (a
    timestamp stays a timestamp for the renderer)."""
    if isinstance(value, str):
        return mask_card_numbers(value)
    if isinstance(value, dict):
        return {_masked(k): _masked(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_masked(item) for item in value]
    if isinstance(value, tuple):
        return tuple(_masked(item) for item in value)
    if isinstance(value, BaseException):
        _mask_exception(value)
        return value
    if isinstance(value, bool) or value is None:
        return value
    text = str(value)
    masked = mask_card_numbers(text)
    return value if masked == text else masked


def mask_event(logger: Any, method_name: str, event_dict: dict[str, Any]) -> dict[str, Any]:
    """A structlog processor: every key and value of the event masked, nested ones too (the
    traceback Airflow's task runner sends as a list of dicts), whatever the renderer after it
    writes (`security.airflow_logging`: Airflow's task log files)."""
    masked: dict[str, Any] = _masked(event_dict)
    return masked


def _values(args: Any) -> list[Any]:
    return list(args.values()) if isinstance(args, dict) else list(args)


class CardNumberFilter(logging.Filter):
    """A handler's filter that masks each record it sees (and never drops one)."""

    def filter(self, record: logging.LogRecord) -> bool:
        mask_record(record)
        return True


_FILTER = CardNumberFilter()


def _masking_factory(make: Callable[..., logging.LogRecord]) -> Callable[..., logging.LogRecord]:
    def factory(*args: Any, **kwargs: Any) -> logging.LogRecord:
        return mask_record(make(*args, **kwargs))

    factory.masks_card_numbers = True  # type: ignore[attr-defined]
    return factory


def every_handler() -> list[logging.Handler]:
    loggers = [logging.getLogger()] + [
        logger
        for logger in logging.Logger.manager.loggerDict.values()
        if isinstance(logger, logging.Logger)
    ]
    return [handler for logger in loggers for handler in logger.handlers]


def install() -> None:
    """Mask every record made from now on and every record any present handler receives.
    Idempotent."""
    current = logging.getLogRecordFactory()
    if not getattr(current, "masks_card_numbers", False):
        logging.setLogRecordFactory(_masking_factory(current))
    for handler in every_handler():
        if _FILTER not in handler.filters:
            handler.addFilter(_FILTER)
