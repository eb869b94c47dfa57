"""Anomaly detection on the transaction feed: the online engine, offline analysis, simulation.

Exceptions::

    DetectorError          bad input handed to the detector (a frame without its columns, ...)
    └── InputFormatError   a file the offline tools cannot read; message is "path:line: reason"
"""

from __future__ import annotations


class DetectorError(Exception):
    """Input the detector cannot work with."""


class InputFormatError(DetectorError):
    """A CSV the offline tools cannot read; the message names the file and line."""
