"""Old path of :mod:`moa.symbolic.named_models` (``moa.assemble.full_model`` is the name README gave users)."""

from .symbolic.named_models import full_model, pk_model  # noqa: F401
