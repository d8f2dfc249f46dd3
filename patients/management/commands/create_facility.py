from django.core.management.base import BaseCommand, CommandError

from metriport_bulk.lib.ids import as_uuid
from patients.models import Customer
from patients.serializers import FacilitySerializer
from patients.services import facility_create


class Command(BaseCommand):
    help = "Creates a facility for a customer, validated exactly as POST /medical/v1/facility validates it."

    def add_arguments(self, parser):
        parser.add_argument("customer_id", help="The customer's id (UUID).")
        parser.add_argument("--name", required=True)
        parser.add_argument("--npi", required=True, help="10-digit NPI with a valid check digit.")
        parser.add_argument("--tin", default="")
        parser.add_argument("--address-line1", required=True)
        parser.add_argument("--address-line2", default="")
        parser.add_argument("--city", required=True)
        parser.add_argument("--state", required=True)
        parser.add_argument("--zip", required=True)

    def handle(self, *args, **options):
        customer_uuid = as_uuid(options["customer_id"])
        customer = Customer.objects.filter(id=customer_uuid).first() if customer_uuid else None
        if customer is None:
            raise CommandError(f"No customer with id {options['customer_id']}.")
        serializer = FacilitySerializer(
            data={
                "name": options["name"],
                "npi": options["npi"],
                "tin": options["tin"],
                "address": {
                    "addressLine1": options["address_line1"],
                    "addressLine2": options["address_line2"] or None,
                    "city": options["city"],
                    "state": options["state"],
                    "zip": options["zip"],
                    "country": "USA",
                },
            }
        )
        if not serializer.is_valid():
            from metriport_bulk.api.errors import flatten_detail

            raise CommandError(flatten_detail(serializer.errors))
        facility = facility_create(customer=customer, **serializer.validated_data)
        self.stdout.write(f"facility_id={facility.id}")
