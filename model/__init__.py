"""The ground floor of Shardmon, shared by every process: labels and matchers, samples in columns,
the storage Protocols, the configuration models, the hash functions, the error tree and the generated
protobuf code. It imports nothing else of Shardmon's."""
