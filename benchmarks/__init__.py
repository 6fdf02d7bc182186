"""Training-step benchmarks of fcnn against a hand-written jax.lax reference and the peers (run: python -m benchmarks.run)."""
