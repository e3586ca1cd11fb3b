"""The wire contract of the storage node REST API, shared by the node's server and its client.

`paths` holds the routes, path builders and query parsers; `errors` the AIP-193 error answers and
their exceptions; `schemas` the success envelope, blob status and signed confirmations; `health`
the health answer; `json_fields` the strict JSON reading they all use. Nothing here does I/O:
the server (`walruspy.node.api`) and the client put these values on and off the wire
(spec/walrus-system.md 1.4 and 3.1). `fanout` is the one quorum fan-out helper that the node's
blob sync and the client both use to ask many nodes at once.
"""
