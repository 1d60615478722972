"""`python -m tests.billing.meter_worker <batch size>`: what the Celery beat task
billing.usage_ledger_report does, run as a process of its own with the production settings (so a test
can kill it mid-batch, as a crashed worker would be)."""

from __future__ import annotations

import sys

import django

django.setup()

from billing.metering import usage_ledger_report  # noqa: E402

if __name__ == "__main__":
    print(usage_ledger_report(batch_size=int(sys.argv[1])), flush=True)
