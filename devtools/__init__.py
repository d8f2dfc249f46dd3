"""Development tools, apart from the product: the demo (`manage.py demo`), seeded sample CSVs
(`generate_sample_csv`), a local webhook receiver (`webhook_receiver`, hostile receivers for tests and
benches), tenants for tests and benches, and the test services set-up. No product app imports this package;
a production deployment may leave the `devtools` app out of INSTALLED_APPS."""
