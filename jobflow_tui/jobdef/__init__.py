"""Job files: load, merge includes, validate with located errors. No UI imports here."""

from .errors import JobFileError, Problem
from .load import from_mapping, load_job
from .model import JobDef, TaskDef

__all__ = ["JobDef", "JobFileError", "Problem", "TaskDef", "from_mapping", "load_job"]
