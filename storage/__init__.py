"""nightshift package."""
