"""The embedded registry and single-node cluster (`liftlock cluster`): start, stop, status."""
