"""Clinical calculations: pure, vectorised functions over daily grids (one module per concept)."""
