"""What every component uses: the snapshot, the file/package/unit operations, the checks, the final report."""
