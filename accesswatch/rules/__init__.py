"""Rules as data: a YAML pack validated into typed rules."""

from __future__ import annotations

from accesswatch.rules.loader import RulePack, load_rules, parse_rules
from accesswatch.rules.problems import RulePackError

__all__ = ["RulePack", "RulePackError", "load_rules", "parse_rules"]
