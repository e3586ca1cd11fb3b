"""`python -m walruspy.chain.contracts`: compile every contract into `compiled.json`."""

from __future__ import annotations

from walruspy.chain.contracts import write_compiled

if __name__ == "__main__":
    print(f"wrote {write_compiled()}")
