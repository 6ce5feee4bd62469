"""The Store contract: one abstract test class (:mod:`.store_contract`) that every backend's test class subclasses."""

import pytest

pytest.register_assert_rewrite("tests.contract.store_contract")
