"""Every rule, by domain. A rule is a plain function described by `policies.model.rule`."""

from __future__ import annotations

from policies.model import Rule
from policies.rules import governance, ml, reliability, security, supply_chain, workloads

DOMAINS = (security, reliability, workloads, supply_chain, governance, ml)


def all_rules() -> tuple[Rule, ...]:
    """Every rule in a stable order: by domain, then as each module lists them."""
    return tuple(rule for domain in DOMAINS for rule in domain.RULES)


def rules_by_name() -> dict[str, Rule]:
    return {rule.name: rule for rule in all_rules()}
