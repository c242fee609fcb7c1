"""perfmodel: numpy/scipy models of latency and speculative throughput (never imports torch)."""

from perfmodel.acceptance import (
    acceptance_rate_from_tokens_per_step,
    accepted_count_distribution,
    accepted_count_distribution_positional,
    estimate_acceptance_rate,
    estimate_position_acceptance,
    expected_tokens_per_step,
    expected_tokens_per_step_positional,
)
from perfmodel.acceptance_model import (
    AcceptanceModel,
    AcceptancePrediction,
    AcceptanceSource,
    FixedAcceptance,
    LeaveOneOutReport,
    acceptance_from_file,
    load_acceptance_table,
)
from perfmodel.arch import FAMILIES, ArchSpec
from perfmodel.comparison import DraftComparison, compare_drafts
from perfmodel.gemm_table import GemmTable
from perfmodel.hardware import HardwareSpec, get_hardware, hardware_names
from perfmodel.latency_fn import FixedLatency, LatencyFn
from perfmodel.latency_model import ArchLatency, LatencyModel, load_profile_rows
from perfmodel.presets import get_preset, load_presets, preset_names, reference_dir
from perfmodel.roofline import roofline, roofline_fixed, roofline_layer
from perfmodel.throughput import (
    DEFAULT_GAMMA_MAX,
    break_even_acceptance_rate,
    leviathan_walltime_factor,
    speculative_throughput,
    speedup_curve,
    step_time_breakdown,
)

__all__ = [
    "AcceptanceModel",
    "AcceptancePrediction",
    "AcceptanceSource",
    "ArchLatency",
    "FixedAcceptance",
    "GemmTable",
    "LatencyModel",
    "LeaveOneOutReport",
    "acceptance_from_file",
    "load_acceptance_table",
    "load_profile_rows",
    "DEFAULT_GAMMA_MAX",
    "FAMILIES",
    "ArchSpec",
    "DraftComparison",
    "FixedLatency",
    "HardwareSpec",
    "LatencyFn",
    "acceptance_rate_from_tokens_per_step",
    "accepted_count_distribution",
    "accepted_count_distribution_positional",
    "break_even_acceptance_rate",
    "compare_drafts",
    "estimate_acceptance_rate",
    "estimate_position_acceptance",
    "expected_tokens_per_step",
    "expected_tokens_per_step_positional",
    "get_hardware",
    "get_preset",
    "hardware_names",
    "leviathan_walltime_factor",
    "load_presets",
    "preset_names",
    "reference_dir",
    "roofline",
    "roofline_fixed",
    "roofline_layer",
    "speculative_throughput",
    "speedup_curve",
    "step_time_breakdown",
]
