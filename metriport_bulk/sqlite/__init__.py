"""The embedded default's database backend: Django's SQLite backend whose writers take turns (base.py)."""
