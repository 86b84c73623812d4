"""registry: a privacy-first register for a county's public-safety and justice offices."""

__version__ = "0.1.0"
