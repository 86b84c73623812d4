"""The division-code tree."""
