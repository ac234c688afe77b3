"""The Pulumi program of liftlock: one program, one validated config per stack (see config.py)."""
