"""Spatially sparse incremental inference (SIGE, Lab 5): conversion of a network's convs to the
learner's sparse conv, mode switching, MAC counting. Import ``effcourse.sparse.engine``."""
