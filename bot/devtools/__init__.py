"""Developer tools: the dev-set evaluation and the benchmark (`make bench`).

Nothing that runs in production (actions, channels, components, the web page) imports this package.
"""
