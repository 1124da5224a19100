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

__all__ = ["pk_model", "full_model"]


def pk_model(drug: str = "bsab", label: str = "PD-L1 x 4-1BB bispecific") -> Model:
    """Two-compartment antibody PK with target-mediated disposition to systemic PD-L1."""
    return Model([antibody_two_compartment(drug, label), systemic_pdl1_tmdd(drug, label)], name=f"pk_tmdd_{drug}")


@functools.lru_cache(maxsize=1)
def full_model() -> Model:
    """The mechanism-of-action model: three antibodies (bispecific, anti-PD-L1, anti-4-1BB)
    with PK and systemic PD-L1 TMDD, tumour binding, T cells, tumour and nab-paclitaxel, plus the
    cells that suppress effectors (regulatory T cells, suppressive myeloid cells)."""
    mechanisms = []
    pool_done = False
    for arms in DRUG_ARMS:
        mechanisms.append(antibody_two_compartment(arms.drug, arms.label))
        if arms.binds_pdl1:
            # the systemic PD-L1 pool is shared: its synthesis and turnover are added once
            mechanisms.append(systemic_pdl1_tmdd(arms.drug, arms.label, pool_turnover=not pool_done))
            pool_done = True
    mechanisms += [tumour_binding(), t_cells(), tumour(), nab_paclitaxel()]
    mechanisms += [regulatory_t_cells(), suppressive_myeloid_cells()]
    return Model(mechanisms, name="moa_pdl1_41bb")  # cached: building and compiling take seconds
