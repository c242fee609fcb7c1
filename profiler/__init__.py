"""profiler: measures latency, acceptance and real speculative decoding runs (torch)."""

__all__: list[str] = []
