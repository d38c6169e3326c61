"""pytest settings shared by `make unit` and `make notebooks`: nbval's wait for cell output.

nbval waits a fixed 5 s for a cell's output messages after the cell has finished; on a busy laptop (two cores shared
with other work) a figure-heavy cell can take longer to deliver them, and the run fails with "Timeout of 5 seconds
exceeded waiting for output" although nothing is wrong. Give every cell two minutes instead.
"""

OUTPUT_TIMEOUT_S = 120


def pytest_collection_modifyitems(items):
    for item in items:
        if hasattr(item, "output_timeout"):
            item.output_timeout = OUTPUT_TIMEOUT_S
    _mark_slow(items)


# `make check` (lint + `pytest -m "not slow"`) is the maintainer's fast loop; `make test` runs everything. A test is
# slow when it starts a browser, JupyterLab or a notebook kernel, samples 1,000 steps, or runs a weights command end to
# end; each of these is also covered by a fast test of the same code at a smaller size, except what only a real
# browser or kernel can show.
SLOW_FILES = {"test_browser.py", "test_lab.py", "test_student.py", "test_slides.py", "test_widgets.py"}
SLOW_TESTS = {
    "test_unet_samples_read_as_digits", "test_the_documented_command_runs", "test_collect_writes_kid_and_paired_differences_into_the_cards",
    "test_collect_pairs_the_cells_of_the_ddim_and_calls_tables", "test_flow_card_commands_pair_with_the_ddpm_card",
    "test_guidance_pairs_compare_the_same_noises",
}


def pytest_configure(config):
    config.addinivalue_line("markers", "slow: left out of `make check` (browser, kernels, long sampling, whole commands)")


def _mark_slow(items):
    import pytest

    for item in items:
        if item.path.name in SLOW_FILES or getattr(item, "originalname", None) in SLOW_TESTS:
            item.add_marker(pytest.mark.slow)
