"""LAVIS-style video captioning: a registry maps YAML configs to models, datasets, tasks, runners.

Importing the package registers every built-in component (``python -m lavis list`` shows them).
"""

from lavis import datasets, metrics, models, processors, runners, tasks  # noqa: F401  (registration)
from lavis.common import optim  # noqa: F401  (registers the lr schedules)
from lavis.common.registry import registry

__all__ = ["registry"]
__version__ = "0.1.0"
