"""create_support_user NAME [--phi] [--email E]: a staff user for the support team (README, Operations)."""

from django.core.management.base import BaseCommand, CommandError

from patients.services import SUPPORT_GROUP, SUPPORT_NO_PHI_GROUP, SupportUserRefused, support_user_create


class Command(BaseCommand):
    help = (
        f'Creates a staff user in the "{SUPPORT_GROUP}" group (--phi: demographics, files and payloads '
        f'included) or in "{SUPPORT_NO_PHI_GROUP}" (ids and statuses only). Prints a random password once.'
    )

    def add_arguments(self, parser):
        parser.add_argument("name", help="The user name to log in with.")
        parser.add_argument("--phi", action="store_true", help="Let the user see PHI (patients.view_phi).")
        parser.add_argument("--email", default="")

    def handle(self, *args, name: str, phi: bool, email: str, **options):
        try:
            user, password = support_user_create(username=name, phi=phi, email=email)
        except SupportUserRefused as exc:
            raise CommandError(str(exc)) from None
        group = SUPPORT_GROUP if phi else SUPPORT_NO_PHI_GROUP
        self.stdout.write(f"username={user.get_username()}")
        self.stdout.write(f"password={password}")
        self.stdout.write(f"group={group}")
        self.stderr.write("Store the password now: it is shown only once. Log in at /admin/ and change it there.")
