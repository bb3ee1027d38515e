"""`jobflow-tui server`: the served jobs' runs over HTTP (aiohttp) and in a browser."""
