"""Errors meant for the user. The command line prints these (and the environment's `OSError`s,
such as a full disk) as `error: ...` with exit status 2 and keeps finished work; anything else
is a bug and shows its traceback.

Each subclass is also the builtin error a library user would expect (`ValueError`,
`FileNotFoundError`, `FileExistsError`), so `except ValueError` keeps working.

Example:
    >>> issubclass(InputError, UserError) and issubclass(InputError, ValueError)
    True
"""

from __future__ import annotations


class UserError(Exception):
    """Bad input or a run that cannot go on; the message names the problem and the fix."""


class InputError(UserError, ValueError):
    """A value the user gave (a setting, a trigger, a stage name, a run's data) that cannot work."""


class MissingRunError(UserError, FileNotFoundError):
    """A folder that holds no run, or not the finished part of one that was asked for."""


class RunExistsError(UserError, FileExistsError):
    """A new run asked for in a folder that already holds one."""
