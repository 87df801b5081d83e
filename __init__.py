"""ShopLens: multimodal product search for online shops.

The repository root is the `shoplens` package: its folders (`common`, `indexers`, `rerank`,
`engine`, `tui`, `commands`, `benchmarks`) install as `shoplens.<folder>` and `cli.py` as
`shoplens.cli`, so nothing lands at the top level of site-packages.
"""

__version__ = "0.2.0"
