"""Support for tests/system/test_recipes.py: the deploy recipes' files, their tools, a step
runner."""
