"""When things happen: scheduled sweeps over deadline rows, the daemon and reminders.

The deadline rows are already written by the transitions that create them (workflow.service);
the sweeps that fire them arrive with the scheduler daemon.
"""
