"""Test doubles shared by several test folders (tests/ is on sys.path through tests/conftest.py).

* ``openai_server`` — the OpenAI-protocol server with scripted replies and fault injection.
"""
