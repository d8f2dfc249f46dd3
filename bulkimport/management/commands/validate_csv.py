"""Checks a CSV file offline, with the service's own rules and limits, and prints what an upload of it would
report: the header warnings, every failed row with its reason and codes, or the file error. Nothing is
written anywhere: no database, no storage."""

import os
from collections import Counter

from django.conf import settings
from django.core.management.base import BaseCommand, CommandError

from bulkimport.validation import CsvFileError, CsvImport, row_label, row_reason
from metriport_bulk.lib.csvio import too_large_message


class Command(BaseCommand):
    help = (
        "Checks a patient CSV file as a Bulk Patient Create upload would, without the service: prints the "
        "header warnings and every failed row (reason and error codes). Exit 1 if the file or a row fails. "
        "Writes nothing."
    )

    def add_arguments(self, parser):
        parser.add_argument("file", help="The CSV file to check.")
        parser.add_argument("--limit", type=int, default=0, help="Print at most this many failed rows (0: all).")

    def handle(self, *args, file: str, limit: int, **options):
        try:
            size = os.path.getsize(file)
            stream = open(file, "rb")  # noqa: SIM115 (closed below)
        except OSError as exc:
            raise CommandError(f"{file}: {exc.strerror}") from None
        with stream:
            if size > settings.BULK_MAX_FILE_BYTES:
                raise CommandError(
                    f"file error [too_large]: {too_large_message(settings.BULK_MAX_FILE_BYTES, size=size)}"
                )
            total = failed = 0
            codes: Counter[str] = Counter()
            try:
                csv_import = CsvImport(stream, max_rows=settings.BULK_MAX_ROWS, max_bytes=settings.BULK_MAX_FILE_BYTES)
                for warning in csv_import.plan.warnings:
                    self.stdout.write(f"warning: {warning}")
                for row in csv_import.rows():
                    total += 1
                    if not row.errors:
                        continue
                    failed += 1
                    codes.update(error.code for error in row.errors)
                    if not limit or failed <= limit:
                        row_codes = ", ".join(dict.fromkeys(error.code for error in row.errors))
                        self.stdout.write(f"{row_label(row.number)}: {row_reason(row.errors)} [{row_codes}]")
            except CsvFileError as exc:
                raise CommandError(f"file error [{exc.code}]: {exc.message}") from None
        if limit and failed > limit:
            self.stdout.write(f"... and {failed - limit:,} more failed rows")
        summary = f"{file}: {total:,} rows, {total - failed:,} valid, {failed:,} failed"
        if codes:
            summary += " (" + ", ".join(f"{code} {n:,}" for code, n in codes.most_common()) + ")"
        self.stdout.write(summary)
        if failed:
            raise CommandError(f"{failed:,} of {total:,} rows would fail", returncode=1)
