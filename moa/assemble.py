"""Named models assembled from mechanisms (the models users simulate)."""

from __future__ import annotations

from .engine import Model
from .mechanisms.pharmacokinetics import antibody_two_compartment, systemic_pdl1_tmdd

__all__ = ["pk_model"]


def pk_model(drug: str = "bsab", label: str = "PD-L1 x 4-1BB bispecific") -> Model:
    """Two-compartment antibody PK with target-mediated disposition to systemic PD-L1."""
    return Model([antibody_two_compartment(drug, label), systemic_pdl1_tmdd(drug, label)], name=f"pk_tmdd_{drug}")
