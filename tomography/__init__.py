"""tomography: placeholder package; built by a later issue."""

__all__: list[str] = []
