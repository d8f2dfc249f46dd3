"""Writes docs/csv-format.md from the code's own column and error-code definitions (bulkimport.csv_format)."""

from pathlib import Path

from django.conf import settings
from django.core.management.base import BaseCommand, CommandError

from bulkimport.csv_format import DOCS_PATH, csv_format_sections, render_markdown


class Command(BaseCommand):
    help = "Writes docs/csv-format.md (the CSV format page) from the code; --check only says whether it is current."

    def add_arguments(self, parser):
        parser.add_argument("--check", action="store_true", help="Exit 1 if the file differs from the code.")
        parser.add_argument("--output", "-o", default=str(Path(settings.BASE_DIR) / DOCS_PATH))

    def handle(self, *args, check: bool, output: str, **options):
        text = render_markdown(csv_format_sections())
        path = Path(output)
        if check:
            if not path.is_file() or path.read_text(encoding="utf-8") != text:
                raise CommandError(f"{path} is not what the code says: run `manage.py csv_format_docs`.")
            self.stdout.write(f"{path} is current")
            return
        path.write_text(text, encoding="utf-8")
        self.stdout.write(f"wrote {path}")
