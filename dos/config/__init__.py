"""Configuration as data: YAML files validated against dataclass schemas (see schema.py)."""
