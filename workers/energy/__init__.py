"""A cell's energy: the sources (``sources``: one protocol over ``nvml``, ``npu``, ``rapl``),
their integration over the measured window (``integrate``), the meter that samples a source
around the window and gives the record keys (``meter``), and a simulated cell's energy from
the simulator's power model (``simulated``)."""
