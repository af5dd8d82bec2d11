"""The engine: the Task protocol, the train state, compiled steps and the one generic loop.

It knows no model, task or data set (``tests/test_architecture.py`` checks the import graph);
import its modules directly, e.g. ``dlcore.engine.loop.fit``.
"""
