"""The control plane: Vyper contracts, the EVM chain client, and the embedded devchain."""
