"""The rulers: rule groups spread over Ray ruler actors by rendezvous hashing, and their HTTP API
(``rules.http_address``). Imported as ``shardmon.rules``; it may import ingest, querier, shards.client and
model, and only ``shardmon`` imports it."""
