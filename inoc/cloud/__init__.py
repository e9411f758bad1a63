"""Running the gpu_jobs on cloud GPUs through SkyPilot, and what that costs — Dagster-free.

Module map:

* ``accelerators``   — accelerator candidates, GPU memory, model size, disk size, the fit check
* ``task_render``    — the ``sky/*.yaml`` templates rendered into task configs (secrets kept apart)
* ``staging``        — the bucket layout ``<root>/<run id>/<asset>/``: inputs up, outputs and result.json down
* ``remote``         — what a cluster runs (``python -m inoc.cloud.remote <job>``)
* ``sky_sdk``        — the SkyPilot 0.14 SDK boundary (a Protocol and the real client)
* ``launcher``       — launch / exec / stream / wait / teardown state machine, cluster packing, retries
* ``ledger``         — local records: clusters this machine launched, measured throughputs
* ``catalog_prices`` — $/hour of accelerators from SkyPilot's own catalog
* ``estimate``       — ``inoc plan`` arithmetic: tokens, GPU-hours and dollars per stage
* ``budget``         — the budget guard and its confirmations
* ``plan_command``   — the ``inoc plan`` command line
"""
