"""Differentiable approximation bridges (DAB): hard functions in the forward pass,
a learned smooth approximator's gradient in the backward pass.

Modules: `hard` (non-differentiable functions), `bridge` (custom_vjp bridge, STE,
no-gradient, approximator losses), `nets` (Haiku approximators and models),
`metrics` (MS-SSIM, linear probe, 1-D earth mover's distance), `data` (sorting).
"""
