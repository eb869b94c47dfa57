"""Errors the command line reports as one line on stderr with exit status 2."""

from __future__ import annotations


class CliError(Exception):
    """A user mistake on the command line: bad file, bad flag, bad setting."""
