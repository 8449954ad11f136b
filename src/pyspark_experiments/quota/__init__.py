"""``pyspark-experiments quota``: every experiment's and the heaviest runs' usage of the
tracking quotas (Databricks' limits unless set), as a table or one JSON document, with an exit
code a scheduler can act on (0 within the margin, 3 near a limit, 4 over one).

- :mod:`.config`: :class:`~.config.QuotaConfig` (the ``[quota]`` keys it shares with the
  analytics job and the report);
- :mod:`.usage`: :func:`~.usage.run_quota` (reading the store or the synced tables, counting
  with :func:`pyspark_experiments.analytics.quota_usage`);
- :mod:`.result`: :class:`~.result.QuotaResult`, the table, the JSON document, the exit code;
- :mod:`.cli`: the command.

Example::

    $ pyspark-experiments quota --tracking-uri sqlite:///mlflow.db
    $ pyspark-experiments quota --target-path /data/mlflow-delta --json --top 20
"""
