"""Which GCE machine types carry built-in GPUs, and how many: the one list in gce_gpu."""

from __future__ import annotations

import pytest

from janitor.clouds.gcp.gce_gpu import accelerator_optimised, built_in_gpus


@pytest.mark.parametrize(
    ("machine_type", "expected"),
    [
        ("a2-highgpu-1g", ("nvidia-tesla-a100", 1)),
        ("a2-megagpu-16g", ("nvidia-tesla-a100", 16)),
        ("a3-highgpu-8g", ("nvidia-h100-80gb", 8)),
        ("a4-highgpu-8g", ("nvidia-b200", 8)),
        ("a4x-highgpu-4g", ("nvidia-gb200", 4)),  # a4x, not a4
        ("g2-standard-8", ("nvidia-l4", 1)),
        ("g2-standard-48", ("nvidia-l4", 4)),
        ("g2-standard-999", ("nvidia-l4", None)),  # unknown count: no GPU units guessed
        ("n1-standard-8", None),
        ("e2-standard-4", None),
        ("c2-standard-4", None),
    ],
)
def test_built_in_gpus(machine_type: str, expected: tuple[str, int | None] | None) -> None:
    assert built_in_gpus(machine_type) == expected
    assert (accelerator_optimised(machine_type) is not None) == (expected is not None)
