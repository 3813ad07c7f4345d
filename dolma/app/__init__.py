"""The top floor: the command line, recipes, the HTML report and the Python API; it may import everything."""
