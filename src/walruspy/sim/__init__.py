"""The deterministic simulator: chain, storage nodes and clients in one process, one event loop.

Issue #16. Everything runs on one event loop under a virtual clock; the network between the
parties is `walruspy.sim.network.SimNetwork`, which carries real HTTP/1.1 bytes between real
aiohttp clients and servers over in-memory transports (`walruspy.sim.transport`) whose links
delay, reorder across connections, lose, reset and partition, all drawn from one seeded random
generator, so that a run is reproducible.
"""
