"""Rodas4's coefficients (Hairer & Wanner, Solving ODEs II, 2nd ed., Sect. VI.4; their ``rodas.f``, "RODAS4" set)
in the transformed ("U") variables, and the step-size controller's constants.

Every Rodas4 implementation of moa (numpy stepper, numba and CUDA kernels) reads its numbers from here.
"""

from __future__ import annotations

__all__ = ["Rodas4Tableau", "RODAS4", "SAFE", "FAC_MIN", "FAC_MAX", "GROWTH_LIMIT"]


class Rodas4Tableau:
    """Coefficients of Rodas4 in the transformed variables (see module docstring)."""

    gamma = 0.25
    # a[i][j]: weights of U_j in the argument of f for stage i (0-based stages).
    a = (
        (),
        (1.544,),
        (0.9466785280815826, 0.2557011698983284),
        (3.314825187068521, 2.896124015972201, 0.9986419139977817),
        (1.221224509226641, 6.019134481288629, 12.53708332932087, -0.6878860361058950),
        # stage 6 argument = stage 5 argument + U_5 (stiffly accurate structure)
        (1.221224509226641, 6.019134481288629, 12.53708332932087, -0.6878860361058950, 1.0),
    )
    # c[i][j]: weights of U_j / h added to the right-hand side of stage i.
    c = (
        (),
        (-5.6688,),
        (-2.430093356833875, -0.2063599157091915),
        (-0.1073529058151375, -9.594562251023355, -20.47028614809616),
        (7.496443313967647, -10.24680431464352, -33.99990352819905, 11.70890893206160),
        (8.083246795921522, -7.981132988064893, -31.52159432874371, 16.31930543123136, -6.058818238834054),
    )
    # Dense output: y(t + s h) = y0 + s (y1 - y0 + (1 - s)(H2 + s H3)),  Hk = sum_j h_kj U_j.
    h2 = (10.12623508344586, -7.487995877610167, -34.80091861555747, -7.992771707568823, 1.025137723295662)
    h3 = (-0.6762803392801253, 6.087714651680015, 16.43084320892478, 24.76722511418386, -6.594389125716872)
    order = 4  # order of the propagated solution
    err_order = 3  # order of the embedded solution; controller exponent 1/(err_order+1)


RODAS4 = Rodas4Tableau()


# Step-size controller constants (Hairer & Wanner rodas.f defaults).
SAFE = 0.9
FAC_MIN = 0.2  # h_new >= 0.2 h
FAC_MAX = 6.0  # h_new <= 6 h
GROWTH_LIMIT = 1e8  # max |multiplier| before falling back to a pivoted dense solve
