"""The HTTP front of ShopLens: `shoplens serve` runs `create_app` on uvicorn.

A service is one more front beside the CLI: it parses requests, calls the same
`SearchEngine`, and returns the same JSON shape (`SearchResponse.to_json`). It
owns no search logic. `app.py` builds the FastAPI app, `schemas.py` describes
requests and responses, `inputs.py` turns request bodies into engine requests,
`static/` is the workbench page served at `/`.
"""
