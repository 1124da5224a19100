"""Named models assembled from mechanisms (the models users simulate)."""

from __future__ import annotations

import functools

from ..mechanisms.binding import DRUG_ARMS, tumour_binding
from ..mechanisms.chemotherapy import nab_paclitaxel
from ..mechanisms.pharmacokinetics import antibody_two_compartment, systemic_pdl1_tmdd
from ..mechanisms.suppression import regulatory_t_cells, suppressive_myeloid_cells
from ..mechanisms.tcells import t_cells
from ..mechanisms.tumour import tumour
from .model import Model

__all__ = ["pk_model", "full_model", "FULL_MODEL_NAME"]


def pk_model(drug: str = "bsab", label: str = "PD-L1 x 4-1BB bispecific") -> Model:
    """Two-compartment antibody PK with target-mediated disposition to systemic PD-L1."""
    return Model([antibody_two_compartment(drug, label), systemic_pdl1_tmdd(drug, label)], name=f"pk_tmdd_{drug}")


#: The name of :func:`full_model` with all three antibodies.
FULL_MODEL_NAME = "moa_pdl1_41bb"


@functools.lru_cache(maxsize=4)
def full_model(drugs: tuple[str, ...] | None = None) -> Model:
    """The mechanism-of-action model: three antibodies (bispecific, anti-PD-L1, anti-4-1BB)
    with PK and systemic PD-L1 TMDD, tumour binding, T cells, tumour and nab-paclitaxel, plus the
    cells that suppress effectors (regulatory T cells, suppressive myeloid cells).

    ``drugs``: only these antibodies (of ``bsab``, ``apdl1``, ``a41bb``; None: all three), for a regimen that
    gives no other. The states of an antibody never dosed stay exactly zero in the full model, so leaving
    them out changes no equation of the others (tests/test_model_reduction.py: equal right-hand sides);
    it only saves work (the nab-paclitaxel + 2:2 regimen: 39 states instead of 54). Not the same
    numbers to the last digit: the step-size control's error norm is a mean over the states, so the
    steps differ and results agree to the solver tolerance. Named ``moa_pdl1_41bb[bsab]`` and so on."""
    known = tuple(a.drug for a in DRUG_ARMS)
    if drugs is not None:
        drugs = tuple(drugs)
        bad = [d for d in drugs if d not in known]
        if bad or not drugs or len(set(drugs)) != len(drugs):
            raise ValueError(
                f"full_model(drugs={drugs!r}): give distinct antibodies of {known} (or None for all three)"
            )
    used = [a for a in DRUG_ARMS if drugs is None or a.drug in drugs]
    mechanisms = []
    pool_done = False
    for arms in used:
        mechanisms.append(antibody_two_compartment(arms.drug, arms.label))
        if arms.binds_pdl1:
            # the systemic PD-L1 pool is shared: its synthesis and turnover are added once
            mechanisms.append(systemic_pdl1_tmdd(arms.drug, arms.label, pool_turnover=not pool_done))
            pool_done = True
    mechanisms += [tumour_binding(tuple(used)), t_cells(), tumour(), nab_paclitaxel()]
    mechanisms += [regulatory_t_cells(), suppressive_myeloid_cells()]
    name = FULL_MODEL_NAME if len(used) == len(DRUG_ARMS) else f"{FULL_MODEL_NAME}[{','.join(a.drug for a in used)}]"
    return Model(mechanisms, name=name)  # cached: building and compiling take seconds
