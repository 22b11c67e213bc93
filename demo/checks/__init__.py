"""The shop service's own tests, run by the live demo's CI step (``demo/ci.py``)."""
