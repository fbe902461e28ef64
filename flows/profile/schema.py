"""The keys a profile file may hold: at the top, in each section, for a person and for a
contact, and which local rules are text, and which may be null."""

from __future__ import annotations

_SCHOOL_KEYS = frozenset(
    {
        "id",
        "name",
        "tenant_id",
        "local_authority",
        "timezone",
        "school_hours",
        "closure_days",
        "people",
        "dsl_channel",
        "escalation",
        "rules",
        "contacts",
        "staff",
    }
)
_ORG_KEYS = _SCHOOL_KEYS | {"extends", "schools", "trust_safeguarding_leads"}
_SECTIONS: dict[str, frozenset[str]] = {
    "school_hours": frozenset({"days", "start", "end"}),
    "people": frozenset(
        {
            "dsl",
            "deputies",
            "headteacher",
            "deputy_head",
            "chair_of_governors",
            "safeguarding_governor",
            "case_managers",
        }
    ),
    "dsl_channel": frozenset({"team_id", "channel_id", "name", "mention_routine"}),
    "staff": frozenset({"aad_object_ids", "email_domains"}),
    "escalation": frozenset(
        {
            "urgent_minutes",
            "normal_minutes",
            "out_of_hours_urgent_minutes",
            "out_of_hours_normal_minutes",
        }
    ),
    "rules": frozenset(
        {
            "fgm_police_before_dsl",
            "fgm_all_staff_report_to_police",
            "recording_system",
            "written_record_hours",
            "written_referral_hours",
            "referral_consent",
            "child_on_child_rule",
            "missing_minutes_before_police",
            "missing_police_force",
            "missing_return_interview",
            "absence_local_authority",
            "absence_checklist",
            "absence_checklist_day",
            "incomplete_report_reminder_minutes",
            "incomplete_report_notice_minutes",
            "closed_record_retention_days",
        }
    ),
}
_OPTIONAL_TEXT_RULES = frozenset(
    {
        "recording_system",
        "referral_consent",
        "child_on_child_rule",
        "missing_police_force",
        "missing_return_interview",
        "absence_local_authority",
        "absence_checklist",
    }
)
# Text rules whose null means "none" (the others keep their wording default when null).
_NULL_MEANS_NONE = frozenset(
    {"recording_system", "referral_consent", "child_on_child_rule", "absence_checklist"}
)
_NULLABLE_NUMBER_RULES = frozenset(
    {
        "written_record_hours",
        "written_referral_hours",
        "missing_minutes_before_police",
        "absence_checklist_day",
        "closed_record_retention_days",
    }
)
_PERSON_KEYS = frozenset({"name", "aad_object_id", "email", "phone"})
_CONTACT_KEYS = frozenset(
    {
        "id",
        "name",
        "number",
        "email",
        "hours",
        "out_of_hours",
        "purpose",
        "keywords",
        "last_verified",
        "source",
        "quote",
        "email_warning",
        "area",
        "role",
    }
)
# Hours a policy states without clock times: unknown to the bot, so never shown as closed.
_HOURS_LABELS = {
    "office hours": "office hours only (times not given in the policy)",
    "out of office hours": "out of office hours only (evenings, nights, weekends, bank holidays)",
}
_HOURS_KEYS = frozenset({"days", "start", "end"})
