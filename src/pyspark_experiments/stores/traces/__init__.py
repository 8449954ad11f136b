"""MLflow 3 GenAI traces: the ``traces``, ``spans`` and ``assessments`` tables of each store.

``convert`` turns MLflow's records into rows and Arrow batches; ``sql``, ``files`` and ``rest``
read them from a SQL store, a file store and a tracking server; ``selection`` says which traces.
"""
