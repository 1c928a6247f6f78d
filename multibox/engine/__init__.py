"""Training, evaluation and metrics: wires model, data and ops together."""
