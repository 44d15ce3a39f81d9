"""The suite's scheduling (tests/conftest.py): a module's tests share one worker, so that its module fixtures are
built once; the spread modules go test by test, and last; the longest modules start first."""

from conftest import START_FIRST, start_order, work_unit


def test_a_module_is_one_unit_and_a_spread_module_is_one_unit_per_test():
    assert work_unit("tests/test_wdce.py::test_a") == work_unit("tests/test_wdce.py::test_b") == "tests/test_wdce.py"
    assert work_unit("tests/test_search.py::test_a[x]") == "tests/test_search.py::test_a[x]"


def test_the_longest_modules_start_first_and_the_spread_tests_come_last():
    units = ["tests/test_buffer.py", "tests/test_search.py::test_a", "tests/test_wdce.py", f"tests/{START_FIRST[0]}"]
    ordered = sorted(units, key=lambda unit: start_order(unit, units.index(unit)))
    assert ordered == [f"tests/{START_FIRST[0]}", "tests/test_wdce.py", "tests/test_buffer.py",
                       "tests/test_search.py::test_a"]  # fmt: skip
