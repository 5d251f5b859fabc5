"""Output representations shared by several endpoints (a list and its detail show the same object).

Views nest their own `InputSerializer`; their `OutputSerializer` points at one of these when the shape is
shared. Each sets `Meta.ref_name`, the name drf-spectacular gives its schema component, so nested
serializers of different views never collide under the same name.
"""

from rest_framework import serializers

from accounts.models import Role


class UserRefSerializer(serializers.Serializer):
    id = serializers.IntegerField(read_only=True)
    email = serializers.EmailField(read_only=True)
    name = serializers.CharField(read_only=True)

    class Meta:
        ref_name = "UserRef"


class TeamRefSerializer(serializers.Serializer):
    id = serializers.IntegerField(read_only=True)
    name = serializers.CharField(read_only=True)

    class Meta:
        ref_name = "TeamRef"


class OrganizationSerializer(serializers.Serializer):
    id = serializers.IntegerField(read_only=True)
    name = serializers.CharField(read_only=True)
    slug = serializers.SlugField(read_only=True)
    time_zone = serializers.CharField(read_only=True)
    currency = serializers.CharField(read_only=True)
    language = serializers.CharField(read_only=True, help_text="The language of alerts (en or zh-hans).")
    created_at = serializers.DateTimeField(read_only=True)

    class Meta:
        ref_name = "Organization"


class MemberSerializer(serializers.Serializer):
    id = serializers.IntegerField(read_only=True)
    user = UserRefSerializer(read_only=True)
    role = serializers.ChoiceField(choices=Role.choices, read_only=True)
    teams = TeamRefSerializer(many=True, read_only=True)
    created_at = serializers.DateTimeField(read_only=True)

    class Meta:
        ref_name = "Member"


class TeamSerializer(serializers.Serializer):
    id = serializers.IntegerField(read_only=True)
    name = serializers.CharField(read_only=True)
    member_count = serializers.IntegerField(read_only=True)
    created_at = serializers.DateTimeField(read_only=True)

    class Meta:
        ref_name = "Team"


class InvitationSerializer(serializers.Serializer):
    """An invitation as its organization sees it: never its token (only the creating or resending answer has its link)."""

    id = serializers.IntegerField(read_only=True)
    email = serializers.EmailField(read_only=True)
    role = serializers.ChoiceField(choices=Role.choices, read_only=True)
    team = TeamRefSerializer(read_only=True, allow_null=True)
    invited_by = UserRefSerializer(read_only=True, allow_null=True)
    status = serializers.SerializerMethodField()
    created_at = serializers.DateTimeField(read_only=True)
    expires_at = serializers.DateTimeField(read_only=True)
    accepted_at = serializers.DateTimeField(read_only=True, allow_null=True)
    revoked_at = serializers.DateTimeField(read_only=True, allow_null=True)

    class Meta:
        ref_name = "Invitation"

    def get_status(self, invitation) -> str:
        if invitation.accepted_at is not None:
            return "accepted"
        if invitation.revoked_at is not None:
            return "revoked"
        return "pending" if invitation.is_pending else "expired"


class InvitationLinkSerializer(InvitationSerializer):
    """The answer to creating or resending an invitation: the only time its link is returned."""

    link = serializers.CharField(read_only=True, help_text="The single-use link, returned once; it works only for the invited email.")

    class Meta:
        ref_name = "InvitationWithLink"


class ApiTokenSerializer(serializers.Serializer):
    """An API token without its secret: only the visible prefix identifies it after creation."""

    id = serializers.IntegerField(read_only=True)
    name = serializers.CharField(read_only=True)
    role = serializers.ChoiceField(choices=Role.choices, read_only=True)
    prefix = serializers.CharField(read_only=True)
    created_by = UserRefSerializer(read_only=True, allow_null=True)
    created_at = serializers.DateTimeField(read_only=True)
    last_used_at = serializers.DateTimeField(read_only=True, allow_null=True)
    revoked_at = serializers.DateTimeField(read_only=True, allow_null=True)

    class Meta:
        ref_name = "ApiToken"


class AuditEntrySerializer(serializers.Serializer):
    id = serializers.IntegerField(read_only=True)
    action = serializers.CharField(read_only=True)
    actor = UserRefSerializer(read_only=True, allow_null=True)
    actor_label = serializers.CharField(read_only=True)
    target_type = serializers.CharField(read_only=True)
    target_id = serializers.CharField(read_only=True)
    target_label = serializers.CharField(read_only=True)
    data = serializers.JSONField(read_only=True)
    ip = serializers.IPAddressField(read_only=True, allow_null=True)
    created_at = serializers.DateTimeField(read_only=True)

    class Meta:
        ref_name = "AuditEntry"
