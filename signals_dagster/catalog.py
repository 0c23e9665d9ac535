"""The collectors of a folder, loaded once per process and reloaded when a file changes."""

import os
from dataclasses import dataclass
from pathlib import Path

from signals_dagster.contracts.registry import LOCK_NAME
from signals_dagster.spec.loader import collector_files, load_collectors
from signals_dagster.spec.models import CollectorSpec

DEFAULT_DIR = "collectors"
_CACHE: dict[str, tuple[tuple[object, ...], "Catalog"]] = {}


@dataclass(frozen=True)
class Catalog:
    """Collector specs by name, with the file each came from."""

    specs: dict[str, CollectorSpec]
    files: dict[str, Path]

    def get(self, name: str) -> CollectorSpec:
        """The spec of a collector, or a KeyError naming the known ones."""
        try:
            return self.specs[name]
        except KeyError:
            raise KeyError(f"no collector named {name!r} (known: {sorted(self.specs)})") from None


def collectors_dir() -> str:
    """$SIGNALS_COLLECTORS_DIR, default collectors/."""
    return os.environ.get("SIGNALS_COLLECTORS_DIR", DEFAULT_DIR)


def load_catalog(directory: str | None = None) -> Catalog:
    """Load (or reuse) the catalog of a folder; raises SpecError listing every problem."""
    directory = os.path.abspath(directory or collectors_dir())
    listed = collector_files([directory])
    lock = Path(directory) / LOCK_NAME
    files = [*listed, lock] if lock.exists() else listed
    # Templating reads the environment: a changed variable is a changed collector.
    signature = (hash(frozenset(os.environ.items())), *((str(f), f.stat().st_mtime) for f in files))
    cached = _CACHE.get(directory)
    if cached and cached[0] == signature:
        return cached[1]
    loaded = load_collectors([directory], files=listed)
    catalog = Catalog(
        specs={spec.name: spec for spec in loaded.values()},
        files={spec.name: path for path, spec in loaded.items()},
    )
    _CACHE[directory] = (signature, catalog)
    return catalog
