"""Tests of postroom.store against real SQLite files and real PostgreSQL databases.

A package (this file) so that module names here cannot collide with same-named test modules
elsewhere; it also puts tests/ on sys.path, which makes `support` importable.
"""
