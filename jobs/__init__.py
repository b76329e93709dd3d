"""When things happen: the scheduler daemon, its sweeps over deadline rows, and reminders.

Deadline rows are written by the transitions that create them (workflow.service); the daemon
applies the due ones (`workflow.sweep`, batch by batch), delivers the reminders they write to
the outbox (`jobs.notify`), recounts provisional deadlines when the calendar learns a year (C6)
and records a heartbeat that `filing daemon status` reads.
"""

from jobs.daemon import Daemon, SweepReport, run_once, status
from jobs.notify import LogNotifier, Notifier, WebhookNotifier, deliver_due

__all__ = [
    "Daemon",
    "LogNotifier",
    "Notifier",
    "SweepReport",
    "WebhookNotifier",
    "deliver_due",
    "run_once",
    "status",
]
