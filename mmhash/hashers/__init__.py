"""Hashing methods owned by mmhash (registered through the ``mmhash.hashers`` entry points)."""
