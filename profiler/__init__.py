"""profiler: measures latency, acceptance and real speculative decoding runs (torch)."""

from profiler.acceptance import acceptance_record, bootstrap_intervals, write_acceptance_record
from profiler.build import ModelRecipe, build_model, resolve_model
from profiler.engine import DecodingSession, max_gamma, speculative_generate
from profiler.engine_trace import GenerationResult, StepTrace
from profiler.hardware_probe import device_slug, hardware_for
from profiler.layers import ProfileGrid, fit_depths, profile_model
from profiler.loading import ModelPair, check_same_vocabulary, load_causal_lm, load_pair
from profiler.profile_store import pool_rows, write_profile
from profiler.prompts import load_prompts
from profiler.sampling import SamplingConfig
from profiler.timing import StepTimer, TimingResult, device_name, time_callable

__all__ = [
    "DecodingSession",
    "GenerationResult",
    "ModelPair",
    "ModelRecipe",
    "ProfileGrid",
    "SamplingConfig",
    "StepTimer",
    "StepTrace",
    "TimingResult",
    "acceptance_record",
    "bootstrap_intervals",
    "build_model",
    "check_same_vocabulary",
    "device_name",
    "device_slug",
    "fit_depths",
    "hardware_for",
    "load_causal_lm",
    "load_pair",
    "load_prompts",
    "max_gamma",
    "pool_rows",
    "profile_model",
    "resolve_model",
    "speculative_generate",
    "time_callable",
    "write_acceptance_record",
    "write_profile",
]
