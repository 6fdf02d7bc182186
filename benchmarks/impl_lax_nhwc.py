"""The hand-written lax reference with channels-last activations inside the step (API still NCHW)."""

from benchmarks import impl_lax


def setup(model: str, batch: int, seed: int = 0):
    impl_lax.LAYOUT = "NHWC"
    try:
        run = impl_lax.setup(model, batch, seed)
        run()  # trace now, while the layout is set
    finally:
        impl_lax.LAYOUT = "NCHW"
    return run
