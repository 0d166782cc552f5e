"""The Streamz node set, one small class per operator, registered on :class:`Stream`."""

from . import aggregate, asynchronous, combine, counting, elementwise, timing  # noqa: F401  (registration)
