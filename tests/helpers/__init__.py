"""Helpers the test modules share (tests never import each other)."""
