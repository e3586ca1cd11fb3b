"""The `walruspy` command line: Walrus's command names, `--json` on every command."""
