"""walruspy: a Python implementation of Walrus, the decentralized blob-storage network."""

__version__ = "0.1.0"
