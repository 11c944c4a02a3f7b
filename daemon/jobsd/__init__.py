"""jobsd: the daemon. The only package with side effects."""
from jobsd_lib import __version__

__all__ = ["__version__"]
