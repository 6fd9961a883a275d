"""Conformance suite for hashers: ``check_hasher("name")`` or ``iter_checks(cls)`` in pytest."""

from mmhash.testing.checks import CHECKS, CheckResult, check_hasher, check_params, iter_checks

__all__ = ["CHECKS", "CheckResult", "check_hasher", "check_params", "iter_checks"]
