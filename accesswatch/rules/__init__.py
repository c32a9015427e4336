"""Rules as data: a YAML pack validated into typed rules."""

from __future__ import annotations

from accesswatch.rules.loader import RulePack, load_rules, parse_rules

__all__ = ["RulePack", "load_rules", "parse_rules"]
