"""Soft transfer of a network's solution from monotonic to sinusoidal neurons.

Wu, Xue & Bai, "Learning Deeper Non-Monotonic Networks by Softly Transferring
Solution Space". Kernels: `activations` (sin, resin, gated unit, eqs. 1-2),
`gates` (rectified concrete gate, eqs. 10-16); Haiku: `transfer` (gate
parameters, baselines, initialisers), `nets` (builders), `models` (registry);
`data` (sin(2x) and Bessel generators).
"""
