"""The xdist unit of work of the shared DAG run names exactly the modules whose tests use it."""
import os

import pytest

from tests.conftest import REPO, SHARED_DAG_FIXTURES, SHARED_DAG_MODULES


def test_shared_dag_modules_are_the_modules_that_use_the_shared_run(request):
    session = request.session
    using = {os.path.relpath(str(item.path), REPO) for item in session.items
             if SHARED_DAG_FIXTURES & set(getattr(item, "fixturenames", ()))}
    if not using:
        pytest.skip("no test of the shared DAG run was collected in this session")
    collected = {os.path.relpath(str(item.path), REPO) for item in session.items}
    assert using == SHARED_DAG_MODULES & collected


def test_longest_units_start_first_and_the_rest_keep_their_order():
    from tests.conftest import LONGEST_UNITS, longest_first

    rest = ["tests/test_ap.py", "tests/test_split.py"]
    order = longest_first(rest + sorted(LONGEST_UNITS))
    assert order[:len(LONGEST_UNITS)] == sorted(LONGEST_UNITS, key=LONGEST_UNITS.get, reverse=True)
    assert order[len(LONGEST_UNITS):] == rest
