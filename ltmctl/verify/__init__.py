"""`ltmctl verify`: the pipeline's integration checks against a running environment (core, no CLI code)."""
