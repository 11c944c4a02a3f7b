"""`jobsctl` entry point."""
from __future__ import annotations

__all__ = ["main"]


def main() -> None:
    from jobsctl.cli import app

    app(prog_name="jobsctl")


if __name__ == "__main__":
    main()
