import sys

from django.core.management.base import BaseCommand, CommandError
from tqdm import tqdm

from devtools.sample import SAMPLE_HEADER, sample_rows


class Command(BaseCommand):
    help = (
        "Writes a CSV of realistic synthetic patient demographics (Metriport's bulk format) for demos and "
        "benchmarks, with a share of deliberately invalid rows. Deterministic for a given --seed."
    )

    def add_arguments(self, parser):
        parser.add_argument("--rows", type=int, help="Data rows to write (1..100000 for a valid import).")
        parser.add_argument(
            "--template",
            action="store_true",
            help="Write the CSV template instead: every column and two example rows (as GET .../bulk/template).",
        )
        parser.add_argument("--invalid-ratio", type=float, default=0.05, help="Share of invalid rows, 0..1.")
        parser.add_argument("--seed", type=int, default=0)
        parser.add_argument("--output", "-o", default="-", help="File path, or - for standard output.")

    def handle(self, *args, rows: int | None, template: bool, invalid_ratio: float, seed: int, output: str, **options):
        import csv

        if template:
            if rows is not None:
                raise CommandError("--template writes the template's two example rows: leave out --rows")
            self._write_template(output)
            return
        if rows is None:
            raise CommandError("--rows is required (or --template for the CSV template)")
        if rows < 0:
            raise CommandError("--rows must be >= 0")
        if not 0 <= invalid_ratio <= 1:
            raise CommandError("--invalid-ratio must be between 0 and 1")
        out = sys.stdout if output == "-" else open(output, "w", newline="", encoding="utf-8")  # noqa: SIM115
        try:
            writer = csv.writer(out, lineterminator="\n")
            writer.writerow(SAMPLE_HEADER)
            progress = tqdm(total=rows, unit="rows", disable=output == "-", file=sys.stderr)
            for row in sample_rows(rows, invalid_ratio=invalid_ratio, seed=seed):
                writer.writerow(row)
                progress.update()
            progress.close()
        finally:
            if out is not sys.stdout:
                out.close()
        if output != "-":
            self.stderr.write(f"wrote {rows} rows to {output}")

    def _write_template(self, output: str) -> None:
        from bulkimport.csv_format import template_csv

        if output == "-":
            self.stdout.write(template_csv(), ending="")
            return
        with open(output, "w", newline="", encoding="utf-8") as out:
            out.write(template_csv())
        self.stderr.write(f"wrote the CSV template to {output}")
