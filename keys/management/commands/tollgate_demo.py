"""Create the demo organization of `make run` once: an owner, the local demo model and a key."""

import secrets

from django.conf import settings
from django.core.management.base import BaseCommand
from django.db import transaction

from accounts.models import Membership, User
from accounts.services import organization_create
from accounts.tenancy import OrgContext
from keys import services

DEMO_EMAIL = "admin@tollgate.local"
DEMO_ORG = "Demo"


class Command(BaseCommand):
    help = "Create a demo organization, owner, demo model and virtual key (first run only); print how to log in."

    def handle(self, *args, **options):
        url = settings.TOLLGATE_PUBLIC_URL.rstrip("/")
        user = User.objects.filter(email=DEMO_EMAIL).first()
        if user is not None:
            self.stdout.write(
                f"Tollgate: {url}/  (log in as {DEMO_EMAIL} with the password printed on the first run; "
                f"reset it with: .venv/bin/python manage.py changepassword {DEMO_EMAIL})"
            )
            return
        password = secrets.token_urlsafe(12)
        with transaction.atomic():
            user = User.objects.create_user(email=DEMO_EMAIL, password=password, name="Demo admin")
            org = organization_create(name=DEMO_ORG, owner=user)
            ctx = OrgContext(organization=org, role=Membership.objects.get(organization=org, user=user).role, user=user)
            credential = services.credential_create(actor=ctx, name="Demo (local mock)", provider="mock")
            model = services.model_create(actor=ctx, name="demo", description="Answers locally: a demo, not a real model.")
            services.deployment_create(actor=ctx, model=model, credential=credential, upstream_model="tollgate-demo")
            _, secret = services.virtual_key_create(actor=ctx, name="Demo key", user=user)
        self.stdout.write(self.style.SUCCESS("Tollgate demo created."))
        self.stdout.write(f"  Dashboard: {url}/   log in as {DEMO_EMAIL} / {password}")
        self.stdout.write(f"  Virtual key (shown once): {secret}")
        self.stdout.write(
            f"  Try it:  curl {url}/v1/chat/completions -H 'Authorization: Bearer {secret}' "
            "-H 'Content-Type: application/json' -d '{\"model\": \"demo\", \"messages\": [{\"role\": \"user\", \"content\": \"Hello\"}]}'"
        )


