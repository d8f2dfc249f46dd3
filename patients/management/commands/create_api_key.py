from django.core.management.base import BaseCommand, CommandError

from metriport_bulk.lib.ids import as_uuid
from patients.models import Customer
from patients.services import api_key_create


class Command(BaseCommand):
    help = "Creates an API key for a customer and prints it once (only its hash is stored)."

    def add_arguments(self, parser):
        parser.add_argument("customer_id", help="The customer's id (UUID).")
        parser.add_argument("--name", default="default", help="A label for the key.")

    def handle(self, *args, customer_id: str, name: str, **options):
        customer_uuid = as_uuid(customer_id)
        customer = Customer.objects.filter(id=customer_uuid).first() if customer_uuid else None
        if customer is None:
            raise CommandError(f"No customer with id {customer_id}.")
        new_key = api_key_create(customer=customer, name=name)
        self.stdout.write(f"api_key={new_key.clear_key}")
        self.stderr.write("Store the API key now: it is shown only once.")
