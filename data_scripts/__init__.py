"""Scripts that fetch real datasets and build the small bundled assets (run with ``python -m``)."""
