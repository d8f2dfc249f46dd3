"""Helpers shared by the tests, by topic (bulk pipeline, API clients, Document Queries, webhooks, admin,
browser, worker processes, receivers, factories, waiting). Test modules and conftests import helpers from
here only; conftests hold fixtures."""
