"""Test helper: a copy of a model's mechanisms with one rate term rewritten (to show that the unit
check or another model check catches a broken term)."""

from __future__ import annotations

import copy
import dataclasses


def with_term_replaced(model, mechanism: str, label: str, change) -> list:
    """The model's mechanisms with every term ``label`` of ``mechanism`` rewritten by ``change(expr)``.

    Fails the calling test when no such term exists (a renamed term must not make a check vacuous)."""
    out, hit = [], 0
    for mech in model.mechanisms:
        if mech.name == mechanism:
            mech = copy.copy(mech)
            terms = []
            for t in mech.terms:
                if t.label == label:
                    t, hit = dataclasses.replace(t, expr=change(t.expr)), hit + 1
                terms.append(t)
            mech.terms = terms
        out.append(mech)
    assert hit, f"no term {label!r} in {mechanism}"
    return out
