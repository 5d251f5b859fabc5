"""`make run`'s demo: an owner, the local demo model and a key (first run), then a month of demo usage.

The usage is generated (billing/demo.py) and labelled as such; re-running adds only what is missing.
Lives in billing because it writes the ledger; keys and accounts are below it.
"""

from django.conf import settings
from django.core.management.base import BaseCommand

from billing.demo import DAYS, DEMO_EMAIL, demo_create, demo_furnish, demo_usage_seed


class Command(BaseCommand):
    help = "Create a demo organization, owner, demo models and keys (first run only), seed a month of demo usage; print how to log in."

    def add_arguments(self, parser):
        parser.add_argument("--no-usage", action="store_true", help="Do not generate the month of demo usage.")

    def handle(self, *args, no_usage: bool = False, **options):
        url = settings.TOLLGATE_PUBLIC_URL.rstrip("/")
        demo = demo_create()
        demo_furnish(demo.organization)
        added = 0 if no_usage else demo_usage_seed(demo.organization)
        if demo.password is None:
            self.stdout.write(
                f"Tollgate: {url}/  (log in as {DEMO_EMAIL} with the password printed on the first run; "
                f"reset it with: .venv/bin/python manage.py changepassword {DEMO_EMAIL})"
            )
        else:
            self.stdout.write(self.style.SUCCESS("Tollgate demo created."))
            self.stdout.write(f"  Dashboard: {url}/   log in as {DEMO_EMAIL} / {demo.password}")
            self.stdout.write(f"  Virtual key (shown once): {demo.secret}")
            self.stdout.write(
                f"  Try it:  curl {url}/v1/chat/completions -H 'Authorization: Bearer {demo.secret}' "
                "-H 'Content-Type: application/json' -d '{\"model\": \"demo\", \"messages\": [{\"role\": \"user\", \"content\": \"Hello\"}]}'"
            )
        if added:
            self.stdout.write(f"  Demo usage: {added} generated requests over the last {DAYS} days (request ids start with demo-).")
