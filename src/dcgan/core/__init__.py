"""Ground floor: errors, files, seeds, devices, progress bars, fault seams, pixel conversions and
image grids. Imports nothing else of dcgan."""
