"""Ids in a request body or a filter (a team, a key, a user) looked up inside the caller's organization and
refused as field errors, and the date-or-instant field of the usage filters."""

import zoneinfo
from datetime import date, datetime, time

from rest_framework import serializers

from accounts.api.base import OrgAPIView
from accounts.errors import ApplicationError
from accounts.models import Team, User
from keys.models import VirtualKey


def team_in_org(view: OrgAPIView, team_id: int | None, field: str = "team") -> Team | None:
    if team_id is None:
        return None
    team = view.scoped(Team).filter(pk=team_id).first()
    if team is None:
        raise ApplicationError("Unknown team.", field=field, code="not_found")
    return team


def key_in_org(view: OrgAPIView, key_id: int | None, field: str = "key") -> VirtualKey | None:
    if key_id is None:
        return None
    key = view.scoped(VirtualKey).filter(pk=key_id).first()
    if key is None:
        raise ApplicationError("Unknown key.", field=field, code="not_found")
    return key


def user_in_org(view: OrgAPIView, user_id: int | None, field: str = "user") -> User | None:
    if user_id is None:
        return None
    user = User.objects.filter(pk=user_id, memberships__organization=view.organization).first()
    if user is None:
        raise ApplicationError("Unknown user.", field=field, code="not_found")
    return user


class InstantField(serializers.DateTimeField):
    """An ISO 8601 date-time, or a date (YYYY-MM-DD): its midnight in the organization's time zone."""

    def to_internal_value(self, value):
        text = value.strip() if isinstance(value, str) else value
        if isinstance(text, str) and len(text) == 10:
            try:
                day = date.fromisoformat(text)
            except ValueError as exc:
                raise serializers.ValidationError("Enter a date (YYYY-MM-DD) or an ISO 8601 date-time.") from exc
            return datetime.combine(day, time.min, tzinfo=zoneinfo.ZoneInfo(self.context["time_zone"]))
        return super().to_internal_value(value)
