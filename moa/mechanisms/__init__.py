"""Mechanism modules: each builds one readable :class:`moa.engine.Mechanism`."""
