"""The pure, deterministic core of walruspy: bytes and values in, values out.

Nothing in this package does I/O, reads the clock or the environment, or uses global randomness;
randomness comes in as an argument. Every other package of walruspy builds on it, and it imports
nothing else of walruspy (a test enforces this).
"""
