"""The file store's logged models and model registry, read from their folders.

Logged models: ``<experiment>/models/<model_id>/`` with meta.yaml, params/, tags/, metrics/
(lines ``timestamp value step run_id [dataset_name dataset_digest]``). The registry:
``<root>/models/<name>/`` with meta.yaml, tags/, aliases/<alias> (holding the version) and
``version-<n>/`` with meta.yaml and tags/.

Example::

    >>> registry("/nonexistent", Problems("FAILFAST"))
    []
"""

from __future__ import annotations

import os
from collections.abc import Callable

from ..base import Selection, lifecycle_stages
from ..models import logged_model_status, version_admitted
from ..problems import Problems
from .meta import META, key_files, read_values, read_yaml
from .metrics import read_model_metric_file


def logged_models(experiment_dir: Callable[[str], str | None], selection: Selection, problems: Problems) -> list[dict]:
    stages = lifecycle_stages(selection.view_type)
    found = []
    for experiment_id in selection.experiment_ids:
        experiment_path = experiment_dir(experiment_id)
        models_dir = os.path.join(experiment_path or "", "models")
        if experiment_path is None or not os.path.isdir(models_dir):
            continue
        for model_id in sorted(os.listdir(models_dir)):
            model_dir = os.path.join(models_dir, model_id)
            meta_path = os.path.join(model_dir, META)
            if not os.path.isdir(model_dir) or not os.path.exists(meta_path):
                continue
            meta = read_yaml(meta_path, problems)
            if meta is None:
                continue
            if str(meta.get("model_id")) != model_id or str(meta.get("experiment_id")) != str(experiment_id):
                problems.skip(
                    f"{meta_path}: model {meta.get('model_id')!r} of experiment {meta.get('experiment_id')!r} "
                    f"does not match its folder (model {model_id!r} in experiment {experiment_id!r})"
                )
                continue
            stage = meta.get("lifecycle_stage") or "active"
            if stage not in stages or (selection.run_ids is not None and meta.get("source_run_id") not in selection.run_ids):
                continue
            found.append({
                "model_id": model_id, "experiment_id": str(experiment_id), "name": meta.get("name"),
                "source_run_id": meta.get("source_run_id"), "status": logged_model_status(meta.get("status")),
                "model_type": meta.get("model_type"), "artifact_location": meta.get("artifact_location"),
                "creation_time": meta.get("creation_timestamp"), "last_updated_time": meta.get("last_updated_timestamp"),
                "lifecycle_stage": stage,
                "params": dict(read_values(os.path.join(model_dir, "params"), problems)),
                "tags": dict(read_values(os.path.join(model_dir, "tags"), problems)),
                "metrics": [
                    point
                    for key, path in key_files(os.path.join(model_dir, "metrics"))
                    for point in read_model_metric_file(key, path, problems)
                ],
            })
    return found


def registry(root: str, problems: Problems) -> list[tuple[dict, str]]:
    """(registered model row, its folder) for every registered model of the store."""
    registry_dir = os.path.join(root, "models")
    found = []
    if not os.path.isdir(registry_dir):
        return found
    for name in sorted(os.listdir(registry_dir)):
        model_dir = os.path.join(registry_dir, name)
        meta = read_yaml(os.path.join(model_dir, META), problems) if os.path.isdir(model_dir) else None
        if meta is None:
            continue
        found.append(({
            "name": meta.get("name", name), "description": meta.get("description"),
            "creation_time": meta.get("creation_timestamp"), "last_updated_time": meta.get("last_updated_timestamp"),
            "tags": dict(read_values(os.path.join(model_dir, "tags"), problems)),
            "aliases": {alias: value.strip() for alias, value in read_values(os.path.join(model_dir, "aliases"), problems)},
        }, model_dir))
    return found


def model_versions(root: str, selection: Selection, problems: Problems) -> list[dict]:
    found = []
    for model, model_dir in registry(root, problems):
        for folder in sorted(os.listdir(model_dir)):
            version_dir = os.path.join(model_dir, folder)
            if not folder.startswith("version-") or not os.path.isdir(version_dir):
                continue
            meta_path = os.path.join(version_dir, META)
            meta = read_yaml(meta_path, problems)
            if meta is None:
                continue
            if str(meta.get("version")) != folder[len("version-"):]:
                problems.skip(f"{meta_path}: version {meta.get('version')!r} does not match its folder {folder!r}")
                continue
            if not version_admitted(meta.get("current_stage"), selection.view_type):
                continue
            if selection.run_ids is not None and meta.get("run_id") not in selection.run_ids:
                continue
            version = str(meta.get("version"))
            found.append({
                "name": model["name"], "version": version, "source": meta.get("source"), "run_id": meta.get("run_id"),
                "model_id": meta.get("model_id"), "status": meta.get("status"), "current_stage": meta.get("current_stage"),
                "description": meta.get("description"), "creation_time": meta.get("creation_timestamp"),
                "last_updated_time": meta.get("last_updated_timestamp"),
                "tags": dict(read_values(os.path.join(version_dir, "tags"), problems)),
                "aliases": [alias for alias, target in model["aliases"].items() if target == version],
            })
    return found
