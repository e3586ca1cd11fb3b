"""The storage node: durable store, event processing, API server, recovery, epoch change and GC.

See spec/walrus-system.md section 3. `store` is the node's LMDB-backed persistence.
"""
