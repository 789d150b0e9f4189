"""The composition root: one CLI and one process (`watchfloor up`) wired from the three services.

This package is the only place that imports more than one service; it knows their public entry
points (`<X>Service`, their `store` functions), never their insides.
"""
