from django.core.management.base import BaseCommand

from patients.services import api_key_create, customer_create


class Command(BaseCommand):
    help = "Creates a customer (tenant). With --with-key, also creates an API key and prints it once."

    def add_arguments(self, parser):
        parser.add_argument("name", help="The customer's display name.")
        parser.add_argument("--with-key", action="store_true", help="Also create an API key and print it.")

    def handle(self, *args, name: str, with_key: bool, **options):
        customer = customer_create(name=name)
        self.stdout.write(f"customer_id={customer.id}")
        if with_key:
            new_key = api_key_create(customer=customer)
            self.stdout.write(f"api_key={new_key.clear_key}")
            self.stderr.write("Store the API key now: it is shown only once.")
