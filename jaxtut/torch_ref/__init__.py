"""PyTorch references: each tutorial as its source wrote it, fixing only what is broken.

Nothing here is imported by ``import jaxtut``. Load a reference through
:func:`jaxtut.registry.torch_module` (or import ``jaxtut.torch_ref.<module>`` directly), which turns
a missing PyTorch into one clear :class:`~jaxtut.errors.MissingDependencyError`.
"""
