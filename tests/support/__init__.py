"""Helpers shared by the test modules: servers, worker processes, engine drivers, contracts.

A test module imports its helpers from here (or gets fixtures from ``tests/conftest.py``); it
never imports another test module.
"""
