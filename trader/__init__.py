"""The trading platform library."""
