"""Placeholder until this module's nodes land."""

NODES = ()
