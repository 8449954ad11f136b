"""``pyspark-experiments cleanup``: select runs to delete, list them, delete them only when
asked (through MLflow's API), record every deletion, restore a batch.

- :mod:`.config`: :class:`CleanupConfig`; :mod:`.cli`: the command;
- :mod:`.job`: :func:`run_cleanup` (selection with
  :func:`pyspark_experiments.analytics.cleanup_candidates`, the target's lock);
- :mod:`.records`: the ``cleanup_log`` table or JSON-lines file (intents before deletions);
- :mod:`.plan`: a dry run's saved selection, which ``--yes --plan-file`` carries out exactly;
- :mod:`.deletion`: delete and restore through MLflow, Databricks' bulk delete;
- :mod:`.families`: parents and their nested runs (children deleted first, a parent kept while
  a run under it stays).

Example::

    $ pyspark-experiments cleanup --tracking-uri sqlite:///mlflow.db --statuses FAILED,KILLED --older-than-days 30
"""
