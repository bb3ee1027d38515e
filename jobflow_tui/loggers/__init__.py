"""Loggers, as in Flowmancer: `loggers:` in a job file names classes that receive the run's
events (its start and end, every state change, every line of output).

    from jobflow_tui.loggers import Logger, logger, LogStartEvent, LogEndEvent, LogWriteEvent

Built in: FileLogger, JsonLinesLogger, WebhookLogger. Others are classes decorated
`@logger`, found in `./loggers` beside the job file and in its extension directories and
packages. Each runs in a thread of its own: a slow or failing logger never slows or fails
the run (see LoggerHub).
"""

from .base import Logger, logger, registry
from .builtin import FileLogger, JsonLinesLogger
from .discover import BUILTINS, check, load_classes
from .events import LogEndEvent, LogStartEvent, LogWriteEvent, SerializableLogEvent, Severity
from .hub import LoggerHub
from .webhook import WebhookError, WebhookLogger

__all__ = [
    "BUILTINS", "FileLogger", "JsonLinesLogger", "LogEndEvent", "LogStartEvent", "LogWriteEvent", "Logger",
    "LoggerHub", "SerializableLogEvent", "Severity", "WebhookError", "WebhookLogger", "check", "load_classes",
    "logger", "registry",
]
