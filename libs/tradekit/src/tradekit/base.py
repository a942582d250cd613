"""The two model policies of tradekit's wire types. Both refuse unknown fields (a typo is an
error, not lost data); a `Payload` is also immutable once parsed."""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict


class Record(BaseModel):
    model_config = ConfigDict(extra="forbid")


class Payload(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)
