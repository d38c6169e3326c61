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
