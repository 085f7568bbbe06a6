"""Tests against real servers and the assembled application."""
