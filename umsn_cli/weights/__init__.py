"""Model weights: the manifest, the checkpoint format, the cache, and downloads.

Importing this package does not import torch; only loading or saving a model does.
"""

from umsn_cli.files import sha256_file
from umsn_cli.weights.checkpoint import load_checkpoint, save_checkpoint
from umsn_cli.weights.download import download
from umsn_cli.weights.manifest import (
    InputSpec,
    Manifest,
    Metric,
    WeightsEntry,
    load_manifest,
    parse_manifest,
)
from umsn_cli.weights.store import (
    ImportedCheckpoint,
    cache_dir,
    find_local,
    get_imported,
    import_checkpoint,
    is_offline,
    list_imported,
    load_model,
    location,
    resolve,
    resolve_model_ref,
)

__all__ = [
    "ImportedCheckpoint",
    "InputSpec",
    "Manifest",
    "Metric",
    "WeightsEntry",
    "cache_dir",
    "download",
    "find_local",
    "get_imported",
    "import_checkpoint",
    "is_offline",
    "list_imported",
    "load_checkpoint",
    "load_manifest",
    "load_model",
    "location",
    "parse_manifest",
    "resolve",
    "resolve_model_ref",
    "save_checkpoint",
    "sha256_file",
]
