"""School profiles: load, merge and validate the YAML holding every school-specific fact.

What is where: `model.py` the typed profile (school, people, rules, organisation), `contact.py`
a directory contact and its hours, `loading.py` the strict YAML loader and the files a profile
`extends`, `build.py` an organisation built from those layers, `fields.py` each field's raw
value to its typed part, `checks.py` the checker collecting problems, `evidence.py` where each
phone number comes from, `schema.py` the keys a profile may hold."""

from flows.profile.contact import DAY_NAMES, Contact, Hours, hours_phrase
from flows.profile.evidence import number_digits, written_numbers
from flows.profile.loading import example_profiles_dir, load_organisation, parse_organisation
from flows.profile.model import (
    MENTION_ROUTINE,
    REQUIRED_CONTACTS,
    SOCIAL_CARE_CONTACTS,
    DslChannel,
    Escalation,
    LocalRules,
    Organisation,
    Person,
    ProfileError,
    SchoolProfile,
)

__all__ = [
    "DAY_NAMES",
    "MENTION_ROUTINE",
    "REQUIRED_CONTACTS",
    "SOCIAL_CARE_CONTACTS",
    "Contact",
    "DslChannel",
    "Escalation",
    "Hours",
    "LocalRules",
    "Organisation",
    "Person",
    "ProfileError",
    "SchoolProfile",
    "example_profiles_dir",
    "hours_phrase",
    "load_organisation",
    "number_digits",
    "parse_organisation",
    "written_numbers",
]
