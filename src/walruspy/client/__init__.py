"""The walruspy client: store and read blobs on a Walrus network (async; sync only at the CLI)."""
