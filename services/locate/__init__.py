"""Locating a recitation in the Quran (issue 25): the passage index and its search."""
