print("sync-job: not built yet")
