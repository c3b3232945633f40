print("valkey-bench: not built yet")
