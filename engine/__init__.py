"""Retrieval, fusion and the search engine facade.

Heavy modules (torch, faiss, tantivy) are imported by the submodules that need
them, so importing this package stays cheap.
"""
