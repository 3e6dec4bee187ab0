"""What the tests share and are not tests: payment builders, real servers, stack handling.

Fixtures live in `tests.support.fixtures` (a plugin loaded by the root conftest); test modules
import helpers from here, never from another test module.
"""
