"""File input and output: atomic writes, image reading/validation and writing."""
