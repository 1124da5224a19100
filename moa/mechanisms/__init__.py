"""Mechanism modules: each builds one readable :class:`moa.symbolic.Mechanism`."""
