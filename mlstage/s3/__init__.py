"""Object storage (`s3://bucket/prefix`) for the store, outputs, inputs, sources and the
registry. `url` is imported everywhere (it imports nothing); `client` and the rest import
obstore, only on the code paths that meet an `s3://` value, so `--help` stays fast."""
