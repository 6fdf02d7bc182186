"""XLA:CPU formulations of fcnn's ops, selected by :class:`fcnn.backends.Policy`.

XLA:CPU runs a convolution on its fast (Eigen) kernel only in one form:
input ``(N, *S, C)``, kernel ``(*k, I, O)``, output ``(N, *S, O)``. Outside
loops XLA transposes other convolutions into that form itself; inside a loop
body (``lax.scan``, gradient accumulation) it does not, and runs them on a
naive loop many times slower. Its weight-gradient and single-input-channel
convolutions are slow in any form. The formulations here avoid those cases;
each computes the reference op's values and derivatives.
"""
