"""Published numbers of the AHN paper (arXiv 2510.07318v2) as data files; a package so they ship installed."""
