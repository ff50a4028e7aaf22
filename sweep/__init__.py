"""The sweep's hooks: planning each job into a typed cell, validation before launch,
placement, resume, the driver-side record writing and the end-of-sweep outputs."""
