"""``inoc rehearse``: a real study's asset graph on this machine, with a stand-in model and API.

* ``derive`` — the rehearsal config: what is substituted, what is kept;
* ``preflight`` — the files a config names, checked before anything runs;
* ``standin_api`` — the OpenAI-compatible stand-in of every API model, on 127.0.0.1, served by
  ``openai_server`` (a local OpenAI-protocol HTTP server);
* the pipeline process, in the rehearsal's own home, is ``inoc_assets.rehearsal_worker`` (it drives
  Dagster, which ``inoc`` does not import; ``run`` starts it as a process);
* ``run`` — the command: all of the above, the SkyPilot tasks and the plan, and the report.
"""
