"""Every school one deployment serves (a trust's profile, or a folder of them), and who is where.

Pure: profiles in, answers out. The edge asks it which school a member of staff belongs to,
which schools a DSL may oversee, and which tenants may talk to the bot at all.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path

import yaml

from flows.profile import Organisation, ProfileError, SchoolProfile, load_organisation


class UnknownSchool(LookupError):
    """A concern or a person names a school this deployment does not serve."""


@dataclass(frozen=True)
class SchoolDirectory:
    """The schools served, by id; each belongs to one organisation (a trust, or itself)."""

    organisations: tuple[Organisation, ...]
    _by_id: dict[str, SchoolProfile] = field(init=False, repr=False, compare=False)
    _org_of: dict[str, Organisation] = field(init=False, repr=False, compare=False)
    # Entra object id -> the schools that name or list them (looked up every turn).
    _by_person: dict[str, tuple[SchoolProfile, ...]] = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        by_id: dict[str, SchoolProfile] = {}
        org_of: dict[str, Organisation] = {}
        problems = []
        for org in self.organisations:
            for school in org.schools:
                if school.id in by_id:
                    problems.append(
                        f"{org.source_path}: schools: school id {school.id!r} is also in "
                        f"{org_of[school.id].source_path} - ids must be unique in one deployment"
                    )
                    continue
                by_id[school.id] = school
                org_of[school.id] = org
        if problems:
            raise ProfileError(problems)
        if not by_id:
            raise ProfileError(["(profiles): no school to serve"])
        by_person: dict[str, list[SchoolProfile]] = {}
        for school in by_id.values():
            ids = {p.aad_object_id for p in school.named_people()} | school.staff_ids
            for aad in ids:
                by_person.setdefault(aad, []).append(school)
        object.__setattr__(self, "_by_id", by_id)
        object.__setattr__(self, "_org_of", org_of)
        object.__setattr__(self, "_by_person", {k: tuple(v) for k, v in by_person.items()})

    # -- building --------------------------------------------------------------------------

    @classmethod
    def of(cls, served: SchoolDirectory | SchoolProfile | Organisation) -> SchoolDirectory:
        """A directory from what a caller has: one school (a single-school install), an
        organisation, or a directory already."""
        if isinstance(served, SchoolDirectory):
            return served
        if isinstance(served, Organisation):
            return cls((served,))
        org = Organisation(
            id=served.id, name=served.name, schools=(served,), source_path=served.source_path
        )
        return cls((org,))

    @classmethod
    def load(cls, path: str | Path) -> SchoolDirectory:
        """One profile file, or every profile in a folder (a local authority's pack).
        `national.yaml` and other files that only hold shared defaults (`extends` bases
        without a school) are skipped in a folder."""
        path = Path(path)
        if not path.is_dir():
            return cls((load_organisation(path),))
        files = sorted(p for p in path.glob("*.yaml") if _defines_a_school(p))
        if not files:
            raise ProfileError([f"{path}: no school profile (*.yaml with an id) in the folder"])
        return cls(tuple(load_organisation(p) for p in files))

    # -- schools ---------------------------------------------------------------------------

    @property
    def schools(self) -> tuple[SchoolProfile, ...]:
        return tuple(self._by_id.values())

    @property
    def single(self) -> SchoolProfile | None:
        """The school, when only one is served (then nobody is ever asked which)."""
        return self.schools[0] if len(self._by_id) == 1 else None

    def get(self, school_id: str | None) -> SchoolProfile:
        school = self._by_id.get(school_id or "")
        if school is not None:
            return school
        if self.single is not None and not school_id:
            return self.single
        raise UnknownSchool(f"school {school_id!r} is not served here")

    def find(self, school_id: str | None) -> SchoolProfile | None:
        return self._by_id.get(school_id or "")

    def organisation_of(self, school_id: str) -> Organisation:
        return self._org_of[school_id]

    def tenant_ids(self) -> frozenset[str]:
        """Every tenant a profile names: the deployment's one tenant guard."""
        return frozenset(s.tenant_id for s in self.schools)

    # -- people ----------------------------------------------------------------------------

    def in_tenant(self, tenant_id: str | None) -> tuple[SchoolProfile, ...]:
        """The schools a person from this tenant could be at (all, when no tenant is known)."""
        wanted = (tenant_id or "").strip().lower()
        found = tuple(s for s in self.schools if not wanted or s.tenant_id == wanted)
        return found

    def schools_of(
        self, aad_object_id: str | None, email: str | None = None, tenant_id: str | None = None
    ) -> tuple[SchoolProfile, ...]:
        """The schools a member of staff is known at: named in a profile or its staff list
        (by Entra id); failing that, by the domain of their e-mail address."""
        candidates = self.in_tenant(tenant_id)
        listed = self._by_person.get((aad_object_id or "").strip().lower(), ())
        by_id = tuple(s for s in listed if s in candidates)
        if by_id or not email:
            return by_id
        return tuple(s for s in candidates if s.works_here(None, email))

    def uses_email_domains(self) -> bool:
        return any(s.email_domains for s in self.schools)

    def is_trust_lead(self, aad_object_id: str | None, school_id: str) -> bool:
        """Named as a trust-level safeguarding lead of the organisation this school is in."""
        wanted = (aad_object_id or "").strip().lower()
        org = self._org_of.get(school_id)
        return (
            bool(wanted)
            and org is not None
            and any(p.aad_object_id == wanted for p in org.trust_safeguarding_leads)
        )

    def overseen_by(self, aad_object_id: str | None) -> tuple[SchoolProfile, ...]:
        """Schools whose DSL-team concerns this person may see and act on: their own DSL
        team's, and every school of an organisation that names them its trust lead."""
        if not aad_object_id:
            return ()
        return tuple(
            s
            for s in self.schools
            if s.is_dsl_team_member(aad_object_id) or self.is_trust_lead(aad_object_id, s.id)
        )

    def ids(self, schools: Iterable[SchoolProfile]) -> list[str]:
        return [s.id for s in schools]


def _defines_a_school(path: Path) -> bool:
    """A profile file, not a base of shared defaults: it has an `id` (or `schools`)."""
    try:
        head = yaml.safe_load(path.read_text(encoding="utf-8"))
    except (OSError, yaml.YAMLError):
        return True  # let the loader report it, naming the file and field
    return isinstance(head, dict) and ("id" in head or "schools" in head)
