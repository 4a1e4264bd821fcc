"""The engine: message protocol, dispatch, completion step, execution and the worker."""
