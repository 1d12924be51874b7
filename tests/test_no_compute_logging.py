"""A --no-compute session drops pytest's per-test log capturing (its cost grows with torch's non-propagating loggers),
unless a log file or live logs were asked for; other sessions keep it."""

import pytest

PROBE = """
import logging

def test_probe(request):
    capture = request.config.pluginmanager.get_plugin("logging-plugin")
    logging.getLogger("probe").warning("seen")
    print("CAPTURE", capture is not None)
"""


@pytest.mark.parametrize(("args", "captured"), [((), True), (("--no-compute",), False),
                                                (("--no-compute", "--log-file=run.log"), True),
                                                (("--no-compute", "--log-cli-level=INFO"), True)])
def test_log_capture_is_dropped_only_where_nothing_logs(pytester, args, captured):
    pytester.makepyfile(test_probe=PROBE)
    (pytester.path / "results").mkdir()
    result = pytester.runpytest_inprocess("-s", "-p", "no:cacheprovider", f"--results={pytester.path / 'results'}",
                                          *args)
    result.assert_outcomes(passed=1)
    assert f"CAPTURE {captured}" in result.stdout.str()
    if "--log-file=run.log" in args:
        assert "seen" in (pytester.path / "run.log").read_text()
