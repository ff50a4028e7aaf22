"""Fleet sweeps (``hydra/sweeper=fleet``): every card compared with its peers (docs/fleet.md)."""
