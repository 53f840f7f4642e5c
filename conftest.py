# Shared fixtures for every test suite in the tree.
pytest_plugins = ["cart_testing.fixtures", "cart_testing.upy_runner"]
