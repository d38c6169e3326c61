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
# slow when it starts a browser, JupyterLab, a notebook kernel or fresh interpreters by the dozen, builds a wheel,
# samples 1,000 steps, trains a model until it meets a quality bar, or runs a weights command end to end; each of these
# is also covered by a fast test of the same code at a smaller size (the training loop's seeding, resume and logging in
# test_train.py; each command's parts in their own modules' tests), except what only a real browser or kernel can show.
SLOW_FILES = {"test_browser.py", "test_lab.py", "test_student.py", "test_slides.py", "test_widgets.py", "test_learning_2d.py"}
SLOW_TESTS = {
    "test_unet_samples_read_as_digits", "test_the_documented_command_runs", "test_collect_writes_kid_and_paired_differences_into_the_cards",
    "test_collect_pairs_the_cells_of_the_ddim_and_calls_tables", "test_flow_card_commands_pair_with_the_ddpm_card",
    "test_guidance_pairs_compare_the_same_noises", "test_evaluate_latent_writes_the_card_the_chapter_reads", "test_learns_8x8_digits",
    "test_the_chapter_14_commands_run_end_to_end", "test_latent_commands_write_loadable_cards", "test_a_built_wheel_carries_the_shipped_weights",
    "test_every_module_imports_in_a_fresh_interpreter", "test_importing_a_group_loads_nothing_above_it",
    "test_guidance_report_reads_real_digits_as_asked", "test_classifier_guidance_pairs_compare_the_same_noises",
    "test_launch_cell_installs_the_course_in_a_fresh_venv",
}


def pytest_configure(config):
    config.addinivalue_line("markers", "slow: left out of `make check` (browser, kernels, long sampling, whole commands)")


def _mark_slow(items):
    import pytest

    for item in items:
        if item.path.name in SLOW_FILES or getattr(item, "originalname", None) in SLOW_TESTS:
            item.add_marker(pytest.mark.slow)
