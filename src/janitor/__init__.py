"""janitor: finds idle ML cloud resources, warns their owners, then stops them safely."""

__version__ = "0.1.0"
