"""The rules of cross-region medical treatment filing (异地就医备案).

This package decides *whether* something may happen. It does no I/O, reads no clock (time is
passed in), logs nothing and knows nothing of the state-machine, persistence or scheduler
libraries. Every rule cites its id from the rules catalogue (`catalogue.py`, RULES.md).
"""
