"""MLflow's file store (an ``mlruns/`` folder), read directly from its files.

The store (:mod:`.store`) lists, plans and reads; :mod:`.meta` reads ``meta.yaml`` and the
other small files, :mod:`.metrics` holds every rule of metric files (per line and in bulk) and
:mod:`.models` reads the logged models and the model registry.

Example::

    >>> FileStore.capabilities.metric_positions
    'bytes'
"""

from .store import FileStore

__all__ = ["FileStore"]
