"""What several test areas share: paths, the Vertex samples, the dbt-project factory.

Imported by conftest files and test modules (``tests/`` is on pytest's pythonpath);
nothing here is collected as a test, and nothing here starts a server.
"""
