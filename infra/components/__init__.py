"""ComponentResources of the liftlock program, one noun per module."""
