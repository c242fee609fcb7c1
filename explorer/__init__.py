"""explorer: Optuna search over draft shapes, validation by real runs, and the `specdec` CLI."""

__all__: list[str] = []
