"""MLflow 3 GenAI traces: what every store shares to read the ``traces``, ``spans`` and
``assessments`` tables.

``convert`` and ``spans`` turn MLflow's records into rows and Arrow batches, ``artifact_spans``
reads spans kept as a ``traces.json`` artifact, ``selection`` says which traces, and
``reading`` plans them into partitions and reports malformed records. Each backend reads its
own form: :mod:`..sql.traces`, :mod:`..file.traces`, :mod:`..rest.traces`.
"""
