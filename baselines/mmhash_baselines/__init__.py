"""Shallow unsupervised cross-modal hashing baselines for mmhash.

Each method lives in its own module and is registered only through the ``mmhash.hashers``
entry-point group (see this distribution's ``pyproject.toml``), exactly as a third-party plugin.
"""
