"""Run folders: typed configuration, layout, manifests, locks, atomic files, the metrics schema.

    config.py    RunConfig: one typed configuration for local and verl training
    layout.py    run_dir / eval_dir / slug: the one naming scheme; checkpoints inside a run
    manifest.py  the one manifest schema, with a Status enum (train, eval, study steps)
    files.py     atomic writes, append-only JSON lines, FolderLock
    metrics.py   the metrics schema both engines write, and load_metrics
"""

from mirage.runs.config import RunConfig, default_threads, result_fields
from mirage.runs.files import (DiskFull, FolderBusy, FolderLock, append_jsonl, atomic_dir, atomic_path, check_parts,
                               dataset_chunks, finished_in_parts, read_jsonl, truncate_jsonl, write_json_atomic,
                               write_parquet_atomic, write_text_atomic)
from mirage.runs.layout import (checkpoint_eval_dir, eval_dir, list_checkpoints, next_metrics_path, run_dir,
                                slug)
from mirage.runs.manifest import (MANIFEST, Status, config_diff, end_attempt, hardware, is_finished,
                                  library_versions, read_manifest, start_attempt, update_manifest)
from mirage.runs.metrics import METRICS, VAL_ACC, load_metrics

__all__ = ["RunConfig", "default_threads", "result_fields", "DiskFull", "FolderBusy", "FolderLock", "append_jsonl",
           "atomic_dir", "atomic_path", "check_parts", "dataset_chunks", "finished_in_parts", "read_jsonl", "truncate_jsonl", "write_json_atomic", "write_parquet_atomic",
           "write_text_atomic", "checkpoint_eval_dir", "eval_dir", "list_checkpoints", "next_metrics_path",
           "run_dir", "slug", "MANIFEST", "Status", "config_diff", "end_attempt", "hardware", "is_finished", "library_versions", "read_manifest",
           "start_attempt", "update_manifest", "METRICS", "VAL_ACC", "load_metrics"]
