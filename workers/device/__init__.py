"""The device a worker measures on: which devices it may see (``visible``), the vendors' tools
and libraries (``tools``, ``npu_smi``, ``nvml``, ``smi``), opening a torch device
(``devices``), its health around a cell (``health``), the host's activity and memory
(``host``), and the roofline bound of a cell on it (``bandwidth``, ``bounding``)."""
