"""Dimension names: what a feed column's name must be to be kept as a dimension, and how many.

Apart from `storage.parsing` (which imports pandas) so that settings can check
NIGHTSHIFT_DIMENSIONS without it.
"""

from __future__ import annotations

import re

__all__ = ["DIMENSION_NAME", "MAX_DIMENSIONS"]

DIMENSION_NAME = re.compile(r"[a-z][a-z0-9_]{0,31}")  # fullmatch: lowercase identifiers
MAX_DIMENSIONS = 8  # extra columns kept as dimensions, per feed
