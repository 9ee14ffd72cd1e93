"""The fault matrix: N jobs per fault through each way of waiting, counted in the emulator."""
