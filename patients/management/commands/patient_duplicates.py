from django.core.management.base import BaseCommand, CommandError

from metriport_bulk.lib.ids import as_uuid
from patients.models import Customer
from patients.selectors import patient_duplicate_groups
from patients.services import patients_rekey


class Command(BaseCommand):
    help = (
        "Lists the groups of patients of one customer that share a match key (the same person by the match rule), "
        "ids only: nothing is merged. --rekey first recomputes every stored match key with the current rule "
        "(migration patients 0005 did it once)."
    )

    def add_arguments(self, parser):
        parser.add_argument("--customer", help="Only this customer's patients (its id).")
        parser.add_argument("--rekey", action="store_true", help="Recompute every patient's match key first.")

    def handle(self, *args, **options):
        customer_id = None
        if options["customer"]:
            customer_id = as_uuid(options["customer"])
            if customer_id is None or not Customer.objects.filter(id=customer_id).exists():
                raise CommandError(f"No customer with id {options['customer']}.")
        if options["rekey"]:
            changed = patients_rekey()
            self.stdout.write(f"Recomputed the match keys: {changed} changed.")
        groups = patient_duplicate_groups(customer_id=customer_id)
        for group in groups:
            zips = "sharing a zip" if group.shares_zip else "no zip in common"
            ids = " ".join(str(patient_id) for patient_id in group.patient_ids)
            self.stdout.write(f"customer {group.customer_id}: {len(group.patient_ids)} patients, {zips}: {ids}")
        patients = sum(len(group.patient_ids) for group in groups)
        self.stdout.write(f"{len(groups)} groups of patients sharing a match key ({patients} patients); none merged.")
