"""What SQL lineage answers: the input columns of each output column, per statement."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from headwater.lineage.schemas import ColumnLineageFacet, InputField, OutputFieldLineage, Transformation

__all__ = ["Base", "ColumnInput", "Found", "Identity", "Role", "StatementLineage", "keep"]

RANK = {"IDENTITY": 0, "TRANSFORMATION": 1, "AGGREGATION": 2}
Identity = tuple[str, str]
Base = tuple[str, str, str]  # namespace, dataset name, field path
Role = tuple[str, str, bool]  # type, subtype, masking
Found = dict[Base, Role]


@dataclass(frozen=True)
class ColumnInput:
    """One input column of an output column (or of the whole output)."""

    namespace: str
    name: str
    field: str
    type: str
    subtype: str
    masking: bool = False

    def as_dict(self) -> dict[str, Any]:
        """The JSON form."""
        return {
            "namespace": self.namespace,
            "name": self.name,
            "field": self.field,
            "type": self.type,
            "subtype": self.subtype,
            "masking": self.masking,
        }


@dataclass
class StatementLineage:
    """The lineage of one statement."""

    kind: str
    target: Identity | None
    inputs: list[Identity] = field(default_factory=list)
    columns: dict[str, list[ColumnInput]] = field(default_factory=dict)
    dataset_inputs: list[ColumnInput] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)

    def as_facet(self) -> ColumnLineageFacet:
        """The lineage as an OpenLineage columnLineage facet of the target."""

        def input_field(item: ColumnInput) -> InputField:
            return InputField(
                namespace=item.namespace,
                name=item.name,
                field=item.field,
                transformations=[
                    Transformation.model_validate({"type": item.type, "subtype": item.subtype, "masking": item.masking})
                ],
            )

        return ColumnLineageFacet(
            fields={
                column: OutputFieldLineage(inputFields=[input_field(i) for i in inputs])
                for column, inputs in self.columns.items()
            },
            dataset=[input_field(i) for i in self.dataset_inputs],
        )


def keep(found: Found, base: Base, role: Role) -> None:
    """Keep the stronger of two roles of one base column: direct over indirect, aggregation over identity."""
    old = found.get(base)
    if (
        old is None
        or (old[0] == "INDIRECT" and role[0] == "DIRECT")
        or old[0] == role[0] == "DIRECT"
        and RANK.get(role[1], 1) > RANK.get(old[1], 1)
    ):
        found[base] = role
