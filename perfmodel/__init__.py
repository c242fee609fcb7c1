"""perfmodel: numpy/scipy models of latency and speculative throughput (never imports torch)."""

__all__: list[str] = []
