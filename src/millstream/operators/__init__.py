"""The Streamz node set, one small class per operator, registered on :class:`Stream`."""

from . import aggregate, combine, counting, elementwise, timing  # noqa: F401  (registration)
