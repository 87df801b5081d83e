"""The learned reranker: features, behaviour aggregates, training, evaluation."""
