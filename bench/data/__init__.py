"""Data sets as uint8 tensors with fixed splits (`datasets`), and sample grids (`images`)."""
