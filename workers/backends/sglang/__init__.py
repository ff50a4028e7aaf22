"""The SGLang backend: the engine on one device (``backend``), its arguments (``args``), what
it reports of itself (``info``), and its failures turned into a cell's exception (``watch``)."""
