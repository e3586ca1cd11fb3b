"""The storage node: durable store, event processing, API server, recovery, epoch change and GC.

See spec/walrus-system.md section 3. `node.StorageNode` runs one node; `config` reads its YAML
file and `keys` its key files; `store`/`store_records` persist everything on LMDB; `blob_state`
holds the pure blob-lifecycle rules that `events` applies; `service` and `symbols` implement the
routes that `api` serves; `recovery` syncs missing blobs from peers (through
`walruspy.node_api.fanout`); `epoch` and `gc` handle epoch changes; `view` and `metrics` hold the
shared state and figures.
"""
