"""First-run setup without a browser: a user, their organization and an admin API token.

Safe to run on every deploy: an existing user (matched by email) and organization (matched by name,
among those the user owns) are reused, and so is an active token of the same name, whose secret
cannot be shown again (it is printed only on the run that creates it).
"""

import json

from django.contrib.auth.password_validation import validate_password
from django.core.exceptions import ValidationError
from django.core.management.base import BaseCommand, CommandError
from django.core.validators import validate_email
from django.db import transaction

from accounts import services
from accounts.errors import ApplicationError
from accounts.models import ApiToken, Organization, Role, User


class Command(BaseCommand):
    help = "Create (or reuse) a user, an organization they own and an admin API token for it."

    def add_arguments(self, parser):
        parser.add_argument("--org", required=True, help="Organization name.")
        parser.add_argument("--email", required=True, help="The owner's email (their login).")
        parser.add_argument("--password", required=True, help="The owner's password; ignored if the user already exists.")
        parser.add_argument("--token-name", default="bootstrap", help="Name of the API token (default: bootstrap).")
        parser.add_argument("--json", action="store_true", dest="as_json", help="Print {org, user, token} as JSON.")

    def handle(self, *args, org: str, email: str, password: str, token_name: str, as_json: bool, **options):
        org_name, token_name = org.strip(), token_name.strip()
        email = User.objects.normalize_email(email.strip()).lower()
        if not org_name:
            raise CommandError("--org must not be empty.")
        if not token_name:
            raise CommandError("--token-name must not be empty.")
        try:
            validate_email(email)
        except ValidationError as exc:
            raise CommandError(f"--email: {email!r} is not a valid email address.") from exc

        try:
            with transaction.atomic():
                user, user_created = self._user(email, password)
                organization, org_created = self._organization(org_name, user)
                token, secret = self._token(organization, token_name, user)
        except ApplicationError as exc:
            raise CommandError(exc.message) from exc

        exists = (
            f"API token {token.name!r} ({token.prefix}…) already exists; its secret was shown when it was created. "
            "Revoke it or pass another --token-name to get a new one."
        )
        if as_json:
            result = {
                "org": {"id": organization.pk, "name": organization.name, "slug": organization.slug},
                "user": {"id": user.pk, "email": user.email},
                "token_prefix": token.prefix,
                "created": {"user": user_created, "org": org_created, "token": secret is not None},
            }
            # The secret only on the run that made it; a re-run says why there is none (not a bare null).
            result.update({"token": secret} if secret else {"token_exists": True, "message": exists})
            self.stdout.write(json.dumps(result))
            if secret is None:
                self.stderr.write(exists)
            return
        self.stdout.write(f"User: {user.email} ({'created' if user_created else 'existing'})")
        self.stdout.write(f"Organization: {organization.name} [{organization.slug}] ({'created' if org_created else 'existing'})")
        if secret is None:
            self.stdout.write(exists)
        else:
            self.stdout.write("API token (shown once, store it now):")
            self.stdout.write(secret)

    def _user(self, email: str, password: str) -> tuple[User, bool]:
        user = User.objects.filter(email__iexact=email).first()
        if user is not None:
            return user, False
        try:
            validate_password(password, user=User(email=email))
        except ValidationError as exc:
            raise CommandError("--password: " + " ".join(exc.messages)) from exc
        return User.objects.create_user(email=email, password=password), True

    def _organization(self, name: str, user: User) -> tuple[Organization, bool]:
        owned = Organization.objects.filter(name=name, memberships__user=user, memberships__role=Role.OWNER).first()
        if owned is not None:
            return owned, False
        if Organization.objects.filter(name=name).exists():
            raise CommandError(f"An organization named {name!r} exists but {user.email} is not its owner.")
        return services.organization_create(name=name, owner=user), True

    def _token(self, organization: Organization, name: str, user: User) -> tuple[ApiToken, str | None]:
        existing = ApiToken.objects.filter(organization=organization, name=name, revoked_at=None).first()
        if existing is not None:
            return existing, None
        return services.api_token_create(organization=organization, name=name, role=Role.ADMIN, actor=user)
