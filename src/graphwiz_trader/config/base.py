"""The one strict base of every settings model: unknown keys are errors, instances are frozen."""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict


class StrictModel(BaseModel):
    """Base of every settings model (``config/*.yaml`` sections and the models built from them).

    ``extra="forbid"`` makes a misspelt key an error naming its dotted path (see
    :func:`graphwiz_trader.config.loader.validate_mapping`); ``frozen=True`` keeps loaded settings immutable.
    """

    model_config = ConfigDict(extra="forbid", frozen=True)
